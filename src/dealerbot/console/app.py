"""The console's web app (FastAPI, server-rendered Jinja2 templates, a few lines of plain JS).

Pages: 今日 (the clerk's home: the last sync, approvals waiting, failures with what to do, the
next runs, portal health, warnings; 一键同步), 机器人 (start a bot, with a dry run where the bot
has one), 运行记录 (history filtered by bot and status), a run's page (live progress and log lines over server-sent events while it
runs; then status, counts, rejects with reasons, failure screenshots, the workbook), 审核 (upload
a reviewed workbook), 定时任务 (next and last runs; pause and resume when the scheduler runs in
this process), 状态 (each portal's saved login and any refused password) and, for a dealership
group, 门店 (every store's last sync, failures, reviews waiting and queue; a store's runs).

Safety: loopback by default; a password (argon2) and a signed HttpOnly SameSite=Strict session
cookie naming a server-side session that logout, idleness and a password change end; a CSRF
token on every form; failed logins wait longer after each (per account and per client; the
client's address is never taken from forwarding headers unless configured); every text escaped
(autoescape); evidence served only from the run's own recorded files, screenshots inline and
anything else (the portal's HTML) as a download, never rendered in the console's origin; a
Content-Security-Policy allowing only the console's own script.

A session that ended leads back to the login (「登录已过期，请重新登录」), and the login back to
the page asked for (a path of the console only). Errors are Chinese pages in the console's
layout (``error.html``): never JSON, never a traceback (that goes to the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import math
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from dealerbot.config import Settings
from dealerbot.console import health, home, manual, review, rollback, run_page, runs, stores, timetable
from dealerbot.console.auth import ConsolePassword, LoginThrottle, Sessions, proxy_options, session_secret
from dealerbot.console.names import Names
from dealerbot.errors import DealerbotError
from dealerbot.logsetup import Masker
from dealerbot.running.login_help import ConsoleHelp
from dealerbot.status_text import COUNT_TEXT, STATUS_CSS, STATUS_TEXT
from dealerbot.store import Store

if TYPE_CHECKING:
    from starlette.middleware.base import RequestResponseEndpoint

    from dealerbot.schedule.scheduler import Scheduler

TRIGGERS = {"manual": "手动", "schedule": "定时", "catch-up": "补运行", "postponed": "推迟后", "console": "控制台", "demo": "演示",
            "retry": "接手重试"}
FILES = {"/console.js", "/favicon.ico"}  # public, and the session is not looked at (no session check per page)
PUBLIC = {"/login", *FILES}
EXPIRED = "登录已过期，请重新登录"
NOT_LOGGED_IN = "未登录，请先登录"
# What an error page says when the error carries no Chinese detail of its own.
ERROR_TEXT = {
    400: "请求的内容不对，请回到上一页重新操作",
    403: "不能这样操作",
    404: "找不到这个页面",
    405: "这个地址只接收页面上的按钮提交，不能直接打开：请回到上一页，用页面上的按钮操作",
    422: "提交的内容不完整或格式不对，请回到上一页重新填写",
}


def safe_next(target: str | None) -> str:
    """Where to go after the login: ``target`` when it is a path of this console (``/runs?...``),
    else ``/`` (never another site: ``//evil.com``, ``/\\evil.com``, ``http://...``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return target


def from_a_page(request: Request) -> bool:
    """Whether ``request`` comes from the browser's window (a page opened, a form sent), so
    that a redirect to the login is the answer; not the run page's EventSource (it asks for
    ``text/event-stream``) or a program posting."""
    accept = request.headers.get("accept", "")
    if request.method in ("GET", "HEAD"):
        return "text/event-stream" not in accept
    return "text/html" in accept



class Console:
    """What the pages share: settings, templates, the runs started here, the scheduler."""

    def __init__(self, settings: Settings, scheduler: Scheduler | None = None, passwords: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.scheduler = scheduler
        self.passwords = passwords
        self.password = ConsolePassword(settings.path("state"))
        self.throttle = LoginThrottle()
        self.sessions = Sessions(settings.path("state"))
        self.secret = session_secret(settings.path("state"))
        self.idle = settings.console.idle_minutes * 60
        self.lifetime = settings.console.session_hours * 3600
        self.live: dict[str, dict[str, int]] = {}  # run id -> counts, while running here
        self.started: dict[str, float] = {}  # run id -> when it started (monotonic), while running here
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stop = asyncio.Event()  # set on shutdown: runs stop at their next safe point
        self.stops: dict[str, asyncio.Event] = {}  # run id -> its own stop (停止), while running here
        self._store: Store | None = None
        self.env = Environment(
            loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]),
        )
        self.env.globals.update(STATUS_TEXT=STATUS_TEXT, STATUS_CSS=STATUS_CSS, TRIGGERS=TRIGGERS, COUNT_TEXT=COUNT_TEXT,
                                IS_GROUP=settings.is_group)
        self.names = Names(settings)  # what the pages call bots, portals and jobs
        self.env.globals["names"] = self.names
        self.masker = Masker()  # mobiles and ID numbers quoted in reject reasons are shown masked
        self.login_help = ConsoleHelp()  # the box on a run's page where a person types a login's code

    def script(self) -> str:
        """The console's own JavaScript: every ``static/*.js``, in name order (one file per page's
        behaviour; each does nothing on a page without its elements)."""
        return "\n".join(f.read_text(encoding="utf-8") for f in sorted((Path(__file__).parent / "static").glob("*.js")))

    def page(self, request: Request, name: str, code: int = 200, **values: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(
            request=request, csrf=request.session.get("csrf", ""), logged_in=bool(request.session.get("user")),
            **values,
        )
        return HTMLResponse(html, status_code=code)

    def error_page(self, request: Request, code: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        """The error ``code`` said in Chinese: a page in the console's layout (``error.html``),
        or plain UTF-8 text to a request that is not a page's (the run page's live events)."""
        if "text/event-stream" in request.headers.get("accept", ""):
            return PlainTextResponse(message, status_code=code, headers=headers)
        title = ERROR_TEXT[404] if code == 404 else ("出错了" if code >= 500 else "无法完成")
        session = request.scope.get("session") or {}
        html = self.env.get_template("error.html").render(
            request=request, csrf=session.get("csrf", ""), logged_in=bool(session.get("user")),
            title=title, message=message, code=code,
        )
        return HTMLResponse(html, status_code=code, headers=headers)

    def live_session(self, request: Request) -> bool:
        """Whether ``request`` comes with a live session (see :class:`Sessions`)."""
        sid = request.session.get("sid")
        if not sid:
            return False
        return self.sessions.check(sid, self.password.fingerprint(self.secret), self.idle, self.lifetime)

    def store(self) -> contextlib.AbstractContextManager[Store]:
        """The console's store, opened once (opening checks the file and the schema: not on
        every page); ``with`` it, it stays open."""
        if self._store is None:
            self._store = Store.open(self.settings.store_url, self.settings.store_code)
        return contextlib.nullcontext(self._store)

    def check_csrf(self, request: Request, token: str) -> None:
        """Every form carries the session's token (a page of another site cannot post here).

        Raises:
            HTTPException: 403 when it is missing or wrong.
        """
        if not token or not secrets.compare_digest(token, request.session.get("csrf", "")):
            raise HTTPException(403, "页面已过期，请刷新页面后重试")

    async def start(self, bot: str, dry_run: bool, options: Mapping[str, Any] | None = None, full: bool = False,
                    job: str | None = None) -> str:
        """Start ``bot`` in this process (with ``options``, as a run's own: 重新运行); its run id
        once it is recorded. The run has its own stop (:meth:`stop_run`), and stops with the
        console too. ``job``: the timetable job it runs for (立即运行 on 定时任务), recorded as that
        job's run.

        Raises:
            DealerbotError: it could not start (unknown bot, already running, configuration).
        """
        from dealerbot.running.runner import run_bot

        loop = asyncio.get_running_loop()
        started: asyncio.Future[str] = loop.create_future()
        holder: dict[str, str] = {}
        own_stop = asyncio.Event()

        def on_start(run_id: str, _run_dir: Path) -> None:
            holder["id"] = run_id
            self.live[run_id] = {}
            self.started[run_id] = loop.time()
            self.stops[run_id] = own_stop
            if not started.done():
                started.set_result(run_id)

        def on_progress(counts: dict[str, int]) -> None:
            if "id" in holder:
                self.live[holder["id"]] = dict(counts)

        if self.stop.is_set():
            raise DealerbotError("控制台正在停止，不再开始新的运行 (the console is stopping)")
        wanted = {**(options or {}), **({"dry_run": True} if dry_run else {})}
        task = loop.create_task(run_bot(
            bot, self.settings, full=full, trigger="console", passwords=self.passwords, on_start=on_start,
            on_progress=on_progress, options=wanted, stop=own_stop, job=job, login_help=self.login_help,
        ))
        self.tasks.add(task)
        # The console's stop (shutdown: `serve` sets it) reaches the run at once, as its own 停止 does.
        relay = loop.create_task(self.stop.wait())
        relay.add_done_callback(lambda r: None if r.cancelled() else own_stop.set())

        def ended(task: asyncio.Task[Any]) -> None:
            self.tasks.discard(task)
            relay.cancel()
            for running in (self.live, self.started, self.stops):
                running.pop(holder.get("id", ""), None)

        task.add_done_callback(ended)
        either: set[asyncio.Future[Any]] = {task, started}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED, timeout=60)
        if started.done():
            return started.result()
        failure = task.exception() if task.done() else None
        if failure is not None:
            raise failure
        raise DealerbotError(f"{bot} 在 60 秒内没有开始运行，请稍后查看运行记录 ({bot} did not start within 60 s)")

    def stop_run(self, run_id: str) -> bool:
        """Ask the run ``run_id`` (started here) to stop at its next safe point (a re-key
        finishes the record it is on); False when no such run is running here."""
        own = self.stops.get(run_id)
        if own is None:
            return False
        own.set()
        return True

    async def drain(self, grace: float) -> None:
        """Shutting down: runs started here stop at their next safe point (a re-key finishes
        the record it is on); after ``grace`` seconds what is left is cancelled."""
        self.stop.set()
        for own in list(self.stops.values()):
            own.set()
        running = [t for t in self.tasks if not t.done()]
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=30)


def create_app(settings: Settings, scheduler: Scheduler | None = None, passwords: Mapping[str, str] | None = None) -> FastAPI:
    """The console for ``settings`` (``scheduler``: the one running in this process, if any)."""
    app = FastAPI(title="dealerbot 控制台", docs_url=None, redoc_url=None, openapi_url=None)
    c = Console(settings, scheduler, passwords)
    app.state.console = c

    @app.middleware("http")
    async def guard(request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        live = path not in FILES and c.live_session(request)
        expired = path not in FILES and not live and "sid" in request.session
        if expired:
            # A logged-out, idle or old session: dropped from the browser too. A session without
            # a sid (the login form's CSRF token, before the login) is kept: a browser fetches
            # /favicon.ico and the like by itself while the login page is open.
            request.session.clear()
        if path not in PUBLIC and not live:
            said = EXPIRED if expired else NOT_LOGGED_IN
            if from_a_page(request):
                query = {"expired": "1"} if expired else {}
                if request.method in ("GET", "HEAD") and path != "/":  # back where they were going, after the login
                    query["next"] = path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/login" + (f"?{urlencode(query)}" if query else ""), status_code=303)
            return PlainTextResponse(said, status_code=401)  # a script's request (EventSource): UTF-8 text
        try:
            response: Response = await call_next(request)
        except Exception as exc:  # an unexpected failure: said in Chinese, the traceback only in the log
            logger.opt(exception=exc).error("console: {} {} failed: {}", request.method, path, type(exc).__name__)
            response = c.error_page(request, 500, (
                f"控制台处理这个请求时出了意外错误（{datetime.now():%H:%M:%S}），这次操作可能没有完成。"
                "请回到上一页刷新，看清结果再决定是否重试；问题一再出现时，请把这个时间告诉技术支持（详细记录在控制台的日志里）。"))
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else ""
        with contextlib.suppress(ValueError):
            if detail == http.HTTPStatus(exc.status_code).phrase:  # no detail of its own: Starlette's English
                detail = ""
        if exc.status_code == 405 and request.method not in ("GET", "HEAD"):
            detail = "这个地址不能这样提交：请回到上一页重新操作"
        detail = detail or ERROR_TEXT.get(exc.status_code, "无法完成这个请求，请回到上一页重试")
        return c.error_page(request, exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def form_error(request: Request, exc: RequestValidationError) -> Response:
        return c.error_page(request, 422, ERROR_TEXT[422])

    # added after guard: it runs first, so guard sees request.session
    app.add_middleware(
        SessionMiddleware, secret_key=c.secret, session_cookie="dealerbot_console",
        max_age=int(c.lifetime), same_site="strict", https_only=False,
    )

    @app.get("/console.js")
    async def script() -> Response:
        return Response(c.script(), media_type="text/javascript")

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        """Nothing (a browser asks for it by itself, logged in or not)."""
        return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})

    # -- login --------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, expired: str = "", next: str = "") -> HTMLResponse:
        request.session.setdefault("csrf", secrets.token_urlsafe(24))
        return c.page(request, "login.html", notice=EXPIRED if expired else "", next=safe_next(next))

    @app.post("/login")
    async def login(request: Request, password: str = Form(""), csrf: str = Form(""), next: str = Form("")) -> Response:
        client = request.client.host if request.client else "?"  # the peer: forwarding headers only from trusted proxies
        target = safe_next(next)
        if not csrf or not secrets.compare_digest(csrf, request.session.get("csrf", "")):
            request.session.setdefault("csrf", secrets.token_urlsafe(24))  # the form shown again works
            return c.page(request, "login.html", 403, error="页面已过期，请刷新页面后重新输入密码", next=target)
        wait = c.throttle.attempt(client)  # counted before the check: tries sent together gain nothing
        if wait:
            page = c.page(request, "login.html", 429, error=f"登录失败次数过多，请 {math.ceil(wait)} 秒后再试", next=target)
            page.headers["Retry-After"] = str(math.ceil(wait))
            return page
        if not await asyncio.to_thread(c.password.verify, password):  # argon2 takes a while: not on the loop
            logger.warning("console: wrong password from {} ({} in a row)", client, c.throttle.failures_in_a_row(client))
            return c.page(request, "login.html", 401, error="密码错误", next=target)
        c.throttle.succeeded(client)
        request.session.clear()  # a new session (and CSRF token), never the one from before the login
        sid = await asyncio.to_thread(c.sessions.open, c.password.fingerprint(c.secret), c.lifetime)
        request.session.update(user="operator", sid=sid, csrf=secrets.token_urlsafe(24))
        return RedirectResponse(target, status_code=303)  # where they were going, else 今日: the clerk's home

    @app.post("/logout")
    async def logout(request: Request, csrf: str = Form("")) -> Response:
        c.check_csrf(request, csrf)
        c.sessions.close(request.session.get("sid", ""))  # the cookie, wherever copied, is dead
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    for pages in (home, runs, run_page, rollback, review, timetable, health, stores, manual):
        pages.register(app, c)
    return app


def server_config(app: FastAPI, settings: Settings, host: str, port: int, **options: Any) -> Any:
    """uvicorn's configuration for the console ``app``: forwarding headers are believed only
    from ``[console] trusted_proxies``."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, **proxy_options(settings.console.trusted_proxies), **options)

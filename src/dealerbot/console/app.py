"""The console's web app (FastAPI, server-rendered Jinja2 templates, a few lines of plain JS).

Pages: 机器人 (start a bot, with a dry run where the bot has one), 运行记录 (history filtered by
bot and status), a run's page (live progress and log lines over server-sent events while it
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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from loguru import logger
from starlette.middleware.sessions import SessionMiddleware

from dealerbot.config import Settings
from dealerbot.console.auth import ConsolePassword, LoginThrottle, Sessions, proxy_options, session_secret
from dealerbot.errors import DealerbotError
from dealerbot.logsetup import Masker
from dealerbot.private_files import private_dir
from dealerbot.rekey.ledger import KIND_TEXT, REAPPROVAL
from dealerbot.status_text import COUNT_TEXT, STATUS_TEXT
from dealerbot.store import Store

if TYPE_CHECKING:
    from starlette.middleware.base import RequestResponseEndpoint

    from dealerbot.schedule.scheduler import Scheduler

TRIGGERS = {"manual": "手动", "schedule": "定时", "catch-up": "补运行", "postponed": "推迟后", "console": "控制台", "demo": "演示",
            "retry": "接手重试"}
PUBLIC = {"/login", "/console.js"}

_JS = """
document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('live');
  if (!box) return;
  var log = document.getElementById('log'), counts = document.getElementById('counts');
  var es = new EventSource(box.getAttribute('data-events'));
  es.addEventListener('log', function (e) {
    var line = document.createElement('div');
    line.textContent = JSON.parse(e.data);
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
  });
  es.addEventListener('counts', function (e) {
    var c = JSON.parse(e.data), parts = [];
    Object.keys(c).forEach(function (k) { if (c[k]) parts.push(k + ' ' + c[k]); });
    counts.textContent = parts.join(' · ');
  });
  es.addEventListener('done', function () { es.close(); location.reload(); });
});
"""


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
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stop = asyncio.Event()  # set on shutdown: runs stop at their next safe point
        self._store: Store | None = None
        self.env = Environment(
            loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]),
        )
        self.env.globals.update(STATUS_TEXT=STATUS_TEXT, TRIGGERS=TRIGGERS, COUNT_TEXT=COUNT_TEXT,
                                IS_GROUP=settings.is_group)
        self.masker = Masker()  # mobiles and ID numbers quoted in reject reasons are shown masked

    def page(self, request: Request, name: str, code: int = 200, **values: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(
            request=request, csrf=request.session.get("csrf", ""), logged_in=bool(request.session.get("user")),
            **values,
        )
        return HTMLResponse(html, status_code=code)

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

    async def start(self, bot: str, dry_run: bool) -> str:
        """Start ``bot`` in this process; its run id once it is recorded.

        Raises:
            DealerbotError: it could not start (unknown bot, already running, configuration).
        """
        from dealerbot.running.runner import run_bot

        loop = asyncio.get_running_loop()
        started: asyncio.Future[str] = loop.create_future()
        holder: dict[str, str] = {}

        def on_start(run_id: str, _run_dir: Path) -> None:
            holder["id"] = run_id
            self.live[run_id] = {}
            if not started.done():
                started.set_result(run_id)

        def on_progress(counts: dict[str, int]) -> None:
            if "id" in holder:
                self.live[holder["id"]] = dict(counts)

        if self.stop.is_set():
            raise DealerbotError("控制台正在停止，不再开始新的运行 (the console is stopping)")
        task = loop.create_task(run_bot(
            bot, self.settings, trigger="console", passwords=self.passwords, on_start=on_start,
            on_progress=on_progress, options={"dry_run": True} if dry_run else {}, stop=self.stop,
        ))
        self.tasks.add(task)

        def ended(task: asyncio.Task[Any]) -> None:
            self.tasks.discard(task)
            self.live.pop(holder.get("id", ""), None)

        task.add_done_callback(ended)
        either: set[asyncio.Future[Any]] = {task, started}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED, timeout=60)
        if started.done():
            return started.result()
        failure = task.exception() if task.done() else None
        if failure is not None:
            raise failure
        raise DealerbotError(f"{bot} did not start within 60 s")

    async def drain(self, grace: float) -> None:
        """Shutting down: runs started here stop at their next safe point (a re-key finishes
        the record it is on); after ``grace`` seconds what is left is cancelled."""
        self.stop.set()
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
        if path not in PUBLIC and not c.live_session(request):
            request.session.clear()  # a logged-out, idle or old cookie: dropped from the browser too
            if request.method == "GET":
                return RedirectResponse("/login", status_code=303)
            return Response("未登录或登录已过期 (not logged in)", status_code=401)
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    # added after guard: it runs first, so guard sees request.session
    app.add_middleware(
        SessionMiddleware, secret_key=c.secret, session_cookie="dealerbot_console",
        max_age=int(c.lifetime), same_site="strict", https_only=False,
    )

    @app.get("/console.js")
    async def script() -> Response:
        return Response(_JS, media_type="text/javascript")

    # -- login --------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> HTMLResponse:
        request.session.setdefault("csrf", secrets.token_urlsafe(24))
        return c.page(request, "login.html")

    @app.post("/login")
    async def login(request: Request, password: str = Form(""), csrf: str = Form("")) -> Response:
        client = request.client.host if request.client else "?"  # the peer: forwarding headers only from trusted proxies
        if not csrf or not secrets.compare_digest(csrf, request.session.get("csrf", "")):
            return c.page(request, "login.html", 403, error="页面已过期，请重新输入 (CSRF)")
        wait = c.throttle.attempt(client)  # counted before the check: tries sent together gain nothing
        if wait:
            page = c.page(request, "login.html", 429, error=f"登录失败次数过多，请 {math.ceil(wait)} 秒后再试")
            page.headers["Retry-After"] = str(math.ceil(wait))
            return page
        if not await asyncio.to_thread(c.password.verify, password):  # argon2 takes a while: not on the loop
            logger.warning("console: wrong password from {} ({} in a row)", client, c.throttle.failures_in_a_row(client))
            return c.page(request, "login.html", 401, error="密码错误")
        c.throttle.succeeded(client)
        request.session.clear()  # a new session (and CSRF token), never the one from before the login
        sid = await asyncio.to_thread(c.sessions.open, c.password.fingerprint(c.secret), c.lifetime)
        request.session.update(user="operator", sid=sid, csrf=secrets.token_urlsafe(24))
        return RedirectResponse("/bots", status_code=303)

    def check_csrf(request: Request, token: str) -> None:
        """Every form carries the session's token (a page of another site cannot post here).

        Raises:
            HTTPException: 403 when it is missing or wrong.
        """
        if not token or not secrets.compare_digest(token, request.session.get("csrf", "")):
            raise HTTPException(403, "请求已过期，请刷新页面后重试 (CSRF token missing or wrong)")

    @app.post("/logout")
    async def logout(request: Request, csrf: str = Form("")) -> Response:
        check_csrf(request, csrf)
        c.sessions.close(request.session.get("sid", ""))  # the cookie, wherever copied, is dead
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- bots and runs ------------------------------------------------------------------------
    @app.get("/")
    async def home() -> Response:
        return RedirectResponse("/bots", status_code=303)

    @app.get("/bots", response_class=HTMLResponse)
    async def bots(request: Request, error: str = "") -> HTMLResponse:
        from dealerbot.running.registry import discover

        with c.store() as store:
            running = {r.bot for r in store.runs(50) if r.status == "running"}
        return c.page(request, "bots.html", bots=sorted(discover(home=settings.home).values(), key=lambda b: b.name), running=running,
                      error=error)

    @app.post("/bots/{name}/run")
    async def run_now(request: Request, name: str, csrf: str = Form(""), dry_run: str = Form("")) -> Response:
        check_csrf(request, csrf)
        try:
            run_id = await c.start(name, bool(dry_run))
        except DealerbotError as exc:
            from dealerbot.running.registry import discover

            with c.store() as store:
                running = {r.bot for r in store.runs(50) if r.status == "running"}
            return c.page(request, "bots.html", 409, bots=sorted(discover(home=settings.home).values(), key=lambda b: b.name),
                          running=running, error=str(exc))
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.get("/runs", response_class=HTMLResponse)
    async def runs(request: Request, bot: str = "", status: str = "") -> HTMLResponse:
        with c.store() as store:
            store.close_abandoned_runs()
            history = [r for r in store.runs(200, bot or None) if not status or r.status == status][:100]
        return c.page(request, "runs.html", runs=history, bot=bot, status=status)

    def _run_or_404(run_id: str) -> Any:
        with c.store() as store:
            run = store.run(run_id)
            if run is None:
                raise HTTPException(404, "没有这次运行")
            rejects = list(store.iter_rejects(run_id))[:500]
        return run, rejects

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> HTMLResponse:
        run, rejects = _run_or_404(run_id)
        rejects = [{**j, "reason": c.masker(j["reason"])} for j in rejects]
        shots = [Path(p).name for p in run.evidence if p.endswith(".png")]
        files = [Path(p).name for p in run.evidence if not p.endswith(".png")]
        return c.page(request, "run.html", run=run, rejects=rejects, shots=shots, files=files,
                      live=run.status == "running", counts=c.live.get(run_id, run.counts))

    @app.get("/runs/{run_id}/events")
    async def events(run_id: str) -> StreamingResponse:
        run, _ = _run_or_404(run_id)
        log_file = settings.path("logs") / "runs" / run_id / "run.log"

        async def stream() -> AsyncIterator[str]:
            offset = 0
            while True:
                if log_file.is_file():
                    with log_file.open("r", encoding="utf-8", errors="replace") as fh:
                        fh.seek(offset)
                        chunk = fh.read()
                        offset = fh.tell()
                    for line in chunk.splitlines():
                        yield f"event: log\ndata: {json.dumps(line, ensure_ascii=False)}\n\n"
                if run_id in c.live:
                    yield f"event: counts\ndata: {json.dumps(c.live[run_id])}\n\n"
                with c.store() as store:
                    current = store.run(run_id)
                if current is None or current.status != "running" or c.stop.is_set():
                    yield "event: done\ndata: {}\n\n"
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/runs/{run_id}/files/{name}")
    async def evidence(run_id: str, name: str) -> FileResponse:
        run, _ = _run_or_404(run_id)
        recorded = {Path(p).name: Path(p) for p in run.evidence}  # only the run's own files, by name
        path = recorded.get(name)
        if path is None or not path.is_file():
            raise HTTPException(404, "没有这个文件")
        if path.suffix == ".png":
            return FileResponse(path, media_type="image/png")
        return FileResponse(path, media_type="application/octet-stream", filename=name)  # never rendered here

    @app.get("/runs/{run_id}/workbook")
    async def workbook(run_id: str) -> FileResponse:
        from dealerbot.review.export import export_runs
        from dealerbot.running.registry import entity_of_bots

        run, _ = _run_or_404(run_id)
        out = private_dir(settings.path("out")) / f"review-{run_id}.xlsx"
        try:
            with c.store() as store:
                await asyncio.to_thread(export_runs, store, [run], out, entity_of_bots(settings.home), False)
        except (DealerbotError, ValueError, OSError) as exc:
            raise HTTPException(500, f"无法生成审核工作簿：{exc}") from None
        return FileResponse(out, filename=out.name,
                            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    # -- review ---------------------------------------------------------------------------------
    def review_page_values() -> dict[str, Any]:
        """What the review page lists: actions whose approval a changed plan dropped, and why."""
        from dealerbot.review.sheets import reapprovals

        with c.store() as store:
            again = reapprovals(store)
        return {"reapprovals": [{"order_no": a.natural_key, "kind": KIND_TEXT[a.kind], "why": c.masker(a.note)}
                                for a in again]}

    @app.get("/review", response_class=HTMLResponse)
    async def review_page(request: Request) -> HTMLResponse:
        return c.page(request, "review.html", **review_page_values())

    @app.post("/review", response_class=HTMLResponse)
    async def review_upload(request: Request, file: UploadFile, csrf: str = Form(""), apply_valid: str = Form("")) -> HTMLResponse:
        check_csrf(request, csrf)
        folder = private_dir(settings.path("state") / "uploads")
        target = folder / f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}.xlsx"  # never the client's name
        target.write_bytes(await file.read(20_000_001))
        if target.stat().st_size > 20_000_000:
            target.unlink()
            return c.page(request, "review.html", 413, error="文件太大（超过 20 MB）")
        try:
            return await _import(request, target, file.filename or "工作簿", bool(apply_valid))
        finally:
            target.unlink(missing_ok=True)  # it holds customers' data: not kept once read

    async def _import(request: Request, target: Path, shown: str, apply_valid: bool) -> HTMLResponse:
        from dealerbot.data.dictionary import load_dictionary
        from dealerbot.review.sheets import apply_review, read_review

        try:
            dictionary = load_dictionary(settings.dictionary_path, settings.dictionary_overlay)
            with c.store() as store:
                result = await asyncio.to_thread(read_review, target, store, dictionary)
                if result.problems and not apply_valid:
                    return c.page(request, "review.html", 422, problems=result.problems,
                                  error=f"{len(result.problems)} 行有问题，未导入任何内容")
                apply_review(store, result, settings.rekey.reviewer or "控制台")
        except DealerbotError as exc:
            return c.page(request, "review.html", 422, error=str(exc).replace(str(target), shown))
        return c.page(request, "review.html", done=result.counts, undecided=result.undecided, problems=result.problems)

    # -- timetable and health ---------------------------------------------------------------------
    @app.get("/schedules", response_class=HTMLResponse)
    async def schedules(request: Request) -> HTMLResponse:
        from dealerbot.schedule.timetable import next_fire, timetables_of

        rows, error = [], ""
        try:
            jobs = timetables_of(settings)
        except DealerbotError as exc:
            jobs, error = [], str(exc)
        with c.store() as store:
            for job in jobs:
                aps = c.scheduler.aps.get_job(job.name) if c.scheduler is not None else None
                if aps is not None:
                    nxt = aps.next_run_time
                else:
                    try:
                        times = next_fire(job, settings)
                        nxt = times[0] if times else None
                    except DealerbotError:
                        nxt = None
                rows.append({"job": job, "next": nxt, "last": store.last_job_run(job.name),
                             "paused": aps is not None and aps.next_run_time is None})
        return c.page(request, "schedules.html", rows=rows, serving=c.scheduler is not None, error=error)

    @app.post("/schedules/{name}/{action}")
    async def pause_resume(request: Request, name: str, action: str, csrf: str = Form("")) -> Response:
        check_csrf(request, csrf)
        if c.scheduler is None or action not in ("pause", "resume") or c.scheduler.aps.get_job(name) is None:
            raise HTTPException(404, "没有这个定时任务，或调度程序未在本进程运行")
        getattr(c.scheduler.aps, f"{action}_job")(name)
        return RedirectResponse("/schedules", status_code=303)

    @app.get("/health", response_class=HTMLResponse)
    async def health(request: Request) -> HTMLResponse:
        from dealerbot.running.context import account_key

        portals = []
        with c.store() as store:
            for name in settings.portal_names:
                portal = settings.portal(name)
                state = settings.path("state") / f"{name}-{portal.username or 'default'}.json"
                checked = settings.path("state") / f"selectors-check-{name}.json"
                try:
                    check = json.loads(checked.read_text(encoding="utf-8")) if checked.is_file() else None
                except ValueError:
                    check = None
                portals.append({
                    "name": name, "url": portal.url, "username": portal.username,
                    "login": datetime.fromtimestamp(state.stat().st_mtime) if state.is_file() else None,
                    "refused": store.login_refusal(account_key(name, portal)),
                    "check": check,
                    "last_ok": next((r for r in store.runs(200) if r.status == "succeeded"
                                     and r.bot.startswith(name)), None),
                })
        return c.page(request, "health.html", portals=portals)

    @app.get("/stores", response_class=HTMLResponse)
    async def stores(request: Request) -> HTMLResponse:
        """A dealership group: every store's last sync, failures, reviews waiting and queue."""
        if not settings.is_group:
            raise HTTPException(404, "没有配置集团门店 ([stores.*])")
        from dealerbot.group.status import group_status

        try:
            status = await group_status(settings)
        except DealerbotError as exc:
            return c.page(request, "stores.html", code=503, status=None, error=str(exc), group=settings.group)
        return c.page(request, "stores.html", status=status, group=settings.group)

    @app.post("/stores/{code}/sync")
    async def store_sync(request: Request, code: str, csrf: str = Form("")) -> Response:
        """Queue a sync of one store (or ``all``) for the group's workers."""
        check_csrf(request, csrf)
        if not settings.is_group or (code != "all" and code not in settings.stores):
            raise HTTPException(404, "没有这个门店")
        from dealerbot.group.engine import GroupEngine

        try:
            async with GroupEngine(settings) as engine:
                for store in (list(settings.stores) if code == "all" else [code]):
                    await engine.defer(store, "sync", job="console-sync", trigger="console")
        except DealerbotError as exc:
            return c.page(request, "stores.html", code=503, status=None, error=str(exc), group=settings.group)
        return RedirectResponse("/stores", status_code=303)

    @app.get("/stores/{code}", response_class=HTMLResponse)
    async def store_runs(request: Request, code: str) -> HTMLResponse:
        """One store of the group: its latest runs and what waits for review."""
        if code not in settings.stores:
            raise HTTPException(404, "没有这个门店")
        with c.store() as store:
            dealership = store.for_code(code)
            runs = dealership.runs(50)
            waiting = len(dealership.actions(states=("planned", "failed")))
            again = sum(1 for a in dealership.actions(states=("planned", "failed")) if a.note.startswith(REAPPROVAL))
        return c.page(request, "store.html", store_code=code, entry=settings.stores[code], runs=runs, waiting=waiting,
                      again=again)

    return app


def server_config(app: FastAPI, settings: Settings, host: str, port: int, **options: Any) -> Any:
    """uvicorn's configuration for the console ``app``: forwarding headers are believed only
    from ``[console] trusted_proxies``."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, **proxy_options(settings.console.trusted_proxies), **options)

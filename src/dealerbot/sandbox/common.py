"""Pieces shared by the OEM portal and the DMS: sessions, accounts, optional behaviours,
templates and the common admin endpoints.

Nothing here is module-level mutable state: each app gets its own :class:`Runtime`
(``app.state.rt``).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from .config import BEHAVIOUR_KEYS, SandboxConfig, in_window
from .state import SandboxState

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PAGE_SIZE = 20
MAX_FAILED_LOGINS = 5
SESSION_ROTATE_GRACE_SECONDS = 1.0  # a renewed session id still works this long (session_rotate_requests)
COUNTER_KEYS = ("requests", "logins", "failed_logins", "rate_limited", "errors_injected", "maintenance_hits",
                "api_requests", "detail_views", "exports",
                "rate_window_peak")  # the most requests one key sent in one rate-limit window


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html"]), auto_reload=False)
    env.filters["money"] = lambda v: "" if v is None or v == "" else f"{float(v):,.2f}"
    env.filters["dt"] = lambda v: (v or "").replace("T", " ")
    return env


@dataclass
class Session:
    sid: str
    csrf: str
    last_seen: float
    user: str | None = None          # account key once logged in
    served: int = 0                  # requests answered while logged in (session_rotate_requests)
    display_name: str = ""
    notice_acked: bool = False
    flash: str | None = None
    pending: str | None = None       # account key past its password, waiting for a login step (SMS code, new password)
    captcha: str = ""                # the answer of the captcha this session was shown last


@dataclass
class Account:
    key: str
    password: str
    display_name: str
    failed: int = 0
    locked: bool = False              # after too many wrong passwords, until admin unlock/reset
    locked_until: float = 0.0         # temporary lock after rate-limit abuse
    password_changed: bool = False    # login_new_password: the first login changed it
    sms_code: str = ""                # the SMS code sent last (login_sms_code), as the phone shows it
    sms_sent_at: float = 0.0          # when it was sent (time.time())
    sms_sent: int = 0                 # how many codes were sent
    sms_wrong: int = 0                # wrong codes typed since the last right one


@dataclass
class Runtime:
    """Per-app mutable runtime: behaviours, sessions, accounts, counters."""

    name: str
    cookie: str
    cfg: SandboxConfig
    state: SandboxState
    admin_token: str
    accounts_factory: Callable[[], dict[str, Account]]
    behaviours: dict = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    rate: dict[str, list] = field(default_factory=dict)  # key -> [window_start, count]
    retired: dict[str, float] = field(default_factory=dict)  # renewed session id -> valid until (monotonic)
    fail_next: list[dict] = field(default_factory=list)  # one-shot faults: {path, mode, count}
    write_fault_log: list[dict] = field(default_factory=list)  # the ground truth of write faults applied
    last_captcha: str = ""  # the answer of the captcha shown last (GET /__admin/captcha)
    lock: threading.RLock = field(default_factory=threading.RLock)
    rng: random.Random = field(default_factory=random.Random)
    templates: jinja2.Environment = field(default_factory=make_templates)

    def __post_init__(self) -> None:
        self.reset_runtime()

    def reset_runtime(self) -> None:
        with self.lock:
            self.behaviours = self.cfg.behaviours()
            self.rng = random.Random(self.cfg.fault_seed)
            self.accounts = self.accounts_factory()
            self.counters = {k: 0 for k in COUNTER_KEYS}
            self.rate = {}
            self.retired = {}
            self.fail_next = []
            self.write_fault_log = []
            self.last_captcha = ""

    def write_fault(self, kind: str, record: str) -> bool:
        """Whether the save of ``record`` (an OEM order no or ID number) meets write fault
        ``kind``: named in its ``records``, or drawn under its ``rate`` from a hash of the seed,
        the kind and the record (the same records whatever the order of the saves)."""
        spec = (self.behaviours.get("write_faults") or {}).get(kind)
        if not spec or not record:
            return False
        if record in spec.get("records", ()):
            return True
        rate = spec.get("rate") or 0.0
        if not rate:
            return False
        digest = hashlib.sha256(f"{self.behaviours.get('fault_seed')}:{kind}:{record}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    def log_write_fault(self, kind: str, record: str, fld: str, typed: object, stored: object) -> None:
        with self.lock:
            self.write_fault_log.append({"kind": kind, "record": record, "field": fld, "typed": typed, "stored": stored})

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + n

    # ---- sessions ------------------------------------------------------------------------
    def new_session(self) -> Session:
        s = Session(sid=secrets.token_urlsafe(24), csrf=secrets.token_urlsafe(24), last_seen=time.monotonic())
        with self.lock:
            if len(self.sessions) > 50_000:  # keep memory bounded under cookieless floods
                idle = self.behaviours["session_idle_seconds"]
                now = time.monotonic()
                self.sessions = {k: v for k, v in self.sessions.items() if now - v.last_seen <= idle}
            self.sessions[s.sid] = s
        return s

    def drop_sessions_of(self, user: str) -> None:
        with self.lock:
            for k in [k for k, s in self.sessions.items() if s.user == user]:
                del self.sessions[k]

    def expire_all(self) -> int:
        with self.lock:
            for s in self.sessions.values():
                s.last_seen = -math.inf
            return len(self.sessions)

    def render(self, request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        sess: Session | None = getattr(request.state, "session", None)
        ctx.setdefault("session", sess)
        ctx.setdefault("csrf", sess.csrf if sess else "")
        html = self.templates.get_template(name).render(**ctx)
        return HTMLResponse(html, status_code=status_code)

    # ---- accounts ------------------------------------------------------------------------
    def check_login(self, key: str, password: str) -> tuple[bool, str]:
        """Returns (ok, error message)."""
        with self.lock:
            acc = self.accounts.get(key)
            if acc is None:
                self.count("failed_logins")
                return False, "用户名或密码错误"
            if acc.locked or acc.locked_until > time.time():
                self.count("failed_logins")
                return False, "账号已锁定，请联系管理员解锁"
            if not secrets.compare_digest(acc.password.encode(), password.encode()):
                self.count("failed_logins")
                if self.name == "oem":
                    acc.failed += 1
                    if acc.failed >= MAX_FAILED_LOGINS:
                        acc.locked = True
                        return False, "账号已锁定，请联系管理员解锁"
                    return False, f"用户名或密码错误，还可尝试 {MAX_FAILED_LOGINS - acc.failed} 次"
                return False, "用户名或密码错误"
            acc.failed = 0
            self.count("logins")
            return True, ""

    def take_fault(self, path: str, logged_in: bool) -> str | None:
        """The one-shot fault planted for ``path`` (``POST /__admin/fail-next``), if any is left
        (an "expire" fault waits for a logged-in session)."""
        with self.lock:
            for fault in self.fail_next:
                if path == fault["path"] and fault["count"] > 0 and (logged_in or fault["mode"] != "expire"):
                    fault["count"] -= 1
                    return str(fault["mode"])
        return None

    def unlock(self, key: str) -> bool:
        with self.lock:
            acc = self.accounts.get(key)
            if acc is None:
                return False
            acc.failed, acc.locked, acc.locked_until = 0, False, 0.0
            return True


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def safe_next(value: str | None, default: str) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def login_redirect(request: Request, expired: bool) -> RedirectResponse:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    url = "/login?" + ("expired=1&" if expired else "") + "next=" + quote(path, safe="")
    return RedirectResponse(url, status_code=303)


def require_login(request: Request) -> Session | Response:
    """The logged-in session, or the response to send instead (redirect or 401)."""
    sess: Session | None = request.state.session
    if sess is not None and sess.user:
        return sess
    expired = bool(getattr(request.state, "expired", False))
    if wants_json(request):
        return JSONResponse({"error": "session_expired" if expired else "not_logged_in"}, status_code=401)
    return login_redirect(request, expired)


def check_csrf(request: Request, token: str | None) -> bool:
    sess: Session | None = request.state.session
    return bool(sess and token and secrets.compare_digest(sess.csrf.encode(), token.encode()))


def _problem(rt: Runtime, request: Request, status: int, title: str, message: str, code: str) -> Response:
    if wants_json(request):
        return JSONResponse({"error": code, "message": message}, status_code=status)
    html = rt.templates.get_template("problem.html").render(title=title, message=message, status=status,
                                                             app=rt.name)
    return HTMLResponse(html, status_code=status)


def install_middleware(app: FastAPI, rt: Runtime) -> None:
    """Sessions, idle expiry and the optional behaviours (maintenance, rate limit, errors, slowness)."""

    @app.middleware("http")
    async def behaviours(request: Request, call_next):  # noqa: ANN001
        path = request.url.path
        if path.startswith("/__admin"):
            request.state.session = None
            return await call_next(request)
        rt.count("requests")
        b = rt.behaviours
        if b["maintenance_window"]:
            now = datetime.now()
            if in_window(b["maintenance_window"], now.hour * 60 + now.minute):
                rt.count("maintenance_hits")
                return _problem(rt, request, 503, "系统维护中",
                                f"系统维护中（维护时间 {b['maintenance_window']}），请稍后再试。", "maintenance")

        # session lookup and idle expiry (static assets neither touch nor expire sessions)
        now_m = time.monotonic()
        if path.startswith("/static/"):
            request.state.session = None
            request.state.expired = request.state.new_session = False
            return await call_next(request)
        sid = request.cookies.get(rt.cookie)
        sess = rt.sessions.get(sid) if sid else None
        if sess is not None and sid in rt.retired and rt.retired[sid] < now_m:
            with rt.lock:  # a renewed id past its grace: as if unknown
                rt.sessions.pop(sid, None)
                rt.retired.pop(sid, None)
            sess = None
        request.state.expired = False
        request.state.new_session = False
        if sess is not None and now_m - sess.last_seen > b["session_idle_seconds"]:
            request.state.expired = sess.user is not None
            with rt.lock:
                rt.sessions.pop(sess.sid, None)
            sess = None
        if sess is None:
            sess = rt.new_session()
            request.state.new_session = True
        if sess is not None:
            sess.last_seen = now_m
        request.state.session = sess

        # rate limit: per account once logged in (every session of it counts, as real portals
        # count), else per session, else per client address (no session cookie yet)
        limit = b["rate_limit_per_minute"]
        if limit:
            if sess is not None and sess.user:
                key = "a:" + sess.user
            elif sid and not request.state.new_session:
                key = "s:" + sid
            else:
                key = "c:" + (request.client.host if request.client else "?")
            with rt.lock:
                win = rt.rate.get(key)
                if win is None or now_m - win[0] >= b["rate_limit_window_seconds"]:
                    win = rt.rate[key] = [now_m, 0]
                win[1] += 1
                n = win[1]
                rt.counters["rate_window_peak"] = max(rt.counters["rate_window_peak"], n)
            if n > limit:
                rt.count("rate_limited")
                if n > 2 * limit and sess is not None and sess.user:
                    acc = rt.accounts.get(sess.user)
                    if acc is not None:
                        acc.locked_until = time.time() + b["rate_limit_lock_minutes"] * 60
                    rt.drop_sessions_of(sess.user)
                    return _problem(rt, request, 429, "访问过于频繁",
                                    "访问过于频繁，账号已被临时锁定，请稍后再试。", "account_locked")
                return _problem(rt, request, 429, "访问过于频繁",
                                "访问过于频繁，请稍后再试。继续频繁访问将导致账号被锁定。", "rate_limited")

        fault = rt.take_fault(path, logged_in=bool(sess is not None and sess.user))
        if fault == "500":
            rt.count("errors_injected")
            return _problem(rt, request, 500, "系统错误", "系统繁忙，请稍后重试。（错误代码 500）", "server_error")
        if fault == "expire":
            with rt.lock:
                rt.sessions.pop(sess.sid, None)
            request.state.session = None
            request.state.expired = True
            return require_login(request)

        if b["error_rate"] and rt.rng.random() < b["error_rate"]:
            rt.count("errors_injected")
            return _problem(rt, request, 500, "系统错误", "系统繁忙，请稍后重试。（错误代码 500）", "server_error")
        if b["slow_rate"] and rt.rng.random() < b["slow_rate"]:
            await asyncio.sleep(b["slow_ms"] / 1000)

        response = await call_next(request)
        if request.state.new_session and sess is not None and rt.sessions.get(sess.sid) is sess:
            response.set_cookie(rt.cookie, sess.sid, httponly=True, samesite="lax", path="/")
        elif sess is not None and sess.user and b["session_rotate_requests"] and rt.sessions.get(sess.sid) is sess:
            sess.served += 1
            if sess.served % b["session_rotate_requests"] == 0:
                # Renew the session id, as portals do that rotate their session cookie; the old
                # id keeps working a moment, for requests already on their way.
                with rt.lock:
                    if len(rt.retired) > 1000:  # forget ids long past their grace
                        for old in [k for k, until in rt.retired.items() if until < now_m]:
                            rt.retired.pop(old, None)
                            rt.sessions.pop(old, None)
                    rt.retired[sess.sid] = now_m + SESSION_ROTATE_GRACE_SECONDS
                    sess.sid = secrets.token_urlsafe(24)
                    rt.sessions[sess.sid] = sess
                response.set_cookie(rt.cookie, sess.sid, httponly=True, samesite="lax", path="/")
        return response

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception):  # noqa: ANN001
        detail = getattr(exc, "detail", None)
        msg = detail if isinstance(detail, str) and detail != "Not Found" else "您访问的页面不存在。"
        return _problem(rt, request, 404, "页面不存在", msg, "not_found")


def paged_search(request: Request, search: Callable[[str, int, int], tuple[int, list[dict]]]) -> dict[str, Any]:
    """Template values of a searchable list screen: ``?q=`` and ``?page=`` (20 a page)."""
    q = (request.query_params.get("q") or "").strip()
    try:
        page = max(1, int(request.query_params.get("page") or 1))
    except ValueError:
        page = 1
    total, rows = search(q, PAGE_SIZE, (page - 1) * PAGE_SIZE)

    def qs(p: int) -> str:
        return urlencode({k: v for k, v in (("q", q), ("page", p)) if v})

    return {"rows": rows, "q": q, "page": page, "pages": max(1, math.ceil(total / PAGE_SIZE)), "total": total, "qs": qs}


def admin_guard(rt: Runtime, request: Request) -> None:
    token = request.headers.get("x-admin-token", "")
    if not token or not secrets.compare_digest(token.encode(), rt.admin_token.encode()):
        raise HTTPException(status_code=401, detail="admin token required (header X-Admin-Token)")


def common_admin_router(rt: Runtime, reset_data: Callable[[], None]) -> APIRouter:
    r = APIRouter(prefix="/__admin")

    @r.get("/health")
    async def health() -> dict:
        return {"ok": True, "app": rt.name}

    @r.post("/reset")
    async def reset(request: Request) -> dict:
        admin_guard(rt, request)
        reset_data()
        rt.reset_runtime()
        return {"ok": True}

    @r.get("/counters")
    async def counters(request: Request) -> dict:
        admin_guard(rt, request)
        with rt.lock:
            return dict(rt.counters)

    @r.get("/behaviours")
    async def get_behaviours(request: Request) -> dict:
        admin_guard(rt, request)
        return dict(rt.behaviours)

    @r.put("/behaviours")
    async def put_behaviours(request: Request) -> JSONResponse:
        admin_guard(rt, request)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be a JSON object"}, status_code=422)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=422)
        unknown = sorted(set(body) - set(BEHAVIOUR_KEYS))
        if unknown:
            return JSONResponse({"error": f"unknown behaviour keys: {', '.join(unknown)}",
                                 "allowed": list(BEHAVIOUR_KEYS)}, status_code=422)
        merged = {**rt.cfg.model_dump(), **rt.behaviours, **body}
        try:
            checked = SandboxConfig(**merged)
        except ValidationError as e:
            errs = [{"key": ".".join(str(x) for x in err["loc"]), "message": err["msg"]} for err in e.errors()]
            return JSONResponse({"error": "invalid behaviour value", "details": errs}, status_code=422)
        with rt.lock:
            rt.behaviours = checked.behaviours()
            rt.rate = {}
            if "fault_seed" in body:
                rt.rng = random.Random(checked.fault_seed)
        return JSONResponse(dict(rt.behaviours))

    @r.get("/write-faults")
    async def write_faults(request: Request) -> list[dict]:
        """The ground truth of ``write_faults``: every save stored otherwise than typed (kind,
        record, field, typed, stored), in order."""
        admin_guard(rt, request)
        with rt.lock:
            return list(rt.write_fault_log)

    @r.post("/fail-next")
    async def fail_next(request: Request) -> JSONResponse:
        """Plant a one-shot fault: the next ``count`` requests to ``path`` answer HTTP 500
        (``mode`` "500") or find their session expired (``mode`` "expire")."""
        admin_guard(rt, request)
        body = await request.json()
        if not isinstance(body, dict) or body.get("mode") not in ("500", "expire") or not str(body.get("path", "")).startswith("/"):
            return JSONResponse({"error": "want {path: '/...', mode: '500' | 'expire', count: n}"}, status_code=422)
        with rt.lock:
            rt.fail_next.append({"path": body["path"], "mode": body["mode"], "count": int(body.get("count", 1))})
        return JSONResponse({"ok": True})

    @r.post("/expire-sessions")
    async def expire_sessions(request: Request) -> dict:
        admin_guard(rt, request)
        return {"ok": True, "expired": rt.expire_all()}

    return r

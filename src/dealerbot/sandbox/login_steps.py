"""The OEM portal's login steps that need a person (behaviours ``login_sms_code``,
``login_captcha``, ``login_new_password``; all off by default): an SMS code after the password
(the phone's view of it: ``GET /__admin/sms``), an image captcha on the login form (its answer:
``GET /__admin/captcha``) and a forced password change on an account's first login.

Each step's page lives at its own path (not under ``/login``): a bot knows which step shows by
the fields on the screen, as on a real portal.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .common import Account, Runtime, Session, admin_guard, check_csrf, safe_next
from .config import MAX_WRONG_SMS_CODES, SMS_CODE_SECONDS

SMS_PATH = "/login-sms"
NEW_PASSWORD_PATH = "/change-password"
MIN_PASSWORD_LENGTH = 8

# Seven-segment digits: which of the segments a..g (top, top-right, bottom-right, bottom,
# bottom-left, top-left, middle) each digit lights.
_SEGMENTS = {"0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc", "5": "afgcd", "6": "afgedc",
             "7": "abc", "8": "abcdefg", "9": "abcdfg"}
_SEGMENT_LINES = {"a": (0, 0, 1, 0), "b": (1, 0, 1, 1), "c": (1, 1, 1, 2), "d": (0, 2, 1, 2), "e": (0, 1, 0, 2),
                  "f": (0, 0, 0, 1), "g": (0, 1, 1, 1)}


def captcha_svg(answer: str, rng: secrets.SystemRandom | None = None) -> str:
    """An SVG image of ``answer``'s digits drawn as slanted segment strokes over noise lines (no
    text node: the answer is only in the picture)."""
    r = rng or secrets.SystemRandom()
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="120" height="44" viewBox="0 0 120 44">',
             '<rect width="120" height="44" fill="#f3f1e8"/>']
    for _ in range(6):
        parts.append(f'<line x1="{r.randint(0, 120)}" y1="{r.randint(0, 44)}" x2="{r.randint(0, 120)}" '
                     f'y2="{r.randint(0, 44)}" stroke="#b9b3a0" stroke-width="1"/>')
    for i, digit in enumerate(answer):
        x0, y0, w, h, slant = 12 + i * 26 + r.randint(-2, 2), 8 + r.randint(-2, 2), 14, 13, r.uniform(-0.2, 0.2)
        for seg in _SEGMENTS[digit]:
            x1, y1, x2, y2 = _SEGMENT_LINES[seg]
            ax, ay, bx, by = x0 + x1 * w, y0 + y1 * h, x0 + x2 * w, y0 + y2 * h
            parts.append(f'<line x1="{ax - (ay - 22) * slant:.1f}" y1="{ay}" x2="{bx - (by - 22) * slant:.1f}" '
                         f'y2="{by}" stroke="#1f3a5f" stroke-width="3" stroke-linecap="round"/>')
    parts.append("</svg>")
    return "".join(parts)


def new_captcha(rt: Runtime, sess: Session) -> None:
    """Give ``sess`` a new captcha (4 digits), remembered as the last one shown."""
    sess.captcha = "".join(secrets.choice("0123456789") for _ in range(4))
    with rt.lock:
        rt.last_captcha = sess.captcha


def send_sms(rt: Runtime, acc: Account) -> None:
    """"Send" a new 6-digit code to the account's phone (kept for ``GET /__admin/sms``)."""
    with rt.lock:
        acc.sms_code = f"{secrets.randbelow(1_000_000):06d}"
        acc.sms_sent_at = time.time()
        acc.sms_sent += 1


def next_step(rt: Runtime, acc: Account) -> str | None:
    """The path of the step an account past its password (or SMS code) still owes, or None."""
    if rt.behaviours.get("login_new_password") and not acc.password_changed:
        return NEW_PASSWORD_PATH
    return None


def after_password(rt: Runtime, request: Request, user: str, nxt: str,
                   finish: Callable[[Request, str, str], Response]) -> Response:
    """Where a right password leads: the SMS page (a code is sent), the new-password page, or in."""
    sess: Session = request.state.session
    acc = rt.accounts[user]
    if rt.behaviours.get("login_sms_code"):
        send_sms(rt, acc)
        sess.pending = user
        return RedirectResponse(f"{SMS_PATH}?next={nxt}", status_code=303)
    step = next_step(rt, acc)
    if step:
        sess.pending = user
        return RedirectResponse(f"{step}?next={nxt}", status_code=303)
    return finish(request, user, nxt)


def register(app: FastAPI, rt: Runtime, finish: Callable[[Request, str, str], Response]) -> None:
    """Add the step pages, the captcha image and their admin endpoints to the OEM ``app``;
    ``finish(request, user, next)`` logs the user in."""

    def pending(request: Request) -> tuple[Session, Account] | None:
        sess: Session | None = request.state.session
        if sess is None or not sess.pending or sess.pending not in rt.accounts:
            return None
        return sess, rt.accounts[sess.pending]

    def back_to_login(nxt: str) -> RedirectResponse:
        return RedirectResponse(f"/login?next={nxt}", status_code=303)

    async def step_post(request: Request, template: str, **page: Any) -> tuple[Any, str, Session, Account] | Response:
        """A step screen's POST: its form, ``next``, session and account; or the answer that
        ends it here (no login pending: back to the login; a stale form: 403 on the same page)."""
        form = await request.form()
        nxt = safe_next(str(form.get("next") or ""), "/orders")
        found = pending(request)
        if found is None:
            return back_to_login(nxt)
        if not check_csrf(request, str(form.get("csrf_token") or "")):
            return rt.render(request, template, status_code=403, error="页面已过期，请刷新后重试", next=nxt, **page)
        return (form, nxt, *found)

    @app.get("/login/captcha.svg")
    async def captcha_image(request: Request) -> Response:
        sess: Session | None = request.state.session
        if sess is None or not sess.captcha:
            return Response(status_code=404)
        return Response(captcha_svg(sess.captcha), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @app.get(SMS_PATH, response_class=HTMLResponse)
    async def sms_page(request: Request, next: str | None = None):  # noqa: A002
        nxt = safe_next(next, "/orders")
        found = pending(request)
        if found is None:
            return back_to_login(nxt)
        return rt.render(request, "oem_login_sms.html", error="", next=nxt, mobile="138****0021")

    @app.post(SMS_PATH)
    async def sms_post(request: Request):
        got = await step_post(request, "oem_login_sms.html", mobile="138****0021")
        if isinstance(got, Response):
            return got
        form, nxt, sess, acc = got
        code = str(form.get("sms_code") or "").strip()
        with rt.lock:
            if acc.locked:
                sess.pending = None
                return rt.render(request, "oem_login.html", error="账号已锁定，请联系管理员解锁", next=nxt,
                                 dealer_code="", username="", captcha=False)
            if not acc.sms_code or time.time() - acc.sms_sent_at > SMS_CODE_SECONDS:
                acc.sms_code = ""
                sess.pending = None
                return rt.render(request, "oem_login.html", error="短信验证码已过期，请重新登录", next=nxt,
                                 dealer_code="", username="", captcha=False)
            if not secrets.compare_digest(acc.sms_code.encode(), code.encode()):
                acc.sms_wrong += 1
                rt.count("failed_logins")
                if acc.sms_wrong >= MAX_WRONG_SMS_CODES:
                    acc.locked, acc.sms_code, sess.pending = True, "", None
                    return rt.render(request, "oem_login.html", error="短信验证码错误次数过多，账号已锁定，请联系管理员解锁",
                                     next=nxt, dealer_code="", username="", captcha=False)
                return rt.render(request, "oem_login_sms.html", error=f"短信验证码错误，还可尝试 {MAX_WRONG_SMS_CODES - acc.sms_wrong} 次",
                                 next=nxt, mobile="138****0021")
            acc.sms_code, acc.sms_wrong = "", 0
        step = next_step(rt, acc)
        if step:
            return RedirectResponse(f"{step}?next={nxt}", status_code=303)
        sess.pending = None
        return finish(request, acc.key, nxt)

    @app.get(NEW_PASSWORD_PATH, response_class=HTMLResponse)
    async def new_password_page(request: Request, next: str | None = None):  # noqa: A002
        nxt = safe_next(next, "/orders")
        if pending(request) is None:
            return back_to_login(nxt)
        return rt.render(request, "oem_new_password.html", error="", next=nxt)

    @app.post(NEW_PASSWORD_PATH)
    async def new_password_post(request: Request):
        got = await step_post(request, "oem_new_password.html")
        if isinstance(got, Response):
            return got
        form, nxt, sess, acc = got
        new, confirm = str(form.get("new_password") or ""), str(form.get("confirm_password") or "")
        error = ""
        if len(new) < MIN_PASSWORD_LENGTH:
            error = f"新密码至少 {MIN_PASSWORD_LENGTH} 位"
        elif new != confirm:
            error = "两次输入的新密码不一致"
        elif new == acc.password:
            error = "新密码不能与原密码相同"
        if error:
            return rt.render(request, "oem_new_password.html", error=error, next=nxt)
        with rt.lock:
            acc.password, acc.password_changed = new, True
        sess.pending = None
        return finish(request, acc.key, nxt)

    # ---- admin: what the phone shows, the captcha's answer, the accounts' login state ------------
    @app.get("/__admin/sms")
    async def admin_sms(request: Request):
        """The last SMS code sent to the account (``dealer_code``, ``username``; default the demo
        account), as the phone shows it: ``{code, sent, age_seconds, expired}``."""
        admin_guard(rt, request)
        q = request.query_params
        key = f"{q.get('dealer_code', 'D31001')}/{q.get('username', 'dealer_admin')}"
        acc = rt.accounts.get(key)
        if acc is None:
            return JSONResponse({"error": "unknown account"}, status_code=404)
        age = time.time() - acc.sms_sent_at if acc.sms_sent else None
        return {"code": acc.sms_code or None, "sent": acc.sms_sent, "age_seconds": age,
                "expired": age is not None and age > SMS_CODE_SECONDS}

    @app.post("/__admin/sms/age")
    async def admin_sms_age(request: Request):
        """Make the account's current code ``seconds`` older (to see it expire)."""
        admin_guard(rt, request)
        body = await request.json()
        acc = rt.accounts.get(f"{body.get('dealer_code', 'D31001')}/{body.get('username', 'dealer_admin')}")
        if acc is None:
            return JSONResponse({"error": "unknown account"}, status_code=404)
        with rt.lock:
            acc.sms_sent_at -= float(body.get("seconds", SMS_CODE_SECONDS + 1))
        return {"ok": True}

    @app.get("/__admin/captcha")
    async def admin_captcha(request: Request):
        """The answer of the captcha shown last."""
        admin_guard(rt, request)
        return {"answer": rt.last_captcha or None}

    @app.get("/__admin/accounts")
    async def admin_accounts(request: Request):
        """Each account's login state (never its password)."""
        admin_guard(rt, request)
        with rt.lock:
            return {k: {"locked": a.locked, "failed": a.failed, "sms_wrong": a.sms_wrong, "sms_sent": a.sms_sent,
                        "password_changed": a.password_changed} for k, a in rt.accounts.items()}

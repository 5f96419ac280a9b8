"""The console's 状态 page: each portal (``#portal-<name>``, for other pages to link to) with its
saved login, refused password, last selector check and
last canary before writing (写入前检查: its screen and missing names when the portal changed); a form to set or replace the portal's
password (kept where ``dealerbot credentials set`` keeps it, never shown again, the refusal
forgotten, the change audited) and a 检查页面 button running ``dealerbot selectors check``."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from loguru import logger

from dealerbot.errors import DealerbotError

if TYPE_CHECKING:
    from dealerbot.console.app import Console


def register(app: FastAPI, c: Console) -> None:
    """Add the health page, its password forms and its selector checks to ``app``."""
    settings = c.settings
    check_csrf = c.check_csrf

    def environment_wins(name: str) -> str | None:
        """What supplies the portal's password ahead of the keyring in this process, if anything."""
        from dealerbot.credentials import environment_wins as env_first

        if c.passwords and c.passwords.get(name):
            return "启动控制台时给定的密码 (a password given when the console was started)"
        variable = env_first(name, settings.own_store)
        return f"环境变量 {variable} (environment variable)" if variable else None

    def has_password(name: str) -> bool:
        """Whether a password for the portal is stored anywhere this process looks (never read out)."""
        from dealerbot.credentials import has_password as stored

        return bool(c.passwords and c.passwords.get(name)) or stored(name, settings.portal(name).username,
                                                                      settings.own_store)

    def failed_run(store: Any, name: str) -> Any:
        """The newest failed (or interrupted) run about portal ``name`` that still needs a
        person (its bot has not succeeded since), or None."""
        from dealerbot.console.home import needs_a_person
        from dealerbot.console.run_page import failure_portal

        for run, _advice in needs_a_person(store.runs(300)):
            portal = failure_portal(c, run)
            if portal is not None and portal.name == name:
                return run
        return None

    def unchangeable(name: str) -> str:
        return f"{c.names.portal(name)}的密码由管理员在服务器上设置，这里不能更换；需要更换请联系管理员。"

    def portals() -> list[dict[str, Any]]:
        from dealerbot.running.context import account_key
        from dealerbot.web.canary import last_canary

        out = []
        with c.store() as store:
            for name in settings.portal_names:
                portal = settings.portal(name)
                state = settings.path("state") / f"{name}-{portal.username or 'default'}.json"
                checked = settings.path("state") / f"selectors-check-{name}.json"
                try:
                    check = json.loads(checked.read_text(encoding="utf-8")) if checked.is_file() else None
                except ValueError:
                    check = None
                out.append({
                    "name": name, "title": c.names.portal(name), "url": portal.url, "username": portal.username,
                    "has_password": portal.needs_login and has_password(name), "unchangeable": unchangeable(name),
                    "needs_login": portal.needs_login,
                    "login": datetime.fromtimestamp(state.stat().st_mtime) if state.is_file() else None,
                    "refused": store.login_refusal(account_key(name, portal)),
                    "check": check, "environment": environment_wins(name),
                    "canary": last_canary(settings.path("state"), name),
                    "last_ok": next((r for r in store.runs(200) if r.status == "succeeded"
                                     and r.bot.startswith(name)), None),
                })
        return out

    def page(request: Request, code: int = 200, **values: Any) -> HTMLResponse:
        return c.page(request, "health.html", code, portals=portals(), **values)

    def saved_values(name: str) -> dict[str, Any]:
        """What 状态 says after portal ``name``'s password was saved: the failed run to run again."""
        if name not in settings.portal_names:
            return {"saved": ""}
        with c.store() as store:
            return {"saved": name, "rerun": failed_run(store, name)}

    def known(name: str) -> None:
        if name not in settings.portal_names:
            raise HTTPException(404, "没有这个门户")

    @app.get("/health", response_class=HTMLResponse)
    async def health(request: Request, saved: str = "") -> HTMLResponse:
        return page(request, **saved_values(saved))

    @app.post("/health/{name}/password")
    async def set_password(request: Request, name: str, csrf: str = Form(""), password: str = Form(""),
                           confirm: str = Form("")) -> Response:
        from dealerbot.console.timetable import actor_of
        from dealerbot.credentials import replace_password
        from dealerbot.errors import CredentialsMissing

        check_csrf(request, csrf)
        known(name)
        title = c.names.portal(name)
        wins = environment_wins(name)
        problem = detail = ""
        if wins:
            problem, detail = unchangeable(name), f"{wins}: it is used before the keyring's"
        elif not password:
            problem = f"请输入{title}的新密码"
        elif password != confirm:
            problem = f"{title}：两次输入的密码不一致，没有保存"
        if problem:
            return page(request, 400, error=problem, error_detail=detail)
        actor = actor_of(request)
        try:
            with c.store() as store:
                backend = await asyncio.to_thread(replace_password, settings, store, name, password, actor)
        except CredentialsMissing as exc:  # no usable keyring on this machine: nothing the clerk can do
            return page(request, 409, error="这台电脑无法保存密码（系统钥匙串不可用），请联系管理员。",
                        error_detail=str(exc))
        except DealerbotError as exc:
            return page(request, 409, error=str(exc))
        logger.info("console: the {} password was replaced by {} (keyring: {})", name, actor, backend)
        return RedirectResponse(f"/health?saved={name}#portal-{name}", status_code=303)

    @app.post("/health/{name}/check")
    async def check(request: Request, name: str, csrf: str = Form("")) -> Response:
        from dealerbot.credentials import password_source
        from dealerbot.running.context import account_key
        from dealerbot.running.registry import portal_app
        from dealerbot.running.runner import make_masker
        from dealerbot.web.selectors_check import check_selectors, record_check

        check_csrf(request, csrf)
        known(name)
        portal = settings.portal(name)
        try:
            password = password_source(c.passwords, settings.own_store)(name, portal.username)
            with c.store() as store:  # a password the portal refused is never typed again, here neither
                refused = store.login_refusal(account_key(name, portal))
                if refused is not None and refused["fingerprint"] == store.password_fingerprint(password):
                    return page(request, 409,
                                error=f"{c.names.portal(name)}拒绝过现在的密码，为免账号被锁定不再尝试：请先在下面设置新密码，再检查页面")
            report = await check_selectors(settings, name, portal_app(name, settings.home),
                                           make_masker(settings, c.passwords, [name]),
                                           passwords=dict(c.passwords) if c.passwords else None)
            await asyncio.to_thread(record_check, settings, name, report)
        except (DealerbotError, OSError) as exc:
            return page(request, 502, error=f"{c.names.portal(name)}的页面检查没有完成：{c.masker(str(exc))}")
        return RedirectResponse(f"/health#portal-{name}", status_code=303)

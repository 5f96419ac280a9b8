"""The console's 状态 page: each portal's saved login, refused password and last selector check."""
from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

if TYPE_CHECKING:
    from dealerbot.console.app import Console


def register(app: FastAPI, c: Console) -> None:
    """Add the health page to ``app``."""
    settings = c.settings

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

"""The console's 门店 pages for a dealership group: every store's state; queue a sync."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dealerbot.errors import DealerbotError
from dealerbot.rekey.ledger import REAPPROVAL

if TYPE_CHECKING:
    from dealerbot.console.app import Console


def register(app: FastAPI, c: Console) -> None:
    """Add the group's store pages to ``app``."""
    settings = c.settings
    check_csrf = c.check_csrf

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

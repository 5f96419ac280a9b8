"""The console's home page (今日): where a clerk lands after logging in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

if TYPE_CHECKING:
    from dealerbot.console.app import Console


def register(app: FastAPI, c: Console) -> None:
    """Add the home page to ``app``."""

    @app.get("/")
    async def home() -> Response:
        return RedirectResponse("/bots", status_code=303)

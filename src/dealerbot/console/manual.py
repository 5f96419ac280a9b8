"""The console's 操作手册 (operator's manual): one page in Chinese, what to do each morning, what
each status means, what to do when something fails.

Its text is ``manual.zh-CN.md`` beside this module (shipped in the wheel; README links to it); the
failure list is made from :data:`dealerbot.failure_text.ADVICE`, the words the run pages use, so
the manual and the console cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt
from markupsafe import Markup

from dealerbot.failure_text import ADVICE

if TYPE_CHECKING:
    from dealerbot.console.app import Console

MANUAL = Path(__file__).with_name("manual.zh-CN.md")


def manual_markdown() -> str:
    """The manual's Markdown, the failure list filled in (one line per distinct explanation)."""
    seen: dict[str, str] = {}
    for advice in ADVICE.values():
        seen.setdefault(advice.title, advice.action)
    failures = "\n".join(f"- **{title}**：{action}" for title, action in seen.items())
    return MANUAL.read_text(encoding="utf-8").replace("{failures}", failures)


def manual_html() -> str:
    """The manual as HTML (raw HTML in the Markdown is not passed through)."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(manual_markdown())


def register(app: FastAPI, c: Console) -> None:
    """Add the manual page to ``app``."""

    @app.get("/manual", response_class=HTMLResponse)
    async def manual(request: Request) -> HTMLResponse:
        return c.page(request, "manual.html", manual=Markup(manual_html()))  # noqa: S704 - our own file, HTML disabled

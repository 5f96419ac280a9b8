"""``dealerbot selectors check``: every selector resolved on the live portal."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dealerbot.cli.common import ConfigOpt, fail, log_to_console, make_console, settings_from
from dealerbot.errors import DealerbotError

selectors_app = typer.Typer(help="检查选择器文件与门户是否一致 (selector files against a live portal).", no_args_is_help=True)


@selectors_app.command("check")
def selectors_check(
    portal: Annotated[str, typer.Argument(help="门户名：oem、dms 或 [portals.<名称>] 中配置的门户")],
    headed: Annotated[bool, typer.Option("--headed")] = False,
    config: ConfigOpt = None,
) -> None:
    """在门户上逐个检查选择器：匹配、备用或缺失。

    Resolve every selector on the live portal: which match, which fall back, which are missing."""
    import asyncio

    from dealerbot.running.registry import portal_app
    from dealerbot.running.runner import make_masker
    from dealerbot.web.selectors_check import check_selectors

    settings = settings_from(config)
    log_to_console(settings, False)
    try:
        settings.portal(portal)  # an unknown portal is named before its page objects are looked for
        app = portal_app(portal, settings.home)
        report = asyncio.run(check_selectors(settings, portal, app, make_masker(settings, None), headed=headed))
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    from dealerbot.web.locators import portal_selectors_path

    table = Table(title=f"{portal_selectors_path(portal, home=settings.home)}，门户 {settings.portal(portal).url}")
    for col in ("选择器 (name)", "结果 (result)", "页面上匹配到的 (matched)"):
        table.add_column(col)
    colours = {"ok": "green", "fallback": "yellow", "missing": "red", "optional": "dim", "unchecked": "dim"}
    words = {"ok": "正常", "fallback": "用了备用", "missing": "缺失", "optional": "可选，未出现", "unchecked": "未检查"}
    for row in report:
        table.add_row(row.name, f"[{colours[row.result]}]{words[row.result]} {row.result}[/]", escape(row.detail))
    make_console().print(table)
    from dealerbot.web.selectors_check import record_check

    if record_check(settings, portal, report).get("missing"):  # kept for the console's 状态 page
        raise typer.Exit(1)

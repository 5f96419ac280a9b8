"""What every command shares: the root Typer app, the settings, rich output, errors that exit 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from dealerbot.errors import ConfigError, DealerbotError

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.data.dictionary import Dictionary
    from dealerbot.store import Store

app = typer.Typer(
    name="dealerbot",
    help="经销商RPA：在厂家门户（OEM）与DMS之间读取、核对、录入 (RPA bots between the OEM dealer portal and the DMS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags without <bool>, readable in any terminal or log
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="配置文件（默认 ./dealerbot.toml 或 $DEALERBOT_CONFIG）")]


def make_console(stderr: bool = False) -> Console:
    """Rich output for people; outside a terminal (cron, a pipe, a log file) plain lines that
    are never wrapped, so that paths and messages stay whole."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=240, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    make_console(stderr=True).print(f"[bold red]错误 (error):[/] {escape(message)}")
    return typer.Exit(code)


def settings_from(config: Path | None, *, store_needed: bool = False, **overrides: Any) -> Settings:
    """The settings; with ``store_needed`` (a command about one store's data or runs), a
    group's settings must name the store (``--store``).

    Raises:
        typer.Exit: 2 with the reason.
    """
    from dealerbot.config import load_settings

    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if store_needed and settings.is_group and settings.store_code not in settings.stores:
        raise fail(f"这是集团配置，此命令针对一家门店：请加 --store，例如 dealerbot --store {next(iter(settings.stores))} ..."
                    f"（门店：{', '.join(settings.stores)}）(a group's command for one store needs --store CODE)")
    return settings


def say_where(settings: Settings) -> None:
    """Without a config file, say loudly which portals and accounts a run will use."""
    if settings.source is None:
        make_console(stderr=True).print(
            f"[yellow]注意[/]：没有找到 dealerbot.toml，使用内置的演示设置：厂家门户 {settings.oem.url}"
            f"（{settings.oem.dealer_code} / {settings.oem.username}），DMS {settings.dms.url}（{settings.dms.username}）。"
            f"正式使用请 cp dealerbot.example.toml dealerbot.toml 并修改 (no config file: built-in sandbox defaults)"
        )


def log_to_console(settings: Settings, verbose: bool) -> None:
    from dealerbot.logsetup import add_console_sink
    from dealerbot.running.runner import make_masker

    add_console_sink(make_masker(settings, None), "DEBUG" if verbose else "WARNING")


def open_store(settings: Settings) -> Store:
    from dealerbot.store import Store

    try:
        return Store.open(settings.store_url, settings.store_code)
    except DealerbotError as exc:
        raise fail(str(exc)) from None


def masker_for(settings: Settings) -> Callable[[str], str]:
    """Masks mobiles, ID numbers and secrets in operator output (it may be captured in logs)."""
    from dealerbot.running.runner import make_masker

    return make_masker(settings, None)


def dictionary_for(settings: Settings) -> Dictionary:
    from dealerbot.data.dictionary import load_dictionary

    try:
        return load_dictionary(settings.dictionary_path, settings.dictionary_overlay)
    except DealerbotError as exc:
        raise fail(str(exc)) from None

"""``dealerbot credentials set|retry``: portal passwords in the OS keyring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dealerbot.cli.common import ConfigOpt, fail, make_console, open_store, settings_from
from dealerbot.errors import DealerbotError

if TYPE_CHECKING:
    from dealerbot.config import Settings

credentials_app = typer.Typer(help="门户密码（保存在系统钥匙串）(portal passwords in the OS keyring).", no_args_is_help=True)


@credentials_app.command("set")
def credentials_set(
    portal: Annotated[str, typer.Argument(help="门户名：oem、dms 或 [portals.<名称>] 中配置的门户")],
    config: ConfigOpt = None,
) -> None:
    """输入门户密码并保存到系统钥匙串。

    Prompt for a portal's password and store it in the OS keyring."""
    import getpass

    from dealerbot.credentials import replace_password

    settings = settings_from(config)
    try:
        username = settings.portal(portal).username
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    if not settings.portal(portal).needs_login:
        raise fail(f"门户 {portal} 不需要登录，无需密码；需要登录时请在配置中写明 username 或 login = true "
                   f"(portal {portal} has no login: no password to store)")
    password = typer.prompt(f"password for {portal} user {username}", hide_input=True, confirmation_prompt=True)
    try:
        with open_store(settings) as store:  # the refusal of the old one forgotten, the change audited
            backend = replace_password(settings, store, portal, password, f"终端（{getpass.getuser()}）")
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    make_console().print(f"已保存到系统钥匙串 (stored in the OS keyring: {backend})")


def _forget_refusal(settings: Settings, portal: str) -> bool:
    from dealerbot.running.context import account_key

    with open_store(settings) as store:
        return store.clear_login_refusal(account_key(portal, settings.portal(portal)))


@credentials_app.command("retry")
def credentials_retry(
    portal: Annotated[str, typer.Argument(help="门户名：oem、dms 或 [portals.<名称>] 中配置的门户")],
    config: ConfigOpt = None,
) -> None:
    """允许下次运行再试一次门户上次拒绝的密码（确认密码无误时）。

    Let the next run try the password the portal refused last time (when you are sure it is
    right, e.g. the account was unlocked). dealerbot never retries a refused password by itself."""
    settings = settings_from(config, store_needed=True)
    try:
        settings.portal(portal)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    if _forget_refusal(settings, portal):
        make_console().print(f"下次运行将再次尝试 {portal} 的密码 (the next run will try the password again)")
    else:
        make_console().print(f"{portal} 没有被拒绝的密码记录 (no refusal on record)")

"""Portal passwords: from ``DEALERBOT_<PORTAL>_PASSWORD`` or the OS keyring, never a file.

A dealership group's store has its own: ``DEALERBOT_<STORE>_<PORTAL>_PASSWORD`` or the keyring
entry ``<store>/<portal>:<username>`` (``dealerbot --store S01 credentials set dms``), looked up
before the group-wide ones (an OEM login the whole group shares)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from dealerbot.errors import CredentialsMissing

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.store import Store

KEYRING_SERVICE = "dealerbot"

PasswordSource = Callable[[str, str], str]


def env_name(portal: str, store: str = "") -> str:
    """The environment variable holding a portal's password, e.g. ``DEALERBOT_OEM_PASSWORD``
    (``DEALERBOT_S01_DMS_PASSWORD`` for store S01's)."""
    prefix = f"{store.upper().replace('-', '_')}_" if store else ""
    return f"DEALERBOT_{prefix}{portal.upper()}_PASSWORD"


def _keyring_name(portal: str, username: str, store: str = "") -> str:
    return f"{store}/{portal}:{username}" if store else f"{portal}:{username}"


def _keyring_get(portal: str, username: str, store: str = "") -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, _keyring_name(portal, username, store))
        except KeyringError:
            return None
    except Exception:  # noqa: BLE001 - no usable backend on a headless machine
        return None


def get_password(portal: str, username: str, store: str = "") -> str:
    """The password for ``username`` on ``portal`` (store ``store``'s own first, then the
    group-wide one).

    Raises:
        CredentialsMissing: neither the environment variables nor the keyring have one; the
            message says how to provide it.
    """
    for where in ((store, "") if store else ("",)):
        value = os.environ.get(env_name(portal, where)) or _keyring_get(portal, username, where)
        if value:
            return value
    flag = f" --store {store}" if store else ""
    raise CredentialsMissing(
        f"没有 {portal} 用户 {username} 的密码：请设置环境变量 {env_name(portal, store)}，或运行 "
        f"dealerbot{flag} credentials set {portal} 保存到系统钥匙串 (no password for {portal} user '{username}')"
    )


def has_password(portal: str, username: str, store: str = "") -> bool:
    """Whether :func:`get_password` would find a password for ``username`` on ``portal`` (the
    environment or the keyring; store ``store``'s own or the group-wide one), without handing
    it out. Never raises: a keyring that cannot be read holds none."""
    return any(os.environ.get(env_name(portal, where)) or _keyring_get(portal, username, where)
               for where in ((store, "") if store else ("",)))


def set_password(portal: str, username: str, password: str, store: str = "") -> str:
    """Store a password in the OS keyring; returns the backend's name.

    Raises:
        CredentialsMissing: no usable keyring backend (message says to use the variable).
    """
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, _keyring_name(portal, username, store), password)
        return type(keyring.get_keyring()).__name__
    except Exception as exc:  # noqa: BLE001 - backends raise many kinds of errors
        raise CredentialsMissing(
            f"这台电脑上的系统钥匙串不可用，请改用环境变量 {env_name(portal, store)} (the OS keyring is not usable here: {exc})"
        ) from None


def environment_wins(portal: str, store: str = "") -> str | None:
    """The environment variable whose password is used for ``portal`` before any the keyring
    holds for ``store`` (``DEALERBOT_DMS_PASSWORD``...), or None when the keyring's is used."""
    name = env_name(portal, store)
    return name if os.environ.get(name) else None


def replace_password(settings: Settings, store: Store, portal: str, password: str, actor: str) -> str:
    """Set or replace ``portal``'s password where ``dealerbot credentials set`` keeps it (the OS
    keyring; a group's store's own entry), forget the portal's refusal of the old one, and
    append the change to the audit trail (who, which account; never the password). Returns the
    keyring backend's name.

    Raises:
        ConfigError: no such portal.
        CredentialsMissing: no usable keyring (nothing changed).
    """
    from dealerbot.running.context import account_key

    portal_settings = settings.portal(portal)
    backend = set_password(portal, portal_settings.username, password, settings.own_store)
    cleared = store.clear_login_refusal(account_key(portal, portal_settings))
    store.audit_event(actor, "password_set", portal, f"{portal}:{portal_settings.username}", {
        "portal": portal, "username": portal_settings.username, "keyring": backend, "refusal_cleared": cleared,
    }, note=f"{portal} 的密码已更换（保存在系统钥匙串）" + ("，清除了门户拒绝密码的记录" if cleared else ""))
    return backend


def password_source(overrides: Mapping[str, str] | None = None, store: str = "") -> PasswordSource:
    """A lookup that prefers ``overrides`` (portal -> password), then :func:`get_password`
    (for store ``store`` of a group)."""
    fixed = dict(overrides or {})

    def lookup(portal: str, username: str) -> str:
        return fixed.get(portal) or get_password(portal, username, store)

    return lookup

"""Portal passwords: from ``DEALERBOT_<PORTAL>_PASSWORD`` or the OS keyring, never a file."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from dealerbot.errors import CredentialsMissing

KEYRING_SERVICE = "dealerbot"

PasswordSource = Callable[[str, str], str]


def env_name(portal: str) -> str:
    """The environment variable holding a portal's password, e.g. ``DEALERBOT_OEM_PASSWORD``."""
    return f"DEALERBOT_{portal.upper()}_PASSWORD"


def _keyring_get(portal: str, username: str) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, f"{portal}:{username}")
        except KeyringError:
            return None
    except Exception:  # noqa: BLE001 - no usable backend on a headless machine
        return None


def get_password(portal: str, username: str) -> str:
    """The password for ``username`` on ``portal``.

    Raises:
        CredentialsMissing: neither the environment variable nor the keyring has one; the
            message says how to provide it.
    """
    value = os.environ.get(env_name(portal))
    if value:
        return value
    value = _keyring_get(portal, username)
    if value:
        return value
    raise CredentialsMissing(
        f"没有 {portal} 用户 {username} 的密码：请设置环境变量 {env_name(portal)}，或运行 "
        f"dealerbot credentials set {portal} 保存到系统钥匙串 (no password for {portal} user '{username}')"
    )


def set_password(portal: str, username: str, password: str) -> str:
    """Store a password in the OS keyring; returns the backend's name.

    Raises:
        CredentialsMissing: no usable keyring backend (message says to use the variable).
    """
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, f"{portal}:{username}", password)
        return type(keyring.get_keyring()).__name__
    except Exception as exc:  # noqa: BLE001 - backends raise many kinds of errors
        raise CredentialsMissing(
            f"这台电脑上的系统钥匙串不可用，请改用环境变量 {env_name(portal)} (the OS keyring is not usable here: {exc})"
        ) from None


def password_source(overrides: Mapping[str, str] | None = None) -> PasswordSource:
    """A lookup that prefers ``overrides`` (portal -> password), then :func:`get_password`."""
    fixed = dict(overrides or {})

    def lookup(portal: str, username: str) -> str:
        return fixed.get(portal) or get_password(portal, username)

    return lookup

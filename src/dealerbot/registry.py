"""Bots by name: every module in the ``bots`` package that defines a :class:`Bot` subclass.

Discovery imports the modules when asked (never at import time) and returns a fresh mapping;
there is no registry state to reset.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil

from dealerbot.bot import Bot
from dealerbot.errors import ConfigError, UnknownBot

BOTS_PACKAGE = "bots"


def discover(package: str = BOTS_PACKAGE) -> dict[str, type[Bot]]:
    """Import every module of ``package`` and return its bots by name.

    Raises:
        ConfigError: the package is missing, a module fails to import, or two bots share a name.
    """
    try:
        pkg = importlib.import_module(package)
    except ImportError as exc:
        raise ConfigError(f"cannot import the bots package '{package}': {exc}") from None
    found: dict[str, type[Bot]] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{package}.{info.name}")
        except Exception as exc:  # noqa: BLE001 - name the module that broke
            raise ConfigError(f"bot module {package}/{info.name}.py failed to import: {exc}") from exc
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Bot) and obj is not Bot and not inspect.isabstract(obj) and obj.__module__ == module.__name__:
                if obj.name in found and found[obj.name] is not obj:
                    raise ConfigError(f"two bots are named '{obj.name}': {found[obj.name].__module__} and {module.__name__}")
                found[obj.name] = obj
    return dict(sorted(found.items()))


def get_bot(name: str, package: str = BOTS_PACKAGE) -> type[Bot]:
    """The bot class named ``name``.

    Raises:
        UnknownBot: no such bot; the message lists the ones that exist.
    """
    bots = discover(package)
    try:
        return bots[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(bots), n=1)
        hint = f"是不是 '{close[0]}'？" if close else ""
        raise UnknownBot(f"没有名为 '{name}' 的机器人；{hint}现有 (available: {', '.join(bots) or 'none'})") from None

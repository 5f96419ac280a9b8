"""Bots, portals and record types by name: found in the ``bots`` and ``portals`` packages.

Each is assembled here from two folders: the dealership's own ``bots/`` and ``portals/`` of its
project folder (the folder holding ``dealerbot.toml``), searched first, so a module there with a
shipped module's name replaces it; then dealerbot's shipped ones (the checkout's top-level
folders, or the wheel's ``dealerbot/shipped/``: :mod:`dealerbot.resources`). The two names are
never looked up on ``sys.path``: another installed package called ``bots`` or ``portals`` is
neither imported nor searched. Discovery imports the modules when asked (never at import time)
and returns fresh mappings; there is no registry state to reset.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.machinery
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from dealerbot.data.records import ENTITIES, Entity
from dealerbot.errors import ConfigError, UnknownBot
from dealerbot.pages.common import PortalApp
from dealerbot.resources import shipped_dir
from dealerbot.running.bot import Bot, bot_entities

BOTS_PACKAGE = "bots"
PORTALS_PACKAGE = "portals"


_ASSEMBLED = "_dealerbot_assembled"  # marks a bots/portals package this module made


def _shipped_dir(package: str) -> Path | None:
    """dealerbot's own ``bots``/``portals``: the checkout's top-level folder (an editable
    install), or ``dealerbot/shipped/<package>`` in site-packages (a wheel)."""
    folder = shipped_dir() / package
    return folder.resolve() if (folder / "__init__.py").is_file() else None


def _package(package: str, home: Path | None) -> ModuleType:
    """The package ``package`` (``bots`` or ``portals``), its search path the project folder's
    ``<home>/<package>`` (when that folder exists) and then the shipped one.

    The package is made here, not imported: a ``bots`` or ``portals`` that Python could find on
    its path (another installed package's, or a working folder's) is not dealerbot's. One made
    before, or the checkout's own shipped package imported directly (the tests do), is reused,
    its search path replaced (no other project's folder from before).

    Raises:
        ConfigError: the project folder's package has modules but no ``__init__.py``, or
            neither it nor a shipped one exists.
    """
    own = (home / package).resolve() if home is not None else None
    if own is not None and not (own / "__init__.py").is_file():
        if own.is_dir() and any(own.glob("*.py")):
            raise ConfigError(f"{own} has modules but no __init__.py: add an empty {own / '__init__.py'}")
        own = None
    folders = list(dict.fromkeys(p for p in (own, _shipped_dir(package)) if p is not None))
    if not folders:
        raise ConfigError(f"no {package}/ folder: neither the project folder has one nor dealerbot's installation")
    pkg = sys.modules.get(package)
    known = getattr(pkg, "__path__", None)
    if pkg is None or known is None or not (
        getattr(pkg, _ASSEMBLED, False) or all(Path(p).resolve() in folders for p in known)
    ):
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = []
        pkg = importlib.util.module_from_spec(spec)
        sys.modules[package] = pkg
    setattr(pkg, _ASSEMBLED, True)
    pkg.__path__[:] = [str(p) for p in folders]
    return pkg


def _modules(package: str, home: Path | None) -> list[ModuleType]:
    pkg = _package(package, home)
    modules = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            modules.append(importlib.import_module(f"{package}.{info.name}"))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - name the module that broke
            raise ConfigError(f"module {package}/{info.name}.py failed to import: {exc}") from exc
    return modules


def discover(package: str = BOTS_PACKAGE, home: Path | None = None) -> dict[str, type[Bot]]:
    """Import every module of ``package`` (the project folder ``home``'s first) and return its
    bots by name.

    Raises:
        ConfigError: the package is missing, a module fails to import, or two bots share a name.
    """
    _package(PORTALS_PACKAGE, home)  # bots import page objects (`from portals.oem import ...`): the project's first
    found: dict[str, type[Bot]] = {}
    for module in _modules(package, home):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Bot) and obj is not Bot and not inspect.isabstract(obj) and obj.__module__ == module.__name__:
                if obj.name in found and found[obj.name] is not obj:
                    raise ConfigError(f"two bots are named '{obj.name}': {found[obj.name].__module__} and {module.__name__}")
                found[obj.name] = obj
    entities(found)  # two record types under one name would share a store table and rejects
    return dict(sorted(found.items()))


def get_bot(name: str, package: str = BOTS_PACKAGE, home: Path | None = None) -> type[Bot]:
    """The bot class named ``name``.

    Raises:
        UnknownBot: no such bot; the message lists the ones that exist.
    """
    bots = discover(package, home)
    try:
        return bots[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(bots), n=1)
        hint = f"是不是 '{close[0]}'？" if close else ""
        raise UnknownBot(f"没有名为 '{name}' 的机器人；{hint}现有 (available: {', '.join(bots) or 'none'})") from None


def discover_portals(home: Path | None = None, package: str = PORTALS_PACKAGE) -> dict[str, type[PortalApp]]:
    """Portal apps by portal name: every :class:`PortalApp` subclass with a ``name`` in the
    ``portals`` package (a portal without one is opened by the default :class:`PortalApp`).

    Raises:
        ConfigError: a module fails to import, or two apps claim one portal.
    """
    found: dict[str, type[PortalApp]] = {}
    for module in _modules(package, home):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, PortalApp) and obj.name and obj.__module__ == module.__name__:
                if obj.name in found and found[obj.name] is not obj:
                    raise ConfigError(f"two page-object apps claim portal '{obj.name}': "
                                      f"{found[obj.name].__module__} and {module.__name__}")
                found[obj.name] = obj
    return found


def portal_app(portal: str, home: Path | None = None) -> type[PortalApp]:
    """The app that opens ``portal``: the :class:`PortalApp` subclass named ``portal`` in
    ``portals/<portal>.py`` (only that module is imported: a broken module of another portal
    stops nothing), else the default login app.

    Raises:
        ConfigError: ``portals/<portal>.py`` fails to import.
    """
    pkg = _package(PORTALS_PACKAGE, home)
    if not any(info.name == portal for info in pkgutil.iter_modules(pkg.__path__)):
        return PortalApp
    try:
        module = importlib.import_module(f"{PORTALS_PACKAGE}.{portal}")
    except Exception as exc:  # noqa: BLE001 - name the module that broke
        raise ConfigError(f"module {PORTALS_PACKAGE}/{portal}.py failed to import: {exc}") from exc
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if issubclass(obj, PortalApp) and obj.name == portal and obj.__module__ == module.__name__:
            return obj
    return PortalApp


def entity_of_bots(home: Path | None = None) -> dict[str, tuple[Entity, ...]]:
    """The record types each bot emits (none for a bot that only writes), the project folder
    ``home``'s bots included: what the review workbook has a sheet for
    (:func:`dealerbot.review.export.export_runs`'s ``bot_records``).

    Raises:
        ConfigError: a bots/ module fails to import.
    """
    return {name: bot_entities(cls) for name, cls in discover(home=home).items()}


def entities(bots: dict[str, type[Bot]] | None = None) -> dict[str, Entity]:
    """Every record type: the built-in ones and those the bots declare.

    Raises:
        ConfigError: two different record types share a name.
    """
    found: dict[str, Entity] = dict(ENTITIES)
    for cls in (bots or {}).values():
        for entity in bot_entities(cls):
            other = found.setdefault(entity.name, entity)
            if other != entity:
                raise ConfigError(f"bot '{cls.name}' declares record type '{entity.name}', which another "
                                  f"definition already uses with other fields: rename one")
    return found



"""What each bot and flow is, without importing the bots: for commands that only list or check them.

Listing the bots (``dealerbot bots``) and checking a timetable (``dealerbot schedule check``, the
scheduler's start) need each bot's name, portals, record types, options and description, and
each flow's name, read bots and writer. Getting them by importing every bot module loads the
whole engine (page objects, the data pipeline, the desktop driver...), most of such a command's
start-up time. :func:`bot_summaries` keeps what discovery found in a small JSON file in the
user's cache folder, valid while no Python file it depends on changed: the project folder's
``bots/`` and ``portals/``, the shipped ones, and dealerbot's own package (their sizes and
modification times, and the Python version). Anything else imports the bots as before
(:func:`dealerbot.running.registry.discover`); a missing, stale or unreadable cache is rebuilt
by the same discovery, so a bot that fails to import fails here as it would there.

The cache holds no customer data (bot names and descriptions); losing it costs one discovery.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CACHE_VERSION = 2


@dataclass(frozen=True)
class BotSummary:
    """A bot as listings show it (the attributes a timetable checks keep their class names)."""

    name: str
    portal: str
    also_uses: tuple[str, ...]
    records: tuple[str, ...]  # the record types' Chinese titles, the bot's own first
    incremental: bool
    options: tuple[str, ...]
    title: str
    description: str

    @property
    def portals(self) -> tuple[str, ...]:
        """Every portal the bot opens (``portal`` first)."""
        return (self.portal, *(p for p in self.also_uses if p != self.portal))


@dataclass(frozen=True)
class FlowSummary:
    """A flow as a timetable checks it (the attributes keep :class:`~dealerbot.flows.Flow`'s names)."""

    name: str
    title: str
    read_bots: tuple[str, ...]
    writer_bot: str


def cache_dir() -> Path:
    """The user's cache folder for dealerbot (``%LOCALAPPDATA%\\dealerbot\\Cache`` on Windows,
    ``~/.cache/dealerbot`` on Linux, ``~/Library/Caches/dealerbot`` on macOS)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("dealerbot", appauthor=False))


def _sources(home: Path | None) -> list[Path]:
    """The Python files whose change may change a bot's summary."""
    import dealerbot
    from dealerbot.resources import shipped_dir

    shipped = shipped_dir()
    folders = [shipped / "bots", shipped / "portals"]
    if home is not None:
        folders = [home / "bots", home / "portals", *folders]
    files = [f for folder in folders if folder.is_dir() for f in folder.glob("*.py")]
    files += Path(dealerbot.__file__).parent.rglob("*.py")
    return sorted(set(files))


def _fingerprint(home: Path | None) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}|{sys.version}|{home}".encode())
    for path in _sources(home):
        try:
            st = path.stat()
        except OSError:
            continue
        digest.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def summarise(bots: dict[str, Any]) -> list[BotSummary]:
    """Summaries of bot classes as :func:`~dealerbot.running.registry.discover` returns them."""
    from dealerbot.running.bot import bot_entities

    return [
        BotSummary(name=name, portal=cls.portal, also_uses=tuple(cls.also_uses),
                   records=tuple(e.title for e in bot_entities(cls)), incremental=bool(cls.incremental),
                   options=tuple(cls.options), title=cls.title or "", description=cls.description or "")
        for name, cls in bots.items()
    ]


def _summary(cls: type[Any], kept: dict[str, Any]) -> Any:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in kept.items()}
    return cls(**values)


def bot_summaries(home: Path | None, cache: Path | None = None) -> dict[str, BotSummary]:
    """Every bot of the project folder ``home`` (and the shipped ones) by name, from the cache
    when it is current, else by discovery (then kept in the cache). ``cache``: the cache folder
    (default :func:`cache_dir`).

    Raises:
        ConfigError: as :func:`~dealerbot.running.registry.discover` (a bot module fails to
            import, two bots share a name...), when the cache is not current.
    """
    return project_summaries(home, cache)[0]


def project_summaries(home: Path | None, cache: Path | None = None) -> tuple[dict[str, BotSummary], dict[str, FlowSummary]]:
    """Every bot and every flow (``orders`` first) of the project folder ``home`` by name, as
    :func:`bot_summaries` (one cache, one discovery).

    Raises:
        ConfigError: as :func:`~dealerbot.running.registry.discover` and
            :func:`~dealerbot.flows.registry.discover_flows`, when the cache is not current.
    """
    home = home.resolve() if home is not None else None
    folder = cache if cache is not None else cache_dir()
    path = folder / f"bots-{hashlib.sha256(str(home).encode()).hexdigest()[:16]}.json"
    key = _fingerprint(home)
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept.get("key") == key:
            return ({b["name"]: _summary(BotSummary, b) for b in kept["bots"]},
                    {f["name"]: _summary(FlowSummary, f) for f in kept["flows"]})
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass  # missing, unreadable or from another version: discover again
    from dealerbot.flows.registry import discover_flows
    from dealerbot.running.registry import discover

    bots = summarise(discover(home=home))
    flows = [FlowSummary(f.name, f.title, tuple(f.read_bots), f.writer_bot) for f in discover_flows(home).values()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "bots": [asdict(b) for b in bots], "flows": [asdict(f) for f in flows]},
                                  ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home folder: listing still works, only slower
    return {b.name: b for b in bots}, {f.name: f for f in flows}

"""The canary before writing: the selectors a writing bot types through, checked on the live
screens before its first write.

A portal may change overnight (a new release renames a field's id): a bot that then goes on
typing fails record after record, or worse, types into the wrong field. So before a run writes
into a portal (its bot names the portal in ``Bot.writes_to``; dry runs too, they would write
otherwise), :meth:`dealerbot.running.context.BotContext.portal` calls :func:`run_canary` in the
run's own logged-in session, right after it opened the portal: for each screen of the selector
file's ``screens`` that holds one of the names the bot writes through (the ``require`` names of
its ``ctx.portal(...)`` call; a bot naming none: every name its app uses), it opens the screen and
resolves those names. A name none of whose choices matches (``missing``; ``optional`` names are
not checked) stops the run before anything is written: :class:`~dealerbot.errors.PortalChanged`
with the screen and the names, the page left on the changed screen for the run's evidence (a
masked screenshot and HTML). The outcome is kept for the console's 状态 page
(:func:`record_canary`). Names on no screen cannot be checked (logged once per run). Cost:
one navigation per screen, a few hundred milliseconds on the sandbox (``bench/canary.py``).
``[<portal>] canary = false`` switches it off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dealerbot.web.locators import Screen, SelectorFile
from dealerbot.web.portal import PortalSession
from dealerbot.web.selectors_check import SelectorResult, _check_names

# How long a name absent when its screen has loaded is waited for (scripts filling the page);
# once, per screen: the other absent names of that screen are not waited for again.
CANARY_WAIT_MS = 1500


@dataclass
class CanaryOutcome:
    """What the canary found: ``missing`` names (empty: the screens match) on ``screen`` (the
    first screen with a miss: its endpoint name), ``screen_title`` (the page's title, for the
    operator), the screens checked, the names no screen holds, and how long it took."""

    portal: str
    checked: list[str] = field(default_factory=list)  # screens (endpoint names), in order
    names: int = 0  # names resolved
    missing: list[str] = field(default_factory=list)
    screen: str = ""
    screen_title: str = ""
    unchecked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.missing


def canary_screens(selectors: SelectorFile, names: Iterable[str]) -> tuple[list[tuple[Screen, frozenset[str]]], list[str]]:
    """Which screens to open for ``names`` (selector names; endpoint names are left out), each
    with the names it holds, in the file's order; and the non-optional names no screen holds.
    Logged-out screens (the login page) are left out: logging in has just used them."""
    wanted = {n for n in names if n in selectors.selectors and n not in selectors.optional}
    out: list[tuple[Screen, frozenset[str]]] = []
    seen: set[str] = set()
    for screen in selectors.screens:
        held = frozenset(n for n in wanted - seen if any(n.startswith(p + ".") for p in screen.names))
        if screen.logged_out:
            seen |= held
            continue
        if held and screen.endpoint:
            out.append((screen, held))
            seen |= held
    return out, sorted(wanted - seen)


async def run_canary(session: PortalSession, names: Iterable[str], wait_ms: int = CANARY_WAIT_MS) -> CanaryOutcome:
    """Open each screen holding one of ``names`` in ``session`` (logged in) and resolve the names
    there; stops at the first screen with a miss, leaving the page on it (the caller's evidence).

    Raises:
        SystemFailure: a screen could not be opened (the portal is down: not a changed portal).
    """
    started = time.perf_counter()
    screens, unchecked = canary_screens(session.selectors, names)
    outcome = CanaryOutcome(session.name, unchecked=unchecked)
    for screen, held in screens:
        assert screen.endpoint is not None  # canary_screens keeps only screens with an endpoint
        await session.goto(screen.endpoint)
        await session.page.wait_for_load_state("load")
        if screen.before and await session.loc.visible(screen.before):
            await (await session.loc.get(screen.before)).click()
        done: dict[str, SelectorResult] = {}
        await _check_names(session, screen, done, only=held, wait_ms=wait_ms)
        outcome.checked.append(screen.endpoint)
        outcome.names += len(done)
        missing = sorted(n for n, r in done.items() if r.result == "missing")
        if missing:
            outcome.missing, outcome.screen = missing, screen.endpoint
            try:
                # "新建合同 - 经销商管理系统": the screen's own part, without the portal's name
                outcome.screen_title = (await session.page.title()).split(" - ")[0].strip()
            except Exception:  # noqa: BLE001 - the title is a nicety
                outcome.screen_title = ""
            break
    outcome.seconds = time.perf_counter() - started
    return outcome


def canary_file(state: Path, portal: str) -> Path:
    """Where the canary's last outcome for ``portal`` is kept (``state/canary-<portal>.json``)."""
    return state / f"canary-{portal}.json"


def last_canary(state: Path, portal: str) -> dict[str, Any] | None:
    """The canary's last outcome for ``portal`` as :func:`record_canary` kept it, or None."""
    path = canary_file(state, portal)
    try:
        kept = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) else None


def record_canary(state: Path, outcome: CanaryOutcome, run_id: str, bot: str) -> bool:
    """Keep ``outcome`` for the console's 状态 page: when, which run and bot, ok or the screen and
    missing names, the seconds it took. Returns whether a miss is news: False when the last
    outcome kept was the very same miss (same screen, same names), so its integrator's message is
    not sent again.

    Raises:
        OSError: the state folder cannot be written.
    """
    from dealerbot.private_files import write_private_json

    before = last_canary(state, outcome.portal)
    news = not outcome.ok and not (
        before is not None and not before.get("ok", True)
        and before.get("screen") == outcome.screen and before.get("missing") == outcome.missing)
    write_private_json(canary_file(state, outcome.portal), {
        "at": datetime.now().isoformat(timespec="seconds"), "run_id": run_id, "bot": bot, "ok": outcome.ok,
        "screen": outcome.screen, "screen_title": outcome.screen_title, "missing": outcome.missing,
        "checked": outcome.checked, "names": outcome.names, "seconds": round(outcome.seconds, 3),
    })
    return news

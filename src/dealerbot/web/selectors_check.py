"""``dealerbot selectors check <portal>``: resolve every selector on the live portal.

Walks the ``screens`` of the portal's selector file in order (the login screen with a fresh,
logged-out browser context; then logs in and visits the rest) and reports, for every name,
whether its first choice matches (``ok``), only a fallback does (``fallback``: the portal has
drifted), or nothing does (``missing``; ``optional`` for names that may be absent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from dealerbot.config import Settings
from dealerbot.credentials import password_source
from dealerbot.logsetup import Masker
from dealerbot.web.browser import Evidence, open_browser
from dealerbot.web.locators import Screen, load_portal_selectors
from dealerbot.web.page_locators import build_locator
from dealerbot.web.portal import PortalSession

WAIT_MS = 2000


class _Login(Protocol):
    async def login(self) -> None: ...


class CheckedApp(Protocol):
    """What the check uses of a portal's app (:class:`dealerbot.pages.common.PortalApp`): its login form."""

    @property
    def login_form(self) -> _Login: ...


@dataclass(frozen=True)
class SelectorResult:
    """One selector's outcome."""

    name: str
    result: str  # ok | fallback | missing | optional | unchecked
    detail: str


async def _first_match(name: str, candidates: list[Any], locators: list[Any]) -> SelectorResult | None:
    """The first of ``candidates`` (their ``locators``) matching on the page, or None."""
    for index, (candidate, locator) in enumerate(zip(candidates, locators, strict=True)):
        if await locator.count() > 0:
            return SelectorResult(name, "ok" if index == 0 else "fallback", f"#{index + 1} {candidate.describe()}")
    return None


async def _check_names(session: PortalSession, screen: Screen, done: dict[str, SelectorResult],
                       only: frozenset[str] | None = None, wait_ms: int = WAIT_MS) -> None:
    """Resolve the names of ``screen`` (only those in ``only`` when given) on the page as it
    stands, into ``done``. A name absent at first is waited for up to ``wait_ms`` (scripts that
    fill the page); once one has been waited for in vain, the others are not waited for again."""
    params = dict(screen.params)
    waited = False
    for name, spec in session.selectors.selectors.items():
        if name in done or not any(name.startswith(prefix + ".") for prefix in screen.names):
            continue
        if only is not None and name not in only:
            continue
        result = None
        candidates = [candidate.format(params) for candidate in spec.candidates if not (candidate.fields() - params.keys())]
        locators = [build_locator(session.page, candidate) for candidate in candidates]

        # The first choice there at once (the usual case) costs one round trip; otherwise the
        # page gets a moment (scripts that fill it) before every choice is tried again.
        if locators and await locators[0].count() > 0:
            result = SelectorResult(name, "ok", f"#1 {candidates[0].describe()}")
        elif locators and not waited:
            combined = locators[0]
            for locator in locators[1:]:
                combined = combined.or_(locator)
            try:  # give scripts that fill the page a moment
                await combined.first.wait_for(state="attached", timeout=wait_ms)
            except Exception:  # noqa: BLE001 - absent: reported below
                waited = True
            result = await _first_match(name, candidates, locators)
        else:
            result = await _first_match(name, candidates, locators)
        if result is None:
            kind = "optional" if name in session.selectors.optional else "missing"
            result = SelectorResult(name, kind, f"none of {len(spec.candidates)} choice(s) on {session.page.url}")
        done[name] = result


async def check_selectors(
    settings: Settings, portal: str, app_cls: Callable[[PortalSession, Callable[[], str]], CheckedApp],
    masker: Masker, headed: bool = False, passwords: dict[str, str] | None = None,
) -> list[SelectorResult]:
    """Resolve every selector of ``portal`` on the live portal, logged in by ``app_cls`` (the
    portal's app: the caller asks the registry), every password of ``masker`` masked in the
    evidence of a failed check.

    Raises:
        ConfigError: unknown portal, malformed selector file, no browser, wrong password.
        SystemFailure: the portal could not be reached.
    """
    portal_settings = settings.portal(portal)
    selectors = load_portal_selectors(portal, home=settings.home)
    lookup = password_source(passwords)
    done: dict[str, SelectorResult] = {}
    folder = settings.path("logs") / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-check-{portal}"
    evidence = Evidence(folder, masker)  # written only if the check fails
    # the browser a run of this portal gets: its extra arguments, its proxy, its allowed hosts
    async with open_browser(settings.launch_settings([portal]), headed=headed) as browser:
        assert browser is not None  # wanted: a browser, else BrowserNotFound
        async with browser.context(portal, evidence, state_file=None, trace=settings.browser.trace is not False,
                                   proxy=settings.portal_proxy(portal), allowed_hosts=settings.allowed_hosts(portal)) as pctx:
            page = await pctx.new_page()
            session = PortalSession(portal, portal_settings, pctx, page, selectors, settings.run)
            app = app_cls(session, lambda: lookup(portal, portal_settings.username))
            logged_in = False
            for screen in selectors.screens:
                if not screen.logged_out and not logged_in:
                    if portal_settings.needs_login:  # a portal without a login: nothing to log in to
                        await app.login_form.login()
                    logged_in = True
                if screen.endpoint:
                    await page.goto(session.url(screen.endpoint))
                else:
                    assert screen.via is not None  # a screen has an endpoint or a via (checked when loaded)
                    link = await session.loc.get(screen.via)
                    async with page.expect_navigation(wait_until="domcontentloaded"):
                        await link.click()
                await page.wait_for_load_state("load")
                if screen.before and await session.loc.visible(screen.before):
                    await (await session.loc.get(screen.before)).click()
                await _check_names(session, screen, done)
    for name in selectors.selectors:
        done.setdefault(name, SelectorResult(name, "unchecked", "not on any screen in 'screens'"))
    return [done[n] for n in selectors.selectors]


def record_check(settings: Settings, portal: str, report: list[SelectorResult]) -> dict[str, object]:
    """Keep a check's outcome for the console's 状态 page (``state/selectors-check-<portal>.json``):
    when, how many of each result, and the names that fell back or are missing. Returns it.

    Raises:
        OSError: the state folder cannot be written.
    """
    from collections import Counter

    from dealerbot.private_files import write_private_json

    results = Counter(r.result for r in report)
    kept: dict[str, object] = {
        "at": datetime.now().isoformat(timespec="seconds"), **results,
        "missing_names": [r.name for r in report if r.result == "missing"],
        "fallback_names": [r.name for r in report if r.result == "fallback"],
    }
    write_private_json(settings.path("state") / f"selectors-check-{portal}.json", kept)
    return kept

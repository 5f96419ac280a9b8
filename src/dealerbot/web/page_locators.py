"""Live Playwright locators by selector name: each name's choices tried in order on the page
(:class:`Locators`), the first that matches used, a drift warning when it is a fallback. The
selector files themselves: :mod:`dealerbot.web.locators`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from loguru import logger

from dealerbot.errors import PageChanged
from dealerbot.web.locators import Candidate, SelectorFile, warn_drift

if TYPE_CHECKING:
    from loguru import Logger
    from playwright.async_api import Frame, FrameLocator, Locator, Page


_FIELD_TAGS = "self::input[not(@type='hidden')] or self::select or self::textarea"


def _xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"


def unlinked_label_xpath(text: str, exact: bool) -> str:
    """The input a label without ``for=`` names: inside the label, else the first field after it
    with no other label in between (a linked label is :meth:`get_by_label`'s alone)."""
    words = "normalize-space(.)"
    cond = f"{words}={_xpath_literal(text)}" if exact else f"contains({words}, {_xpath_literal(text)})"
    label = f"//label[not(@for)][{cond}]"
    after = f"{label}/following::*[{_FIELD_TAGS}][1][preceding::label[1][not(@for)][{cond}]]"
    return f"xpath=({label}//*[{_FIELD_TAGS}] | {after})[1]"


def build_locator(scope: Page | Frame | Locator | FrameLocator, candidate: Candidate) -> Locator:
    """A Playwright locator for one candidate."""
    if candidate.frame:
        scope = scope.frame_locator(candidate.frame)
    if candidate.kind == "css":
        return scope.locator(candidate.value)
    if candidate.kind == "role":
        # candidate.value is the role as the selector file spells it: Playwright types it as its literal ARIA roles
        return scope.get_by_role(candidate.value, name=candidate.name, exact=candidate.exact)  # type: ignore[arg-type]
    if candidate.kind == "label":
        return scope.get_by_label(candidate.value, exact=candidate.exact).or_(scope.locator(unlinked_label_xpath(candidate.value, candidate.exact)))
    if candidate.kind == "text":
        return scope.get_by_text(candidate.value, exact=candidate.exact)
    if candidate.kind == "placeholder":
        return scope.get_by_placeholder(candidate.value, exact=candidate.exact)
    return scope.get_by_test_id(candidate.value)


class Locators:
    """Resolves selector names on a page, trying fallbacks in order.

    One instance per page; it remembers which candidate matched for each name.
    """

    def __init__(self, page: Page, selectors: SelectorFile, timeout_ms: float = 10_000, log: Logger = logger) -> None:
        self.page = page
        self.file = selectors
        self.timeout_ms = timeout_ms
        self.log = log
        self._warned: set[str] = set()
        self._matched: dict[str, int] = {}  # name -> the choice that matched last on this page

    def _candidates(self, name: str, params: dict[str, Any]) -> list[Candidate]:
        return [c.format(params) for c in self.file.spec(name).candidates]

    def known(self, name: str, /, **params: Any) -> Locator | None:
        """The locator of the choice of ``name`` that matched before on this page (no waiting,
        no round-trip), or None when none has yet: for repeated steps that act at once."""
        index = self._matched.get(name)
        if index is None:
            return None
        return build_locator(self.page, self._candidates(name, params)[index]).first

    async def get(self, name: str, /, timeout_ms: float | None = None, **params: Any) -> Locator:
        """Wait until one candidate of ``name`` is attached and return its locator.

        Raises:
            UnknownSelector: ``name`` is not in the file.
            PageChanged: no candidate appeared within the timeout.
        """
        cands = self._candidates(name, params)
        locs = [build_locator(self.page, c) for c in cands]
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        index = self._matched.get(name)
        if index is not None:  # one round-trip for a name resolved before
            try:
                await locs[index].first.wait_for(state="attached", timeout=timeout)
                return locs[index].first
            except Exception:  # noqa: BLE001 - gone since: try every choice below
                timeout = min(timeout, 2_000)
        combined = locs[0]
        for loc in locs[1:]:
            combined = combined.or_(loc)
        try:
            await combined.first.wait_for(state="attached", timeout=timeout)
        except Exception as exc:  # playwright TimeoutError or a closed page
            tried = "; ".join(c.describe() for c in cands)
            raise PageChanged(
                f"{self.file.portal}: '{name}' not found on {self.page.url} within "
                f"{timeout / 1000:.0f}s (tried {tried})"
            ) from exc
        # which choice matched: every choice counted at once (one round trip, not one each)
        counts = await asyncio.gather(*(loc.count() for loc in locs)) if len(locs) > 1 else [1]
        for index, (loc, n) in enumerate(zip(locs, counts, strict=True)):
            if n > 0:
                self.fallback_used(name, index)
                self._matched[name] = index
                return loc.first
        return combined.first  # matched between the checks; let Playwright's auto-wait handle it

    def fallback_used(self, name: str, index: int) -> None:
        """Note that choice ``index`` of ``name`` matched; past the first, warn once that the
        portal has drifted (naming the YAML line)."""
        if index > 0 and name not in self._warned:
            self._warned.add(name)
            cands = self.file.spec(name).candidates
            warn_drift(self.log, self.file, name, cands[0], cands[index], index)

    async def present(self, name: str, /, **params: Any) -> bool:
        """Whether any candidate of ``name`` is on the page right now (no waiting)."""
        locs = [build_locator(self.page, c) for c in self._candidates(name, params)]
        return any(n > 0 for n in await asyncio.gather(*(loc.count() for loc in locs)))

    async def visible(self, name: str, /, **params: Any) -> bool:
        """Whether any candidate of ``name`` is visible right now (no waiting)."""
        locs = [build_locator(self.page, c) for c in self._candidates(name, params)]
        return any(await asyncio.gather(*(loc.first.is_visible() for loc in locs)))  # False where none

    def all_candidates(self, name: str, /, **params: Any) -> list[Locator]:
        """Locators for every candidate of ``name`` (for masking in screenshots)."""
        return [build_locator(self.page, c) for c in self._candidates(name, params)]


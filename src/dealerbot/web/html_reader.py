"""Selectors by name applied to pages fetched without a browser (lxml): :class:`HtmlReader`, with
the same choices, fallback order and drift warning as the live
:class:`~dealerbot.web.page_locators.Locators`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loguru import logger

from dealerbot.errors import PageChanged, UnknownSelector
from dealerbot.web.locators import Candidate, SelectorFile, warn_drift

if TYPE_CHECKING:
    from loguru import Logger
    from lxml.html import HtmlElement


_ATTRIBUTE_IS = re.compile(r"""\[\s*([A-Za-z_][\w:.-]*)\s*=\s*(['"])\{(\w+)\}\2\s*\]""")
_COMBINATOR = re.compile(r"[\s>+~,]")


def _by_attribute(css: str, key: str) -> tuple[str, str] | None:
    """For a css choice whose only placeholder ``{key}`` is an attribute test of the element it
    selects (``#detail dd[data-field='{key}']``): the choice with the test loosened to the
    attribute being present, and the attribute's name. None for any other choice (the value
    used elsewhere, twice, in a selector list, or on an ancestor)."""
    found = list(_ATTRIBUTE_IS.finditer(css))
    if len(found) != 1 or found[0].group(3) != key or css.count("{") != 1 or "," in css:
        return None
    m = found[0]
    if _COMBINATOR.search(css[m.end():]) or css[:m.start()].count("(") != css[:m.start()].count(")"):
        return None  # on an ancestor, or inside :not()/:has(): grouping by the element's attribute would differ
    return css[:m.start()] + f"[{m.group(1)}]" + css[m.end():], m.group(1)


# Roles a fetched page's element can be told by without a browser (what a "next page" is).
_ROLES = {"link": "//a[@href]|//*[@role='link']", "button": "//button|//input[@type='submit']|//*[@role='button']"}


_UNSHOWN = frozenset({"script", "style", "title", "head", "template", "noscript"})  # text nobody sees


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _holds(el: HtmlElement, wanted: str, exact: bool) -> bool:
    """Whether ``el``'s text (or an input's value, an element's aria-label) is ``wanted`` (exact)
    or holds it, compared as Playwright does: whitespace-normalised, case-insensitive."""
    text = _norm(el.get("aria-label") or el.text_content() or el.get("value") or "")
    want = _norm(wanted)
    return text == want if exact else want in text


class HtmlReader:
    """Reads fields out of HTML fetched without a browser (the portal's pages, same cookies).

    Uses the ``css`` candidates of a selector (others need a live page) with lxml, with the
    same fallback order and the same drift warning as :class:`Locators`.
    """

    def __init__(self, selectors: SelectorFile, log: Logger = logger) -> None:
        self.file = selectors
        self.log = log
        self._warned: set[str] = set()
        self._compiled: dict[tuple[str, str], Any] = {}
        self._formatted: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[Candidate, Any]]] = {}

    def _css(self, value: str) -> Any:
        from lxml.cssselect import CSSSelector

        key = ("css", value)
        sel = self._compiled.get(key)
        if sel is None:
            sel = self._compiled[key] = CSSSelector(value)
        return sel

    def find_all(self, root: HtmlElement, name: str, /, **params: Any) -> list[HtmlElement]:
        """Elements matching the first css candidate of ``name`` that matches anything.

        Raises:
            UnknownSelector: no such name, or it has no css candidate.
        """
        key = (name, tuple(sorted((k, str(v)) for k, v in params.items())))
        cands = self._formatted.get(key)
        if cands is None:  # a page's many reads of one field look its choices up once
            cands = [(c, self._css(c.value)) for c in (c.format(params) for c in self._css_choices(name))]
            if len(self._formatted) < 10_000:  # bounded: parameters may be record keys
                self._formatted[key] = cands
        for index, (cand, selector) in enumerate(cands):
            found = selector(root)
            if found:
                self._drifted(name, cands[0][0], cand, index)
                return list(found)
        return []

    def _css_choices(self, name: str) -> list[Candidate]:
        """The css candidates of ``name`` (others need a live page).

        Raises:
            UnknownSelector: no such name, or it has no css candidate.
        """
        cands = [c for c in self.file.spec(name).candidates if c.kind == "css" and not c.frame]
        if not cands:
            raise UnknownSelector(f"{self.file.path}: '{name}' has no css choice to read fetched HTML with")
        return cands

    def find_any(self, root: HtmlElement, name: str, /) -> list[HtmlElement]:
        """Elements matching the first choice of ``name`` that matches anything, where a choice may
        also be ``text`` (an element whose own text holds it: the innermost) or ``role`` ``link`` /
        ``button`` with its ``name`` (``<a href>`` / ``[role=link]``, ``<button>`` /
        ``[role=button]`` whose text holds it), as Playwright's ``get_by_text`` / ``get_by_role``
        match them: case-insensitive and whitespace-normalised, whole text with ``exact: true``.
        Other kinds (``label``, ``placeholder``, ``testid``, frames) need a live page: skipped.

        Raises:
            UnknownSelector: no such name, or none of its choices can read fetched HTML.
        """
        cands = [c for c in self.file.spec(name).candidates if not c.frame and (
            c.kind == "css" or c.kind == "text" or (c.kind == "role" and c.value in _ROLES))]
        if not cands:
            raise UnknownSelector(f"{self.file.path}: '{name}' has no css, text or role (link/button) choice "
                                  f"to read fetched HTML with")
        for index, cand in enumerate(cands):
            if cand.kind == "css":
                found = list(self._css(cand.value)(root))
            elif cand.kind == "text":
                found = [el for el in root.iter() if isinstance(el.tag, str) and el.tag not in _UNSHOWN
                         and _holds(el, cand.value, cand.exact)
                         and not any(_holds(child, cand.value, cand.exact) for child in el.iterchildren()
                                     if isinstance(child.tag, str))]
            else:
                found = [el for el in root.xpath(_ROLES[cand.value])
                         if cand.name is None or _holds(el, cand.name, cand.exact)]
            if found:
                self._drifted(name, cands[0], cand, index)
                return found
        return []

    def _drifted(self, name: str, first: Candidate, used: Candidate, index: int) -> None:
        """Warn once per name that a fallback (``index`` > 0) matched."""
        if index > 0 and name not in self._warned:
            self._warned.add(name)
            warn_drift(self.log, self.file, name, first, used, index)

    def texts(
        self, root: HtmlElement, name: str, key: str, values: Sequence[str], /, required: bool = True, **params: Any,
    ) -> dict[str, str]:
        """:meth:`text` of ``name`` for each of ``values`` of its placeholder ``key`` (every
        field of a record's detail block): the same answers, in one pass over the page where the
        choice tests the placeholder as an attribute of the element read (``dd[data-field='{field}']``)
        instead of one pass per value.

        Raises:
            PageChanged: ``required`` and a value matched nothing.
            UnknownSelector: no such name, or it has no css candidate.
        """
        cands = self._css_choices(name)
        out: dict[str, str] = {}
        left = list(dict.fromkeys(values))
        for index, cand in enumerate(cands):
            if not left:
                break
            grouped = _by_attribute(cand.value, key)
            if grouped is not None:
                wildcard, attribute = grouped
                first: dict[str, HtmlElement] = {}
                for el in self._css(wildcard)(root):
                    first.setdefault(el.get(attribute), el)
                found = {v: first[v] for v in left if v in first}
            else:
                found = {}
                for v in left:
                    hits = self._css(cand.format({**params, key: v}).value)(root)
                    if hits:
                        found[v] = hits[0]
            if found:
                shown = {**params, key: next(iter(found))}
                self._drifted(name, cands[0].format(shown), cand.format(shown), index)
            for v, el in found.items():
                out[v] = el.text_content().strip()
            left = [v for v in left if v not in found]
        if left and required:
            raise PageChanged(f"{self.file.portal}: '{name}' ({key}={left[0]}) not on the page")
        return {v: out.get(v, "") for v in values}

    def text(self, root: HtmlElement, name: str, /, required: bool = True, **params: Any) -> str:
        """Stripped text of the first element of ``name``.

        Raises:
            PageChanged: ``required`` and nothing matched.
        """
        found = self.find_all(root, name, **params)
        if not found:
            if required:
                shown = ", ".join(f"{k}={v}" for k, v in params.items())
                raise PageChanged(f"{self.file.portal}: '{name}'{' (' + shown + ')' if shown else ''} not on the page")
            return ""
        return found[0].text_content().strip()


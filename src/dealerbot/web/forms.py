"""Filling and submitting a portal's forms by selector name: the helper every page object uses
to write (public API: a user's own portal uses it the same way).

* :meth:`Form.fill` types a mapping of selector names to values. Plain inputs, text areas and
  ``<select>`` elements reachable by a ``css`` or a ``label`` choice (linked by ``for=``, nested,
  ``aria-label``/``aria-labelledby``, or unlinked: found as :mod:`~dealerbot.web.page_locators`
  finds it) are set in **one** browser round-trip, firing the ``input`` and ``change`` events the
  page listens to; anything else (a ``role``/``text``/``placeholder`` choice, a choice in a frame,
  a checkbox or file input, a labelled field hidden, disabled or read-only at that moment, one
  not on the page yet) is filled by Playwright, field by field.
* :meth:`Form.choose` picks a ``<select>`` option by its value or visible text.
* :meth:`Form.submit` clicks once (and confirms a confirm dialog when given: the page's own, or
  the browser's native ``confirm()`` with ``dialog="accept"``) and reads the outcome: the page the
  portal answered with, its status, its field errors, its success toast. It **never retries**:
  when no answer came (timeout, closed page) the outcome is ``unknown``, and the caller must look
  in the portal for what happened before doing anything else.
* :meth:`Form.watch_requests` watches the page's own requests (its script's ``fetch``/XHR calls
  to the portal) while a block runs: a pop-up whose search answered 500, or never answered, is
  a retryable :class:`~dealerbot.errors.SystemFailure` of the record at once (naming the
  request), instead of a wait for rows that will never come and a "screen changed".
* :meth:`Form.download` saves the file a click makes the portal send (name, folder, timeout);
  :meth:`Form.upload` sets a file input; :meth:`Form.popup` follows a click into the new window
  it opens (a session on that page, same login).

Native ``alert``/``confirm`` dialogs the helper was not told to expect are dismissed (the
browser's default when nobody answers): a confirm nobody asked for never saves anything.

Raises (every method): :class:`~dealerbot.errors.PageChanged` when a named element is not on
the page; :class:`~dealerbot.errors.RecordRejected` when a value is not among a dropdown's
options (the record cannot be written as it is); inside a :meth:`Form.watch_requests` block,
the failure of one of the page's own requests instead (see there).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlparse

from dealerbot.errors import DealerbotError, PageChanged, PortalUnavailable, RecordRejected, StepTimeout, SystemFailure
from dealerbot.web.locators import Signal, parse_signal
from dealerbot.web.page_locators import unlinked_label_xpath
from dealerbot.web.playwright_errors import PlaywrightError, PlaywrightTimeout
from dealerbot.web.portal import PortalSession

if TYPE_CHECKING:
    from playwright.async_api import Dialog as PageDialog
    from playwright.async_api import Locator, Page, Request, Response

T = TypeVar("T")
Dialog = Literal["accept", "dismiss"]
KNOWN_TIMEOUT_MS = 5_000  # an element found before on this page gets this long before every choice is tried again
# The page's own requests a watch looks at: its script's calls (not documents: a navigation is
# checked by whoever navigates; not images or stylesheets: a page works without them).
WATCHED_TYPES = frozenset({"xhr", "fetch"})
# Requests the browser dropped itself (the page navigated, the script aborted it): not failures.
_DROPPED = ("ERR_ABORTED", "NS_BINDING_ABORTED", "NS_ERROR_ABORT", "cancelled")

_MISSING, _NO_OPTION, _NOT_BATCHABLE = -1, -2, -3

# Sets many fields in one evaluate: tries each field's choices in order, uses the native value
# setter (so that frameworks watching the property see it) and fires input + change.
# A choice is [kind, value, exact, xpath]: a "css" choice is document.querySelector(value); a
# "label" choice finds what the Python side finds (page_locators.build_locator: Playwright's
# get_by_label, or the unlinked-label XPath, whichever element comes first in the document):
# an element whose aria-labelledby elements, else aria-label, else <label>s (el.labels) have the
# text (Playwright's matching: whitespace normalised, case-insensitive substring, or equal when
# exact). A label's element Playwright would wait for (hidden, disabled, read-only) is left to
# Playwright (-3), as is anything but a plain input, text area or select.
_FILL_JS = """
(items) => {
  const norm = (t) => (t || '').replace(/\\u200b/g, '').trim().replace(/\\s+/g, ' ');
  const textOf = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return node.nodeValue || '';
    if (node.nodeType !== Node.ELEMENT_NODE && node.nodeType !== Node.DOCUMENT_FRAGMENT_NODE) return '';
    if (['SCRIPT', 'NOSCRIPT', 'STYLE'].includes(node.nodeName)) return '';
    if (node.nodeName === 'INPUT' && (node.type === 'submit' || node.type === 'button')) return node.value;
    let out = '';
    for (let c = node.firstChild; c; c = c.nextSibling) out += textOf(c);
    if (node.shadowRoot) out += textOf(node.shadowRoot);
    return out;
  };
  const labelsOf = (el) => {
    const ref = el.getAttribute('aria-labelledby');
    if (ref !== null) {
      const root = el.getRootNode();
      const refs = ref.split(/\\s+/).filter(Boolean).map(id => root.getElementById ? root.getElementById(id) : null).filter(Boolean);
      if (refs.length) return refs.map(textOf);
    }
    const aria = el.getAttribute('aria-label');
    if (aria !== null && aria.trim()) return [aria];
    const labelable = ['BUTTON', 'METER', 'OUTPUT', 'PROGRESS', 'SELECT', 'TEXTAREA'].includes(el.nodeName)
      || (el.nodeName === 'INPUT' && el.type !== 'hidden');
    return labelable && el.labels ? Array.from(el.labels, textOf) : [];
  };
  const all = (root, out) => {
    for (const el of root.querySelectorAll('*')) {
      out.push(el);
      if (el.shadowRoot) all(el.shadowRoot, out);
    }
    return out;
  };
  const byLabel = (text, exact) => {
    const want = exact ? norm(text) : norm(text).toLowerCase();
    const hit = (t) => exact ? norm(t) === want : norm(t).toLowerCase().includes(want);
    for (const el of all(document, [])) {
      if (labelsOf(el).some(hit)) return el;
    }
    return null;
  };
  const resolve = ([kind, value, exact, xpath]) => {
    if (kind === 'css') return [document.querySelector(value), false];
    const linked = byLabel(value, exact);
    const unlinked = document.evaluate(xpath, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
    if (!linked || !unlinked) return [linked || unlinked, true];
    return [linked.compareDocumentPosition(unlinked) & Node.DOCUMENT_POSITION_PRECEDING ? unlinked : linked, true];
  };
  const actionable = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility === 'visible'
      && !el.disabled && !el.readOnly && !el.closest('fieldset:disabled');
  };
  return items.map(([choices, value, bySelectText]) => {
    let el = null, index = -1, byLabelChoice = false;
    for (let i = 0; i < choices.length && !el; i++) {
      try { [el, byLabelChoice] = resolve(choices[i]); } catch (e) { return -3; }
      if (el) index = i;
    }
    if (!el) return -1;
    if (byLabelChoice && !actionable(el)) return -3;
    if (el.tagName === 'SELECT') {
      const opt = Array.from(el.options).find(o => bySelectText ? o.textContent.trim() === value : o.value === value);
      if (!opt) return -2;
      el.value = opt.value;
    } else if (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') {
      if (el.type === 'checkbox' || el.type === 'radio' || el.type === 'file') return -3;
      const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
      Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, value);
    } else {
      return -3;
    }
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
    return index;
  });
}
"""

_READ_JS = """
(items) => items.map((choices) => {
  for (const c of choices) {
    let el = null;
    try { el = document.querySelector(c); } catch (e) { return null; }
    if (el) return el.value !== undefined ? el.value : el.textContent.trim();
  }
  return null;
})
"""

_ERRORS_JS = """
([choices, attr]) => {
  for (const c of choices) {
    let found = [];
    try { found = Array.from(document.querySelectorAll(c)); } catch (e) { return null; }
    if (found.length) return found.map(el => [el.getAttribute(attr) || '', el.textContent.trim()]);
  }
  return [];
}
"""


# The texts of a locator's visible matches (a toast being shown), in one round-trip.
_VISIBLE_TEXTS_JS = """
(els) => els.filter(el => el.checkVisibility ? el.checkVisibility() : !!(el.offsetWidth || el.offsetHeight))
            .map(el => (el.innerText || el.textContent || '').trim())
"""


@dataclass(frozen=True)
class SubmitOutcome:
    """What the portal answered to a submit.

    ``result``: ``saved`` (the portal moved on from the form, or showed a success signal),
    ``refused`` (it showed the form again, or a failure signal, with ``errors`` by field; ``""``
    is the form as a whole: a failure signal's text) or ``unknown`` (no answer: the submit may
    or may not have been saved).
    """

    result: Literal["saved", "refused", "unknown"]
    url: str = ""
    status: int | None = None
    errors: dict[str, str] = field(default_factory=dict)
    detail: str = ""

    @property
    def message(self) -> str:
        """The portal's error messages in one line (operator-facing)."""
        return "；".join(f"{k}：{v}" if k else v for k, v in self.errors.items()) or self.detail


class _RequestWatch:
    """What :meth:`Form.watch_requests` saw: the first of the page's own requests to the portal
    that failed, as the error it is (``failed`` is set then)."""

    def __init__(self, session: PortalSession, what: str, types: frozenset[str]) -> None:
        self.s = session
        self.what = what
        self.types = types
        origin = urlparse(session.settings.url)
        self.origin = (origin.scheme, origin.netloc)
        self.failure: SystemFailure | None = None
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.active = True  # until the block ends, or a submit's own answer takes over

    def _watched(self, request: Request) -> bool:
        target = urlparse(request.url)
        return (self.active and self.failure is None and request.resource_type in self.types
                and (target.scheme, target.netloc) == self.origin)

    def _fail(self, kind: type[SystemFailure], request: Request, how: str) -> None:
        while request.redirected_from is not None:  # name the request the page made
            request = request.redirected_from
        where = f" ({self.what})" if self.what else ""
        self.failure = kind(f"{self.s.name}: the page's own request {request.method} {urlparse(request.url).path} {how}{where}")
        if not self.failed.done():
            self.failed.set_result(None)

    def on_response(self, response: Response) -> None:
        request = response.request
        if not self._watched(request):
            return
        try:  # classified as every read of the portal is (a 429 also pauses the reads)
            self.s.check(response.status, response.url, request.url)
        except PageChanged:
            return  # a 404 or another 4xx: an answer the page's script handles itself
        except SystemFailure as exc:
            how = (f"answered HTTP {response.status}" if response.status >= 400
                   else f"was sent to {urlparse(response.url).path} (the session expired)")
            self._fail(type(exc), request, how)

    def on_failed(self, request: Request) -> None:
        reason = request.failure or "no answer"
        if self._watched(request) and not any(d in reason for d in _DROPPED):
            self._fail(PortalUnavailable, request, f"got no answer: {reason}")


class Form:
    """One form on a portal page, addressed by selector names."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session
        self.dialogs: list[str] = []  # texts of the native dialogs answered, newest last
        self._tags: dict[str, str] = {}  # selector name -> the tag it found (INPUT, SELECT...)
        self._watch: _RequestWatch | None = None

    @property
    def page(self) -> Page:
        """The session's current page (it may be renewed: :meth:`PortalSession.fresh_page`)."""
        return self.s.page

    @contextlib.contextmanager
    def watch_requests(self, what: str = "", types: Collection[str] = WATCHED_TYPES) -> Iterator[None]:
        """While the block runs, watch the page's own requests to the portal (its script's
        ``fetch``/XHR calls: a pop-up's search, a dropdown loaded on demand) and treat the first
        that fails as what it is: a system failure of the record being written, not a changed
        screen. Failed means HTTP 5xx (:class:`~dealerbot.errors.PortalUnavailable`), 429
        (:class:`~dealerbot.errors.RateLimited`), 401 or sent to the login page
        (:class:`~dealerbot.errors.SessionExpired`), or no answer at all; a 404 or another 4xx is
        the script's own business, and a request the browser dropped (the page navigated) is
        none. ``what`` names the form in the message; ``types`` are Playwright resource types.

        From the failure on, a step of this form that waits for an element (:meth:`click`,
        :meth:`fill`, :meth:`press`, :meth:`choose`, :meth:`read`, :meth:`read_text`) ends at
        once with it, and so does the next step taken; an error inside the block after it
        (an element that never came, an option missing from a list the failed request should
        have filled) is replaced by it. :meth:`submit` raises it before its click (nothing is
        sent), and once it clicks, its own outcome says what happened: the watch ends there.

        Open the form inside the block, so that the requests its page makes on loading are
        watched too. The block watches the page current when it starts.

        Raises:
            SystemFailure: at the end of the block, a failure no step raised yet (retryable:
                the caller writes the record again, searching first).
        """
        page = self.page
        watch = _RequestWatch(self.s, what, frozenset(types))
        outer, self._watch = self._watch, watch
        page.on("response", watch.on_response)
        page.on("requestfailed", watch.on_failed)
        try:
            yield
        except (DealerbotError, PlaywrightError) as exc:
            if watch.failure is not None and watch.failure is not exc:
                raise watch.failure from exc  # what went wrong after it is its consequence
            raise
        finally:
            watch.active = False
            self._watch = outer
            page.remove_listener("response", watch.on_response)
            page.remove_listener("requestfailed", watch.on_failed)
        if watch.failure is not None:
            raise watch.failure

    async def _watched(self, step: Coroutine[Any, Any, T]) -> T:
        """``step``, ended at once when a request of the running :meth:`watch_requests` fails."""
        watch = self._watch
        if watch is None or not watch.active:
            return await step
        if watch.failure is not None:
            step.close()
            raise watch.failure
        task = asyncio.ensure_future(step)
        try:
            await asyncio.wait((task, watch.failed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():  # the request failed first (or this step is being cancelled)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task.cancelled() or (task.exception() is not None and watch.failure is not None):
            assert watch.failure is not None
            raise watch.failure from (None if task.cancelled() else task.exception())
        return task.result()

    def _css(self, name: str, params: Mapping[str, Any] | None = None) -> tuple[list[str], list[int], bool]:
        """The css choices of ``name`` (in order), their positions among all its choices, and
        whether it has other choices too (label, role...: only Playwright can try those)."""
        cands = [c.format(dict(params or {})) for c in self.s.selectors.spec(name).candidates]
        css = [(i, c.value) for i, c in enumerate(cands) if c.kind == "css" and not c.frame]
        return [v for _, v in css], [i for i, _ in css], len(css) < len(cands)

    async def fill(self, values: Mapping[str, str], by_text: frozenset[str] = frozenset()) -> None:
        """Set every ``selector name -> value`` (``<select>`` by option value, or by visible text
        for the names in ``by_text``), in one round-trip where the elements allow it.

        Raises:
            PageChanged: a field is not on the page.
            RecordRejected: a dropdown has no such option.
        """
        await self._watched(self._fill(values, by_text))

    def _batchable(self, name: str) -> tuple[list[list[Any]], list[int], bool, bool]:
        """The choices of ``name`` the one-round-trip fill can try (``css`` and ``label``, not in
        a frame; in order, as ``[kind, value, exact, xpath]``), their positions among all its
        choices, whether it has other choices too (role, text, a frame...: only Playwright can
        try those), and whether a ``label`` choice is among them."""
        cands = self.s.selectors.spec(name).candidates
        out: list[tuple[int, list[Any]]] = []
        for i, c in enumerate(cands):
            if c.frame:
                continue
            if c.kind == "css":
                out.append((i, ["css", c.value, False, ""]))
            elif c.kind == "label":
                out.append((i, ["label", c.value, c.exact, unlinked_label_xpath(c.value, c.exact).removeprefix("xpath=")]))
        return [v for _, v in out], [i for i, _ in out], len(out) < len(cands), any(v[0] == "label" for _, v in out)

    async def _fill(self, values: Mapping[str, str], by_text: frozenset[str]) -> None:
        batch: list[tuple[str, list[list[Any]], list[int], bool, str]] = []
        slow: list[tuple[str, str]] = []
        for name, value in values.items():
            choices, positions, others, labels = self._batchable(name)
            if choices:
                # a label's element may still be coming (a form drawn by script): Playwright waits for it
                batch.append((name, choices, positions, others or labels, value))
            else:
                slow.append((name, value))
        if batch:
            codes = await self.page.evaluate(_FILL_JS, [[choices, value, name in by_text] for name, choices, _, _, value in batch])
            for (name, choices, positions, wait, value), code in zip(batch, codes, strict=True):
                if code == _MISSING and not wait:
                    tried = ", ".join(c[1] for c in choices)
                    raise PageChanged(f"{self.s.name}: form field '{name}' not on {self.page.url} (tried {tried})")
                if code == _NO_OPTION:
                    raise RecordRejected("option_missing", f"下拉框「{name}」中没有选项「{value}」", name)
                if code in (_MISSING, _NOT_BATCHABLE):
                    slow.append((name, value))  # Playwright tries every choice (and warns of drift)
                else:
                    self.s.loc.fallback_used(name, positions[code])
        for name, value in slow:
            await self._fill_one(name, value, name in by_text)

    async def _fill_one(self, name: str, value: str, by_text: bool) -> None:
        known, tag = self.s.loc.known(name), self._tags.get(name)
        if known is not None and tag is not None:  # resolved on this page before: one round-trip
            try:
                if tag == "SELECT":
                    await self._select(name, known, value, by_text)
                else:
                    await known.fill(value, timeout=min(self.s.loc.timeout_ms, KNOWN_TIMEOUT_MS))
                return
            except (PlaywrightTimeout, PlaywrightError):
                pass  # not there the way it was: resolve every choice again
        loc = await self.s.loc.get(name)
        tag = self._tags[name] = await loc.evaluate("el => el.tagName")
        if tag == "SELECT":
            await self._select(name, loc, value, by_text)
        else:
            await loc.fill(value)

    async def choose(self, name: str, value: str | None = None, text: str | None = None) -> None:
        """Pick an option of the ``<select>`` ``name`` by ``value`` or visible ``text``.

        Raises:
            PageChanged: no such element. RecordRejected: no such option.
        """
        self.s.browser_acted()
        await self._watched(self._choose(name, text if value is None else value, value is None))

    async def _choose(self, name: str, wanted: str | None, by_text: bool) -> None:
        loc = self.s.loc.known(name) or await self.s.loc.get(name)
        await self._select(name, loc, wanted, by_text)

    async def _select(self, name: str, loc: Locator, wanted: str | None, by_text: bool) -> None:
        try:
            if by_text:
                await loc.select_option(label=wanted, timeout=2000)
            else:
                await loc.select_option(value=wanted, timeout=2000)
        except PlaywrightTimeout:
            raise RecordRejected("option_missing", f"下拉框「{name}」中没有选项「{wanted}」", name) from None

    async def read(self, names: Mapping[str, str]) -> dict[str, str | None]:
        """The current value of each ``key -> selector name`` (None when not on the page)."""
        return await self._watched(self._read(names))

    async def _read(self, names: Mapping[str, str]) -> dict[str, str | None]:
        keys = list(names)
        values = await self.page.evaluate(_READ_JS, [self._css(names[k])[0] for k in keys])
        out: dict[str, str | None] = dict(zip(keys, values, strict=True))
        for k in keys:
            if out[k] is None and self._css(names[k])[2] and await self.s.loc.present(names[k]):
                out[k] = await (await self.s.loc.get(names[k])).input_value()
        return out

    async def click(self, name: str, /, settled: bool = True, dialog: Dialog | None = None, **params: Any) -> None:
        """Click the element ``name`` (a real click: pop-ups, scripted buttons), waiting for it
        to appear and, when ``settled``, to be visible, still and enabled first (Playwright's
        actionability checks). ``settled=False`` only waits for it to be there and visible: for
        controls in pop-ups of the page's own making, where those checks cost frames for nothing.

        ``dialog``: answer the native ``alert``/``confirm`` the click opens (else it is dismissed).

        Raises:
            PageChanged: it did not appear.
        """
        self.s.browser_acted()
        with self._answering(dialog):
            await self._watched(self._click_named(name, settled, params))

    async def first_of(self, *names: str, **params: Any) -> str:
        """Wait until one of the elements ``names`` is visible and return its name (the first
        listed when several are): a search that shows either its rows or a "nothing found" line.

        Raises:
            PageChanged: none of them appeared within the timeout.
        """
        self.s.browser_acted()
        return await self._watched(self._first_of(names, params))

    async def _first_of(self, names: tuple[str, ...], params: Mapping[str, Any]) -> str:
        loc = self.s.loc
        combined = None
        for name in names:
            for candidate in loc.all_candidates(name, **params):
                combined = candidate if combined is None else combined.or_(candidate)
        if combined is None:
            raise ValueError("first_of needs at least one element name")
        try:
            await combined.first.wait_for(state="visible", timeout=loc.timeout_ms)
        except (PlaywrightTimeout, PlaywrightError) as exc:
            raise PageChanged(f"{self.s.name}: none of {', '.join(names)} appeared on {self.page.url} "
                              f"within {loc.timeout_ms / 1000:.0f}s") from exc
        for name in names:
            if await loc.visible(name, **params):
                return name
        return names[0]  # shown and hidden again meanwhile: the first choice is the one to try

    async def _click_named(self, name: str, settled: bool, params: Mapping[str, Any]) -> None:
        known = self.s.loc.known(name, **params)
        if known is not None:
            try:
                await self._click(known, settled)
                return
            except PlaywrightTimeout:
                pass  # not there the way it was: resolve every choice again
        await self._click(await self.s.loc.get(name, **params), settled)

    def _answering(self, dialog: Dialog | None) -> contextlib.AbstractContextManager[None]:
        """While the block runs, answer native dialogs with ``dialog`` (their texts are kept in
        :attr:`dialogs`)."""

        page, seen = self.page, self.dialogs

        async def answer(native_dialog: PageDialog) -> None:
            seen.append(native_dialog.message)
            await (native_dialog.accept() if dialog == "accept" else native_dialog.dismiss())

        @contextlib.contextmanager
        def block() -> Iterator[None]:
            if dialog is None:
                yield
                return
            page.on("dialog", answer)
            try:
                yield
            finally:
                page.remove_listener("dialog", answer)

        return block()

    @staticmethod
    async def _click(loc: Locator, settled: bool) -> None:
        if settled:
            await loc.click()
        else:
            await loc.wait_for(state="visible")
            await loc.click(force=True)

    async def press(self, name: str, key: str, /, **params: Any) -> None:
        """Press ``key`` (e.g. ``Enter``) in the element ``name``."""
        self.s.browser_acted()
        await self._watched(self._press(name, key, params))

    async def _press(self, name: str, key: str, params: Mapping[str, Any]) -> None:
        known = self.s.loc.known(name, **params)
        await (known if known is not None else await self.s.loc.get(name, **params)).press(key)

    async def submit(
        self,
        button: str,
        confirm: str | None = None,
        errors: str | None = None,
        error_attr: str = "data-for",
        stayed: Callable[[str], bool] | None = None,
        timeout_ms: float | None = None,
        dialog: Dialog | None = None,
        toast: str | None = None,
        success: Sequence[Signal | Mapping[str, Any]] | None = None,
        failure: Sequence[Signal | Mapping[str, Any]] | None = None,
    ) -> SubmitOutcome:
        """Click ``button`` once (then ``confirm``, the OK of a confirm dialog) and read what the
        portal answered.

        A form whose page is posted (a navigation): ``saved``: the answer is a page other than
        the form (``stayed(url)`` false; by default, any URL other than the form's) with a status
        below 400; ``refused``: the form came back, with the texts of the ``errors`` elements by
        their ``error_attr`` (field name); ``unknown``: no answer within the timeout, or the page
        went away. Never retried. ``dialog="accept"`` answers the browser's native ``confirm()``
        the click opens; ``toast`` names the success message read into the outcome's ``detail``
        when saved.

        A script-handled form (its script sends the data and shows the answer, no page load):
        give its signals, ``success`` and ``failure`` (each a list of ``{"selector": name}``,
        ``{"text": "保存成功"}``, ``{"response": {"url": "/api/cars", "status": 200}}``), or
        declare them under ``outcomes:`` in the selector file by the button's name (arguments
        given here win). Whichever shows first after the click decides, without waiting for a
        navigation: a failure signal is ``refused`` with its text (or the answer's ``error`` /
        ``message``) as the reason, plus the ``errors`` elements by field; a success signal is
        ``saved`` with its text as ``detail``. An element or text already showing before the
        click counts only when another one appears (or its text changes): a toast left from the
        record before is not this one's answer. Nothing within the timeout: ``unknown``. A
        signal shown on a page the form led to counts too; the login page is ``unknown``.

        Inside :meth:`watch_requests`: a failure of the page's own requests seen before is
        raised before the click (nothing is sent); from the click on, the watch ends.

        Raises:
            PageChanged: the button or the confirm dialog is not there.
            SystemFailure: see :meth:`watch_requests`.
            ValueError: a signal given here is malformed (a bot's mistake).
        """
        self.s.browser_acted()
        declared = self.s.selectors.outcomes.get(button)
        names = self.s.selectors.selectors
        wins = tuple(parse_signal(x, names) for x in success) if success is not None else declared.success if declared else ()
        loses = tuple(parse_signal(x, names) for x in failure) if failure is not None else declared.failure if declared else ()
        if loses and not wins:
            raise ValueError(f"submit('{button}'): failure signals need success signals too")
        if self._watch is not None and self._watch.active:
            if self._watch.failure is not None:
                raise self._watch.failure
            self._watch.active = False  # the submit's own outcome says what happened
        with self._answering(dialog):
            if wins:
                return await self._submit_signalled(button, confirm, errors, error_attr, timeout_ms, wins, loses)
            outcome = await self._submit(button, confirm, errors, error_attr, stayed, timeout_ms)
        if outcome.result == "saved" and toast:
            found = await self.read_text(toast)
            if found:
                return SubmitOutcome("saved", outcome.url, outcome.status, {}, found)
        return outcome

    async def read_text(self, name: str, /, **params: Any) -> str:
        """The text of the element ``name`` once the page (and its frames) have loaded ("" when it
        is not there)."""
        return await self._watched(self._read_text(name, params))

    async def _read_text(self, name: str, params: Mapping[str, Any]) -> str:
        try:
            await self.page.wait_for_load_state("load")
        except PlaywrightError:
            return ""
        if not await self.s.loc.present(name, **params):
            return ""
        return (await (await self.s.loc.get(name, **params)).inner_text()).strip()

    async def _submit(
        self, button: str, confirm: str | None, errors: str | None, error_attr: str,
        stayed: Callable[[str], bool] | None, timeout_ms: float | None,
    ) -> SubmitOutcome:
        form_url = self.page.url
        stayed = stayed or (lambda url: url.split("?")[0] == form_url.split("?")[0])
        timeout = timeout_ms if timeout_ms is not None else self.s.run.timeout_seconds * 1000
        button_loc = self.s.loc.known(button) or await self.s.loc.get(button)
        sent = False  # from the click that may save on, any doubt means "unknown", never "again"
        try:
            # "commit": the answer's status and URL are all a success needs; the page it leads to
            # is not rendered for nothing (the next step navigates away at once).
            async with self.page.expect_navigation(wait_until="commit", timeout=timeout) as nav:
                if confirm is None:
                    sent = True
                    await button_loc.click(no_wait_after=True)
                else:
                    await button_loc.click(no_wait_after=True)  # opens the confirm dialog
                    confirm_loc = self.s.loc.known(confirm) or await self.s.loc.get(confirm)
                    sent = True
                    await confirm_loc.click(no_wait_after=True)
            response = await nav.value
        except PlaywrightTimeout:
            if not sent:
                raise PageChanged(f"{self.s.name}: '{button}' did not take the click") from None
            return SubmitOutcome("unknown", self.page.url, None, {}, f"no answer within {timeout / 1000:.1f}s")
        except PlaywrightError as exc:  # page closed or crashed mid-submit
            if not sent:
                raise PageChanged(f"{self.s.name}: '{button}': {str(exc).splitlines()[0]}") from None
            return SubmitOutcome("unknown", "", None, {}, str(exc).splitlines()[0])
        status = response.status if response is not None else None
        url = self.page.url
        if self.s.is_login_url(url) or self.s.is_expired(url):
            return SubmitOutcome("unknown", url, status, {}, "the portal asked to log in again (session expired)")
        if status is not None and status >= 500:
            return SubmitOutcome("unknown", url, status, {}, f"HTTP {status}")
        if stayed(url) or (status is not None and status >= 400):
            try:
                await self.page.wait_for_load_state("domcontentloaded", timeout=timeout)
            except PlaywrightError:
                return SubmitOutcome("unknown", url, status, {}, "the form came back but did not load")
            found = await self.errors(errors, error_attr) if errors else {}
            return SubmitOutcome("refused", url, status, found, "" if found else f"HTTP {status}: the form came back")
        return SubmitOutcome("saved", url, status)

    async def _submit_signalled(
        self, button: str, confirm: str | None, errors: str | None, error_attr: str, timeout_ms: float | None,
        success: tuple[Signal, ...], failure: tuple[Signal, ...],
    ) -> SubmitOutcome:
        """:meth:`submit` of a script-handled form: the click, then the first of the signals."""
        page = self.page
        timeout = timeout_ms if timeout_ms is not None else self.s.run.timeout_seconds * 1000
        button_loc = self.s.loc.known(button) or await self.s.loc.get(button)
        answers: list[Response] = []  # the page's answers a response signal names, in order

        def on_response(response: Response) -> None:
            if any(sig.kind == "response" and self._url_is(sig, response.url) for sig in (*success, *failure)):
                answers.append(response)

        page.on("response", on_response)
        try:
            before = {sig: await self._shown(sig) for sig in (*failure, *success) if sig.kind != "response"}
            sent = False  # from the click that may save on, any doubt means "unknown", never "again"
            try:
                if confirm is None:
                    sent = True
                    await button_loc.click(no_wait_after=True, timeout=timeout)
                else:
                    await button_loc.click(no_wait_after=True, timeout=timeout)  # opens the confirm dialog
                    confirm_loc = self.s.loc.known(confirm) or await self.s.loc.get(confirm)
                    sent = True
                    await confirm_loc.click(no_wait_after=True, timeout=timeout)
            except PlaywrightTimeout:
                if not sent:
                    raise PageChanged(f"{self.s.name}: '{button}' did not take the click") from None
                return SubmitOutcome("unknown", page.url, None, {}, f"no answer within {timeout / 1000:.1f}s")
            except PlaywrightError as exc:
                if not sent:
                    raise PageChanged(f"{self.s.name}: '{button}': {str(exc).splitlines()[0]}") from None
                return SubmitOutcome("unknown", "", None, {}, str(exc).splitlines()[0])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout / 1000
            while True:
                url = page.url
                if self.s.is_login_url(url) or self.s.is_expired(url):
                    return SubmitOutcome("unknown", url, None, {}, "the portal asked to log in again (session expired)")
                for result, signals in (("refused", failure), ("saved", success)):
                    for sig in signals:
                        seen = await self._seen(sig, before.get(sig, ()), answers, result == "saved")
                        if seen is None:
                            continue
                        status, text = seen
                        if result == "saved":
                            return SubmitOutcome("saved", page.url, status, {}, text)
                        found = await self.errors(errors, error_attr) if errors else {}
                        said = {"": text} if text and text not in found.values() else {}
                        return SubmitOutcome("refused", page.url, status, {**said, **found},
                                             "" if said or found else f"the portal showed {sig.describe()}")
                if loop.time() >= deadline:
                    shown = ", ".join(sig.describe() for sig in (*success, *failure))
                    return SubmitOutcome("unknown", page.url, None, {},
                                         f"none of {shown} within {timeout / 1000:.1f}s")
                await asyncio.sleep(0.1)
        finally:
            page.remove_listener("response", on_response)

    def _url_is(self, sig: Signal, url: str) -> bool:
        """Whether ``url`` is the one a response signal names (a path, a full URL or an endpoint)."""
        wanted = sig.value
        if wanted in self.s.selectors.endpoints:
            wanted = self.s.selectors.endpoint(wanted)
        if "://" in wanted:
            return url.split("?")[0].rstrip("/") == wanted.split("?")[0].rstrip("/")
        return urlparse(url).path.rstrip("/") == wanted.split("?")[0].rstrip("/")

    def _signal_locator(self, sig: Signal) -> Locator | None:
        if sig.kind == "text":
            return self.page.get_by_text(sig.value)
        combined = None
        for candidate in self.s.loc.all_candidates(sig.value):
            combined = candidate if combined is None else combined.or_(candidate)
        return combined

    async def _shown(self, sig: Signal) -> tuple[str, ...]:
        """The texts of the visible elements a selector or text signal matches now."""
        loc = self._signal_locator(sig)
        if loc is None:
            return ()
        try:
            texts = await loc.evaluate_all(_VISIBLE_TEXTS_JS)
        except PlaywrightError:
            return ()  # the page is being replaced: looked at again in a moment
        return tuple(str(t) for t in texts)

    async def _seen(
        self, sig: Signal, before: tuple[str, ...], answers: list[Response], success: bool,
    ) -> tuple[int | None, str] | None:
        """(status, text) when ``sig`` shows now and did not before the click, else None."""
        if sig.kind != "response":
            now = collections.Counter(await self._shown(sig))
            new = now - collections.Counter(before)
            return (None, next(iter(new))) if new else None
        for response in answers:
            if sig.status:
                if response.status not in sig.status:
                    continue
            elif (response.status < 400) != success:
                continue
            return response.status, await self._answer_text(response)
        return None

    @staticmethod
    async def _answer_text(response: Response) -> str:
        """What a signalled answer says: its JSON's ``error``/``message``/``detail``/``msg``, or its
        text (shortened); "" when unreadable."""
        try:
            body = await response.text()
        except PlaywrightError:
            return ""
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            if isinstance(data, dict):
                for key in ("error", "message", "detail", "msg"):
                    if isinstance(data.get(key), str) and data[key].strip():
                        return str(data[key]).strip()
            return ""
        text = " ".join(body.split())
        return "" if text.startswith("<") else text[:200]

    async def download(
        self, name: str, folder: Path, /, filename: str | None = None, timeout_ms: float | None = None, **params: Any,
    ) -> Path:
        """Click ``name`` and save the file the portal sends into ``folder`` (made private, 0700),
        as ``filename`` or the portal's own name (made safe); the file is 0600.

        Raises:
            PageChanged: no such element. StepTimeout: no download began within the timeout.
            PortalUnavailable: the download failed.
        """
        from dealerbot.private_files import private_dir

        timeout = timeout_ms if timeout_ms is not None else self.s.run.timeout_seconds * 1000
        loc = await self.s.loc.get(name, **params)
        try:
            async with self.page.expect_download(timeout=timeout) as info:
                await loc.click()
            download = await info.value
        except PlaywrightTimeout:
            raise StepTimeout(f"{self.s.name}: '{name}' started no download within {timeout / 1000:.0f}s") from None
        failure = await download.failure()
        if failure:
            raise PortalUnavailable(f"{self.s.name}: the download from '{name}' failed: {failure}")
        safe = re.sub(r"[^\w.\-\u4e00-\u9fff]+", "_", filename or download.suggested_filename or "download").strip("._") or "download"
        target = private_dir(folder) / safe
        await download.save_as(target)
        if os.name == "posix":
            os.chmod(target, 0o600)
        return target

    async def upload(self, name: str, files: str | Path | list[Path], /, **params: Any) -> None:
        """Set the file input ``name`` to ``files`` (a path, or a list of them).

        Raises:
            PageChanged: no such element. FileNotFoundError: a file does not exist.
        """
        paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(p)
        await (await self.s.loc.get(name, **params)).set_input_files(paths)

    async def popup(self, name: str, /, **params: Any) -> PortalSession:
        """Click ``name`` and return a session on the window it opens (same login; its page
        closes with the browser context).

        Raises:
            PageChanged: no such element, or no window opened.
        """
        loc = await self.s.loc.get(name, **params)
        try:
            async with self.page.context.expect_page(timeout=self.s.run.timeout_seconds * 1000) as info:
                await loc.click()
            page = await info.value
            await page.wait_for_load_state("domcontentloaded")
        except PlaywrightTimeout:
            raise PageChanged(f"{self.s.name}: '{name}' opened no window") from None
        return self.s.sibling(page)

    async def errors(self, name: str, attr: str = "data-for") -> dict[str, str]:
        """The error texts on the page, by the field named in ``attr`` of each error element."""
        css = self._css(name)[0]
        if not css:
            return {}
        found = await self.page.evaluate(_ERRORS_JS, [css, attr])
        out: dict[str, str] = {}
        for key, text in found or []:
            out[key] = f"{out[key]}；{text}" if key in out else text
        return out

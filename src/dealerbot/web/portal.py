"""A logged-in portal: its browser page, its selectors, and reads through the same session.

Bots move through screens in the real browser (login, notice, list pages) and read bulk data
the cheapest faithful way the portal itself offers: its JSON endpoints as its own pages call
them, and its pages fetched with the same cookies (over plain HTTP by default, see
:mod:`dealerbot.web.http_reads`; through the browser context's request API with ``[portals.<name>]
reads = "browser"``). Every such read is classified here into the error tree of
:mod:`dealerbot.errors`:

* 401, or a redirect to the login page -> :class:`SessionExpired`: log in again (once per
  expiry, at most ``MAX_RELOGINS`` a run) and repeat the read;
* 429 -> :class:`RateLimited`; 503 and other 5xx, refused connections -> :class:`PortalUnavailable`;
  timeouts -> :class:`StepTimeout`: retried with exponential backoff (:func:`with_retries`);
* 503 with the portal's maintenance notice -> :class:`PortalMaintenance` (not retried: the run
  ends postponed until the announced end of the window);
* 404 -> :class:`PageChanged` (not retried);
* ``[run] max_consecutive_failures`` retryable failures in a row, whatever reads they hit ->
  :class:`CircuitOpen` (the portal is down: stop rather than retry every remaining read).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urljoin, urlparse

import httpx
from aiolimiter import AsyncLimiter
from loguru import logger
from lxml import html as lxml_html
from playwright.async_api import TimeoutError as PlaywrightTimeout
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from dealerbot.errors import (
    BrowserCrashed,
    CircuitOpen,
    LoginRejected,
    PageChanged,
    PortalMaintenance,
    PortalUnavailable,
    RateLimited,
    SessionExpired,
    StepTimeout,
    SystemFailure,
)
from dealerbot.web.http_reads import Answer
from dealerbot.web.locators import HtmlReader, Locators, SelectorFile

if TYPE_CHECKING:
    from playwright.async_api import Page

    from dealerbot.config import PortalSettings, RunSettings
    from dealerbot.web.browser import PortalContext
    from dealerbot.web.http_reads import CookieClient

T = TypeVar("T")
MAX_RELOGINS = 3
RATE_LIMIT_FACTOR = 5.0
MAX_BACKOFF_SECONDS = 30.0
PACED_TYPES = frozenset({"document", "xhr", "fetch", "eventsource", "websocket"})
PACE_MARGIN = 1.02  # N requests take 2% more than a minute: clock jitter never makes it N+1


async def with_retries(
    what: str,
    fn: Callable[[], Awaitable[T]],
    attempts: int,
    backoff: float,
    on_retry: Callable[[SystemFailure], None] | None = None,
    log: Any = logger,
) -> T:
    """Run ``fn``; on a retryable :class:`SystemFailure`, wait and try again (tenacity).

    Waits ``backoff * 2**n`` seconds (times 5 after a rate-limit answer, at most
    ``MAX_BACKOFF_SECONDS``) with jitter. A first attempt that works costs one call: tenacity
    takes over only after a failure (it runs around every read of a run).

    Raises:
        SystemFailure: the last failure once ``attempts`` retries are used up, or at once
            for a failure that is not retryable.
    """
    try:
        return await fn()
    except SystemFailure as exc:
        if not exc.retryable or attempts < 1:
            raise
        first = exc

    def delay(failed: int, exc: BaseException | None) -> float:
        seconds = min(MAX_BACKOFF_SECONDS, backoff * 2 ** (failed - 1))
        seconds *= RATE_LIMIT_FACTOR if isinstance(exc, RateLimited) else 1.0
        return seconds * (1 + random.random() * 0.25)

    def retrying_after(failed: int, exc: BaseException | None, sleep: float) -> None:
        log.warning("{} failed: {}; retry {}/{} in {:.1f}s", what, exc, failed, attempts, sleep)
        if on_retry and isinstance(exc, SystemFailure):
            on_retry(exc)

    sleep = delay(1, first)
    retrying_after(1, first, sleep)
    await asyncio.sleep(sleep)

    # tenacity counts from the second attempt: its attempt n is the run's n + 1
    def wait(state: RetryCallState) -> float:
        return delay(state.attempt_number + 1, state.outcome.exception() if state.outcome else None)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        retrying_after(state.attempt_number + 1, exc, state.next_action.sleep if state.next_action else 0.0)

    async def call() -> T:  # a coroutine function: tenacity awaits it (a lambda it would not)
        return await fn()

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(lambda e: isinstance(e, SystemFailure) and e.retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(call)


_WINDOW = re.compile(r"(\d{1,2}:\d{2})\s*(?:-|–|—|~|～|至|到)\s*(\d{1,2}:\d{2})")
_SENTENCE_END = "。！!？?\n"
# What a maintenance notice says (a footer's "网站维护：某公司" or a hotline does not).
_NOTICE_WORDS = ("维护中", "系统维护", "正在维护", "停机维护", "升级维护", "维护时间", "maintenance")
MAX_NOTICE_BYTES = 64_000  # a 503 page with a big inline bundle is not read further


def _sentences_with(text: str, words: tuple[str, ...]) -> list[str]:
    """The sentences of ``text`` that hold one of ``words`` (plain searches: linear time)."""
    low = text.lower()
    found = []
    for word in words:
        start = 0
        while (at := low.find(word, start)) >= 0:
            left = max((text.rfind(c, 0, at) for c in _SENTENCE_END), default=-1) + 1
            ends = [e for c in _SENTENCE_END if (e := text.find(c, at)) >= 0]
            right = min(ends) if ends else len(text)
            found.append(" ".join(text[left:right].split()))
            start = right
    return found


def maintenance_notice(body: str) -> tuple[str, str | None] | None:
    """The portal's maintenance notice in a 503 answer (HTML or JSON), and the announced end of
    its window ("HH:MM") when the notice itself names one; None when the answer is not a
    maintenance notice. Reads at most the first :data:`MAX_NOTICE_BYTES` characters."""
    body = body[:MAX_NOTICE_BYTES]
    text = body
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        data = json.loads(body)
        text = " ".join(str(v) for v in data.values()) if isinstance(data, dict) else str(data)
    if text is body and "<" in body:
        with contextlib.suppress(Exception):  # not HTML after all: search the raw text
            root = lxml_html.fromstring(body)
            for junk in root.xpath("//script | //style"):
                junk.drop_tree()
            text = "\n".join(root.itertext())  # one line per element
    sentences = [t for t in _sentences_with(text, _NOTICE_WORDS) if t]
    if not sentences:
        return None
    # The sentence that names the window, else the longest (a page title says less).
    notice = max(sentences, key=lambda t: (_WINDOW.search(t) is not None, len(t)))[:200]
    window = _WINDOW.search(notice)  # only the notice's own window: not some opening hours elsewhere
    return notice, (window.group(2).zfill(5) if window else None)


class _Gate:
    """Reads through the session pass freely, several at once; a recycle of the browser context
    (:meth:`PortalSession.recycle`) waits until the reads in flight are done and holds new ones
    back until the fresh context is ready. (Events, not a lock: a read's fast path is two
    counter updates, on every read of a long run.)"""

    def __init__(self) -> None:
        self._users = 0
        self._open = asyncio.Event()
        self._open.set()
        self._drained = asyncio.Event()
        self._drained.set()

    @contextlib.asynccontextmanager
    async def use(self) -> Any:
        while not self._open.is_set():
            await self._open.wait()
        self._users += 1
        self._drained.clear()
        try:
            yield
        finally:
            self._users -= 1
            if not self._users:
                self._drained.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> Any:
        while not self._open.is_set():
            await self._open.wait()
        self._open.clear()
        try:
            await self._drained.wait()
            yield
        finally:
            self._open.set()


MEMORY_CHECK_SECONDS = 2.0  # between two looks at the memory ([browser] recycle_memory_mb)
# Reads copy the browser's cookies again after this long even when it did nothing dealerbot saw
# (a page's own script may set one).
COOKIE_RECHECK_SECONDS = 1.0


def memory_in_use_mb() -> float:
    """The memory this process and every process it started (Playwright's driver, the browser)
    use together: proportional set size in MB (resident size where PSS is not known)."""
    import psutil

    me = psutil.Process()
    total = 0
    for p in (me, *me.children(recursive=True)):
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        total += getattr(info, "pss", info.rss)
    return total / 1e6


@dataclass
class _Shared:
    """What every page of one logged-in portal shares: its session's re-logins and its request
    budget (the portal counts requests per account, not per page)."""

    limit: asyncio.Semaphore
    generation: int = 0
    relogins: int = 0
    login_refused: LoginRejected | None = None
    relogin_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pace: AsyncLimiter | None = None  # [run] requests_per_minute
    paused_until: float = 0.0
    failures_in_row: int = 0  # system failures since the last read that worked (circuit breaker)
    routed: bool = False  # the browser's own requests pass through throttle() (see count_every_request)
    failed_response: tuple[str, int, str] | None = None  # the last failed answer (url, status, body)
    logged_in: bool = False  # a password was typed this run (else the saved login was used)
    sessions: list[PortalSession] = field(default_factory=list)  # one per page of the login
    gate: _Gate = field(default_factory=_Gate)
    requests: int = 0  # sent to the portal by dealerbot's reads and navigations
    recycle_requests: int = 0  # renew the browser context after this many requests (0: never)
    recycle_memory_mb: int = 0  # ... or above this much memory (0: no limit)
    recycled_at: int = 0  # ``requests`` at the last renewal
    memory_checked_at: float = 0.0  # event-loop time of the last look at the memory
    recycling: bool = False
    http: CookieClient | None = None  # reads over plain HTTP with the browser's cookies (reads = "http")
    http_cookies: list[dict[str, Any]] = field(default_factory=list)  # what was copied into it last
    http_synced: tuple[int, int, int] | None = None  # (generation, context, moves) at that copy
    http_synced_at: float = 0.0  # event-loop time of that copy
    moves: int = 0  # screens the browser went to and actions on them: each may have changed its cookies
    warned_cookies: bool = False  # said once that some cookies cannot go over plain HTTP


class PortalSession:
    """One portal, logged in, for one run.

    ``login`` is the page object's login routine; :meth:`fetch` calls it again when the
    portal's session has expired.
    """

    def __init__(
        self,
        name: str,
        settings: PortalSettings,
        pctx: PortalContext,
        page: Page,
        selectors: SelectorFile,
        run: RunSettings,
        log: Any = logger,
        counts: dict[str, int] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.pctx = pctx
        self.page = page
        self.selectors = selectors
        self.run = run
        self.log = log
        self.loc = Locators(page, selectors, timeout_ms=run.timeout_seconds * 1000, log=log)
        self.html = HtmlReader(selectors, log=log)
        self.counts = counts if counts is not None else {}
        self.login: Callable[[], Awaitable[None]] | None = None
        self.app: Any = None  # the portal's top-level page object (set by BotContext.portal)
        per_minute = run.requests_per_minute
        self.shared = _Shared(
            asyncio.Semaphore(run.concurrency),
            pace=AsyncLimiter(1, 60 / per_minute * PACE_MARGIN) if per_minute else None,
        )
        self.shared.sessions.append(self)
        self._watch(page)

    def _watch(self, page: Page) -> None:
        """Count the screens ``page`` goes to (any of them may set cookies the reads need)."""

        def moved(frame: Any) -> None:
            if frame.parent_frame is None:
                self.shared.moves += 1

        if page is not None:  # a session made only to classify answers has no page
            page.on("framenavigated", moved)

    def browser_acted(self) -> None:
        """Note that the browser did something that may have set cookies without loading a page
        (a click, a choice: the page's script may call the portal): reads copy them again."""
        self.shared.moves += 1

    def sibling(self, page: Page) -> PortalSession:
        """A session on another page of the same browser context (the same login), for work on
        several screens at once. Re-logins, the request budget and the counts are shared; set
        its ``login`` to a routine that logs in on its own page."""
        other = PortalSession(self.name, self.settings, self.pctx, page, self.selectors, self.run, self.log, self.counts)
        other.shared = self.shared
        self.shared.sessions.append(other)
        return other

    async def fresh_page(self) -> None:
        """Go on in a new page of the same context and close the old one. A page that has loaded
        hundreds of screens keeps its renderer's memory high; a new one starts small. The login
        (cookies) is the context's and stays."""
        old = self.page
        self._use_page(await self.pctx.new_page())
        await old.close()

    def _use_page(self, page: Page) -> None:
        self.page = page
        self._watch(page)
        self.loc = Locators(page, self.selectors, timeout_ms=self.run.timeout_seconds * 1000, log=self.log)

    def recycle_when(self, requests: int = 0, memory_mb: int = 0) -> None:
        """Renew the browser context (:meth:`recycle`) every ``requests`` requests to the portal,
        and when the bot and its browser use more than ``memory_mb`` (0: never). Only for bots
        whose pages wait on a screen while they read through the session: a renewal reopens
        every page at its address."""
        self.shared.recycle_requests, self.shared.recycle_memory_mb = requests, memory_mb

    async def recycle(self, why: str = "") -> None:
        """Go on in a fresh browser context with the same login, every page of the login reopened
        at the address it showed. Waits for the reads in flight to finish and holds new ones back
        meanwhile, so that no read is lost or made twice. No password is typed while the login
        holds (its cookies move to the new context); an ended session logs in again as usual.

        Raises:
            SystemFailure: a page could not be opened again (after retries).
        """
        sh = self.shared
        async with sh.gate.exclusive():
            screens = [(s, s.page.url) for s in sh.sessions if not s.page.is_closed()]
            old = await self.pctx.recycle()
            try:
                if sh.routed:
                    await self._route_requests()
                for s, _ in screens:  # every session on the new context first, then the screens
                    s._use_page(await self.pctx.new_page())
                for s, url in screens:
                    if urlparse(url).scheme in ("http", "https"):
                        await s.step("open the screen again", lambda s=s, url=url: s.goto(url))
            finally:
                await old.close()
            sh.recycled_at = sh.requests
            self.counts["recycles"] = self.counts.get("recycles", 0) + 1
        self.log.info("{}: went on in a fresh browser context after {} requests{}", self.name, sh.requests,
                      f" ({why})" if why else "")

    async def _maybe_recycle(self) -> None:
        """Renew the context when :meth:`recycle_when` says it is time (called between reads)."""
        sh = self.shared
        if sh.recycling or not (sh.recycle_requests or sh.recycle_memory_mb):
            return
        why = ""
        if sh.recycle_requests and sh.requests - sh.recycled_at >= sh.recycle_requests:
            why = f"every {sh.recycle_requests} requests"
        elif sh.recycle_memory_mb and asyncio.get_running_loop().time() - sh.memory_checked_at >= MEMORY_CHECK_SECONDS:
            sh.memory_checked_at = asyncio.get_running_loop().time()
            used = await asyncio.to_thread(memory_in_use_mb)
            if used > sh.recycle_memory_mb:
                why = f"{used:.0f} MB in use, over {sh.recycle_memory_mb} MB"
        if not why:
            return
        sh.recycling = True
        try:
            await self.recycle(why)
        finally:
            sh.recycling = False

    # -- URLs ------------------------------------------------------------------------------
    def url(self, path_or_endpoint: str, params: dict[str, Any] | None = None, /, **fmt: Any) -> str:
        """Absolute URL for an endpoint name from the selector file or a literal path."""
        path = (
            self.selectors.endpoint(path_or_endpoint, **fmt)
            if path_or_endpoint in self.selectors.endpoints
            else path_or_endpoint
        )
        url = urljoin(self.settings.url.rstrip("/") + "/", path.lstrip("/"))
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return f"{url}?{urlencode(clean)}" if clean else url

    def is_login_url(self, url: str) -> bool:
        """Whether ``url`` is the portal's login page."""
        login_path = self.selectors.endpoints.get("login", "/login")
        return urlparse(url).path.rstrip("/") == login_path.rstrip("/")

    def is_expired(self, url: str, body: str | None = None) -> bool:
        """Whether an answer shows an ended session the way the portal declares it
        (``session_expired`` in its selector file): sent to one of its pages, or its text."""
        f = self.selectors
        if f.expired_paths and (urlparse(url).path.rstrip("/") or "/") in f.expired_paths:
            return True
        return bool(f.expired_text and body and f.expired_text in body)

    # -- the browser page -----------------------------------------------------------------
    async def goto(self, endpoint: str, params: dict[str, Any] | None = None, /, expect_login: bool = False, **fmt: Any) -> None:
        """Navigate the page to an endpoint and check the answer.

        A redirect to the login page is not an error here when ``expect_login`` is true
        (page objects check for the login form themselves).

        Raises:
            PortalUnavailable, RateLimited, PageChanged: the portal answered an error status.
            SessionExpired: sent to the login page while ``expect_login`` is false.
        """
        url = self.url(endpoint, params, **fmt)
        self.shared.requests += 1
        if not self.shared.routed:  # else the navigation is counted by the route
            await self.throttle()
        try:
            resp = await self.page.goto(url, wait_until="domcontentloaded")
        except Exception as exc:  # playwright.Error: refused, timeout, aborted
            raise self._network_error(exc, url) from exc
        if resp is not None:
            wanted = resp.status == 503 or bool(self.selectors.expired_text)
            self.check(resp.status, resp.url, url, expect_login, body=await resp.text() if wanted else None)

    async def step(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a screen step, retrying it from the start on a retryable system failure.

        Raises:
            SystemFailure: after the retries are used up.
        """

        async def attempt() -> T:
            generation = self.shared.generation
            try:
                try:
                    return await fn()
                except SessionExpired:
                    await self.relogin(generation)  # then the step runs again from its start
                    return await fn()
            except PlaywrightTimeout as exc:  # a page action that never completed
                raise StepTimeout(f"{self.name}: {what}: {str(exc).splitlines()[0]}") from exc

        return await with_retries(
            f"{self.name}: {what}", lambda: self._guarded(attempt), self.run.retries, self.run.backoff_seconds,
            self._count_retry, self.log,
        )

    async def _guarded(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()`` under the circuit breaker: a success closes it; the
        ``[run] max_consecutive_failures``-th retryable failure in a row opens it.

        Raises:
            CircuitOpen: this failure was one too many in a row.
        """
        try:
            result = await fn()
        except SystemFailure as exc:
            if exc.retryable:
                self.shared.failures_in_row += 1
                limit = self.run.max_consecutive_failures
                if self.shared.failures_in_row >= limit:
                    raise CircuitOpen(
                        f"{self.selectors.title}连续 {self.shared.failures_in_row} 次出错，本次运行停止，稍后再试 "
                        f"({self.name}: {limit} system failures in a row, the last: {exc})"
                    ) from exc
            raise
        self.shared.failures_in_row = 0
        self.shared.failed_response = None  # evidence of a failure a retry got past would mislead
        return result

    # -- reads through the session ------------------------------------------------------
    async def fetch_json(
        self, endpoint: str, params: dict[str, Any] | None = None, /, *, patient: bool = False, **fmt: Any,
    ) -> Any:
        """GET a JSON endpoint with the browser's cookies (retries, re-login; see :meth:`fetch`).

        Raises:
            SystemFailure: see the module docstring.
        """
        body = await self.fetch(endpoint, params, patient=patient, **fmt)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise PageChanged(f"{self.name}: {endpoint} did not answer JSON: {body[:120]!r}") from exc

    async def fetch_html(
        self, endpoint: str, params: dict[str, Any] | None = None, /, *, patient: bool = False, **fmt: Any,
    ) -> Any:
        """GET a page with the browser's cookies and parse it (lxml element; see :meth:`fetch`).

        Raises:
            SystemFailure: see the module docstring.
        """
        body = await self.fetch(endpoint, params, patient=patient, **fmt)
        return lxml_html.fromstring(body)

    async def fetch(
        self, endpoint: str, params: dict[str, Any] | None = None, /, *, patient: bool = False, **fmt: Any,
    ) -> str:
        """GET ``endpoint`` and return the body text, classifying failures.

        A record's read is tried ``[run] retries`` more times; a ``patient`` read (a list page,
        which the whole run walks through) until the circuit breaker opens.

        Raises:
            SystemFailure: after the retries are used up (see the module docstring).
            CircuitOpen: too many failures in a row.
            PortalMaintenance: the portal's maintenance notice.
            LoginRejected: logging in again was refused.
        """
        url = self.url(endpoint, params, **fmt)
        attempts = self.run.max_consecutive_failures if patient else self.run.retries
        body = await with_retries(
            f"GET {urlparse(url).path}", lambda: self._guarded(lambda: self._fetch_once(url)), attempts,
            self.run.backoff_seconds, self._count_retry, self.log,
        )
        await self._maybe_recycle()
        return body

    def _count_retry(self, _exc: SystemFailure) -> None:
        self.counts["retries"] = self.counts.get("retries", 0) + 1

    async def _fetch_once(self, url: str) -> str:
        async with self.shared.gate.use():
            return await self._fetch_in_context(url)

    async def _fetch_in_context(self, url: str) -> str:
        generation = self.shared.generation
        text = await self._read_once(url)
        if text is None and await self._browser_cookies_changed():
            text = await self._read_once(url)  # the browser renewed the login meanwhile: its cookies
        if text is None:
            await self.relogin(generation)
            text = await self._read_once(url, last=True)
        assert text is not None  # the last try raises instead
        return text

    async def _read_once(self, url: str, last: bool = False) -> str | None:
        """One read: its text, or None when it found the session ended (raised on the ``last`` try).
        Cookies the answer set go to the browser only when it was a good answer: an ended
        session's answer (a new, anonymous session) must not replace a login the browser holds.

        Raises:
            SystemFailure: as :meth:`check`.
        """
        async with self.shared.limit:
            answer = await self._get(url)
        try:
            self.check(answer.status, answer.url, url, body=answer.text)
        except SessionExpired:
            if last:
                raise
            return None
        except SystemFailure:
            self._keep_failed(answer, url)
            raise
        if answer.cookies or answer.deleted:
            await self._give_cookies(answer)
        return answer.text

    async def _give_cookies(self, answer: Answer) -> None:
        """The cookies a read's answer set (or deleted), into the browser too: its next screen
        needs them (a portal renewing its session id)."""
        context = self.pctx.context
        try:
            if answer.cookies:
                await context.add_cookies(answer.cookies)  # type: ignore[arg-type]
            for name, domain, path in answer.deleted:
                await context.clear_cookies(name=name, domain=domain, path=path)
            self.shared.http_cookies = await context.cookies()  # what the browser holds now: changes
            # made by the browser itself are told apart from these (see _browser_cookies_changed)
        except Exception as exc:  # noqa: BLE001 - the browser refused one: its next screen may log in again
            self.log.warning("{}: could not hand the cookies a read set to the browser: {}", self.name,
                             str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def _keep_failed(self, answer: Answer, url: str) -> None:
        """Remember the last failed answer: it is saved as evidence if the run fails."""
        self.shared.failed_response = (url, answer.status, answer.text[:500_000])

    async def count_every_request(self) -> None:
        """Make the requests the browser sends to the portal wait in :meth:`throttle` too:
        navigations and the pages' own script calls (``PACED_TYPES``), which portals count
        against their limit. Static files pass unpaced: with a route in place the browser's cache
        is off, and pacing every stylesheet would stall pages past their timeout. Used when
        ``[run] requests_per_minute`` is set (a route costs a round trip per request)."""
        await self._route_requests()
        self.shared.routed = True

    async def _route_requests(self) -> None:
        """Route the context's requests through :meth:`throttle` (see :meth:`count_every_request`)."""
        origin = urlparse(self.settings.url)

        async def handle(route: Any) -> None:
            target = urlparse(route.request.url)
            if (target.scheme, target.netloc) == (origin.scheme, origin.netloc) and \
                    route.request.resource_type in PACED_TYPES:
                await self.throttle()
            with contextlib.suppress(Exception):  # the page closed meanwhile: nothing to send
                await route.continue_()

        await self.pctx.context.route("**/*", handle)

    async def throttle(self) -> None:
        """Wait as the portal's request budget requires: the shared pause after a 429, then
        ``[run] requests_per_minute`` when set, as an even pace (aiolimiter, one request per
        60/N seconds plus 2%): never more than N in any 60 seconds, and never a long stall
        that would time a page out. Every read goes through here, and with
        :meth:`count_every_request` every request of the browser too."""
        loop = asyncio.get_running_loop()
        while (wait := self.shared.paused_until - loop.time()) > 0:  # a new 429 may extend it
            await asyncio.sleep(wait)
        if self.shared.pace is not None:
            await self.shared.pace.acquire()

    def _pause_after_rate_limit(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        already_paused = self.shared.paused_until > now
        self.shared.paused_until = max(self.shared.paused_until, now + self.run.rate_limit_pause_seconds)
        if not already_paused:
            self.log.warning(
                "{}: the portal says too many requests; every read waits {:.0f}s "
                "(set [run] requests_per_minute to stay under its limit)", self.name, self.run.rate_limit_pause_seconds,
            )

    async def _get(self, url: str) -> Answer:
        """One GET with the session's cookies (``[portals.<name>] reads``), after the pacing.

        Raises:
            StepTimeout, PortalUnavailable: no answer.
        """
        self.shared.requests += 1
        await self.throttle()
        if self.settings.reads == "browser":
            try:
                resp = await self.pctx.context.request.get(url, timeout=self.run.timeout_seconds * 1000)
            except Exception as exc:  # playwright.Error: connection refused, timeout, closed
                raise self._network_error(exc, url) from exc
            try:
                return Answer(resp.status, resp.url, await resp.text())
            finally:
                await resp.dispose()
        try:
            client = await self._http()
        except Exception as exc:  # playwright.Error: the browser or the page closed
            raise self._network_error(exc, url) from exc
        try:
            return await client.get(url)
        except httpx.TimeoutException as exc:
            raise self._network_error(exc, url, timeout=True) from exc
        except httpx.HTTPError as exc:  # refused, reset, unknown host, untrusted, too many redirects
            raise self._network_error(exc, url) from exc

    async def _http(self) -> CookieClient:
        """The plain-HTTP client, holding the browser's cookies as they are now (copied again
        after a login, a renewed context or a move of the browser; see :mod:`dealerbot.web.http_reads`)."""
        sh = self.shared
        if sh.http is None:
            from dealerbot.web.http_reads import CookieClient

            agent = await self.page.evaluate("navigator.userAgent")
            language = await self.page.evaluate("navigator.languages.join(',')")
            if sh.http is None:  # the first reads of several pages start together: one client for all
                sh.http = CookieClient(connections=self.run.concurrency + 1, timeout_seconds=self.run.timeout_seconds,
                                       user_agent=agent, accept_language=language)
        mark = (sh.generation, id(self.pctx.context), sh.moves)  # before the copy: a move meanwhile copies again
        now = asyncio.get_running_loop().time()
        if sh.http_synced != mark or now - sh.http_synced_at >= COOKIE_RECHECK_SECONDS:
            self._load_cookies(await self.pctx.context.cookies())
            sh.http_synced, sh.http_synced_at = mark, now
        return sh.http

    def _load_cookies(self, cookies: list[dict[str, Any]]) -> None:
        """Give the client the browser's ``cookies`` (and remember them as what it holds)."""
        assert self.shared.http is not None
        self.shared.http_cookies = cookies
        skipped = self.shared.http.load(cookies)
        if skipped and not self.shared.warned_cookies:
            self.shared.warned_cookies = True
            self.log.warning(
                "{}: the browser holds cookies plain HTTP cannot send ({}): reads go without them; if reads "
                "fail, set reads = \"browser\" in [{}]", self.name, ", ".join(skipped), self.name,
            )

    async def _browser_cookies_changed(self) -> bool:
        """After a read found the session ended: whether the browser holds other cookies than the
        client was given (a screen renewed the login meanwhile). Copies them over if so."""
        sh = self.shared
        if sh.http is None:
            return False
        try:
            cookies = await self.pctx.context.cookies()
        except Exception:  # noqa: BLE001 - the browser is gone: logging in again will say so
            return False
        if cookies == sh.http_cookies:
            return False
        self._load_cookies(cookies)
        return True

    async def close_reads(self) -> None:
        """Close the plain-HTTP client of this login (its pages share it); reads open it again."""
        if self.shared.http is not None:
            client, self.shared.http, self.shared.http_synced = self.shared.http, None, None
            await client.aclose()

    def _network_error(self, exc: Exception, url: str, timeout: bool = False) -> SystemFailure:
        if getattr(self.pctx, "crashed", False):  # not the portal: the browser is gone (no retry can help)
            return BrowserCrashed()
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:  # only plain-HTTP reads check certificates themselves
            return PortalUnavailable(
                f"{self.selectors.title}的证书不受本机信任：请把门户的证书颁发机构加入系统证书，或在 dealerbot.toml 的 "
                f"[{self.name}] 中设置 reads = \"browser\" ({self.name}: its certificate is not trusted by this "
                f"system: {text})"
            )
        if timeout or "Timeout" in text or "timed out" in text:
            return StepTimeout(f"{self.name}: {urlparse(url).path} did not answer within {self.run.timeout_seconds:.0f}s")
        if any(k in text for k in ("ERR_CONNECTION_REFUSED", "ECONNREFUSED", "Connection refused", "connection attempts failed", "ERR_NAME_NOT_RESOLVED", "ENOTFOUND", "ERR_ADDRESS_UNREACHABLE")):
            return PortalUnavailable(
                f"无法连接{self.selectors.title}（{self.settings.url}）：请检查 dealerbot.toml 中的 [{self.name}] url，"
                f"以及门户是否在线 (cannot reach {self.settings.url}: {text.split(' at ')[0]})"
            )
        return PortalUnavailable(f"{self.name}: {urlparse(url).path} failed: {text}")

    def check(self, status: int, final_url: str, url: str, expect_login: bool = False, body: str | None = None) -> None:
        """Turn an HTTP answer into the error tree (see the module docstring); pass when fine.
        ``body``: the answer's text when its status is 503 (to recognise a maintenance notice).

        Raises:
            SessionExpired, RateLimited, PortalMaintenance, PortalUnavailable, PageChanged: by status.
        """
        if self.is_expired(final_url, body):
            if expect_login:
                return  # the caller logs in
            raise SessionExpired(f"{self.name}: session expired (GET {urlparse(url).path} -> {urlparse(final_url).path})")
        if status == 401 or (not expect_login and self.is_login_url(final_url)):
            raise SessionExpired(f"{self.name}: session expired (GET {urlparse(url).path} -> login)")
        if status == 429:
            self._pause_after_rate_limit()
            raise RateLimited(f"{self.name}: rate limited (HTTP 429) on {urlparse(url).path}")
        if status == 503:
            notice = maintenance_notice(body or "")
            if notice is not None:
                text, until = notice
                raise PortalMaintenance(
                    f"{self.selectors.title}维护中{f'，推迟到 {until} 后' if until else ''}：{text} "
                    f"({self.name}: in maintenance (HTTP 503){f' until {until}' if until else ''})",
                    notice=text, until=until,
                )
            raise PortalUnavailable(f"{self.name}: unavailable (HTTP 503)")
        if status >= 500:
            raise PortalUnavailable(f"{self.name}: server error HTTP {status} on {urlparse(url).path}")
        if status == 404:
            raise PageChanged(f"{self.name}: not found (HTTP 404): {urlparse(url).path}")
        if status >= 400:
            raise PageChanged(f"{self.name}: HTTP {status} on {urlparse(url).path}")

    async def relogin(self, seen_generation: int | None = None) -> None:
        """Log in again after the session expired (once, however many reads noticed it).

        Raises:
            SessionExpired: the run already re-logged in ``MAX_RELOGINS`` times.
            LoginRejected: the portal refused the password.
        """
        async with self.shared.relogin_lock:
            if self.shared.login_refused is not None:
                raise self.shared.login_refused  # never type a refused password twice
            if seen_generation is not None and seen_generation != self.shared.generation:
                return  # another read already logged in again
            if self.login is None:
                raise SessionExpired(f"{self.name}: session expired and no login routine is set")
            if self.shared.relogins >= MAX_RELOGINS:
                raise SessionExpired(f"{self.name}: session keeps expiring ({self.shared.relogins} re-logins this run)")
            self.log.warning("{}: session expired, logging in again ({}/{})", self.name, self.shared.relogins + 1, MAX_RELOGINS)
            try:
                await self.login()
            except LoginRejected as exc:
                self.shared.login_refused = exc
                raise
            except PlaywrightTimeout as exc:
                raise StepTimeout(f"{self.name}: logging in again timed out") from exc
            # Counted once it worked: an attempt the portal broke (a 500) is retried, not a
            # sign that the session keeps expiring.
            self.shared.relogins += 1
            self.counts["relogins"] = self.counts.get("relogins", 0) + 1
            self.shared.generation += 1

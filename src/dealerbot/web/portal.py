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
  timeouts -> :class:`StepTimeout`: retried with exponential backoff (:func:`~dealerbot.retries.with_retries`);
* 503 with the portal's maintenance notice -> :class:`PortalMaintenance` (not retried: the run
  ends postponed until the announced end of the window);
* 404 -> :class:`PageChanged` (not retried);
* ``[run] max_consecutive_failures`` retryable failures in a row, whatever reads they hit ->
  :class:`CircuitOpen` (the portal is down: stop rather than retry every remaining read).

:class:`PortalSession` is made of parts: navigation, steps, re-login and browser-context
renewal here; reads in :mod:`dealerbot.web.portal_reads`; pacing in :mod:`dealerbot.web.pacing`;
the retry helper in :mod:`dealerbot.retries`; the maintenance notice in
:mod:`dealerbot.web.maintenance`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urljoin, urlparse

from aiolimiter import AsyncLimiter
from loguru import logger

from dealerbot.errors import (
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
from dealerbot.retries import with_retries
from dealerbot.web.html_reader import HtmlReader
from dealerbot.web.locators import SelectorFile
from dealerbot.web.maintenance import maintenance_notice
from dealerbot.web.pacing import PACE_MARGIN, Gate, Pace, SessionPacing
from dealerbot.web.page_locators import Locators
from dealerbot.web.playwright_errors import PlaywrightTimeout
from dealerbot.web.portal_reads import SessionReads

if TYPE_CHECKING:
    from loguru import Logger
    from playwright.async_api import Cookie, Frame, Page

    from dealerbot.config import PortalSettings, RunSettings
    from dealerbot.web.browser import PortalContext
    from dealerbot.web.http_reads import CookieClient

T = TypeVar("T")
MAX_RELOGINS = 3
MEMORY_CHECK_SECONDS = 2.0  # between two looks at the memory ([browser] recycle_memory_mb)


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
    pace: Pace | None = None  # [run] requests_per_minute
    paused_until: float = 0.0
    failures_in_row: int = 0  # system failures since the last read that worked (circuit breaker)
    routed: bool = False  # the browser's own requests pass through throttle() (see count_every_request)
    failed_response: tuple[str, int, str] | None = None  # the last failed answer (url, status, body)
    logged_in: bool = False  # a password was typed this run (else the saved login was used)
    sessions: list[PortalSession] = field(default_factory=list)  # one per page of the login
    gate: Gate = field(default_factory=Gate)
    requests: int = 0  # sent to the portal by dealerbot's reads and navigations
    recycle_requests: int = 0  # renew the browser context after this many requests (0: never)
    recycle_memory_mb: int = 0  # ... or above this much memory (0: no limit)
    recycled_at: int = 0  # ``requests`` at the last renewal
    memory_checked_at: float = 0.0  # event-loop time of the last look at the memory
    recycling: bool = False
    http: CookieClient | None = None  # reads over plain HTTP with the browser's cookies (reads = "http")
    http_cookies: list[Cookie] = field(default_factory=list)  # what was copied into it last
    http_synced: tuple[int, int, int] | None = None  # (generation, context, moves) at that copy
    http_synced_at: float = 0.0  # event-loop time of that copy
    moves: int = 0  # screens the browser went to and actions on them: each may have changed its cookies
    warned_cookies: bool = False  # said once that some cookies cannot go over plain HTTP
    # A person's help with the login (set by the run's context; None: unattended, nobody to ask):
    # (need, prompt, image) -> the answer; the run's masker knows it before it is returned.
    ask_person: Callable[[str, str, bytes | None], Awaitable[str]] | None = None
    # Keeps a new password the portal made the person choose (where `credentials set` keeps it).
    keep_password: Callable[[str], None] | None = None


class PortalSession(SessionReads, SessionPacing):
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
        log: Logger = logger,
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

        def moved(frame: Frame) -> None:
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
                        await s.step("open the screen again", partial(s.goto, url))
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

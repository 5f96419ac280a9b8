"""A portal session's reads: its JSON endpoints and pages fetched with the logged-in browser's cookies
(over plain HTTP, :mod:`dealerbot.web.http_reads`, or through the browser), each classified into
:mod:`dealerbot.errors` (see :mod:`dealerbot.web.portal`)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from dealerbot.errors import BrowserCrashed, PageChanged, PortalUnavailable, SessionExpired, StepTimeout, SystemFailure
from dealerbot.retries import with_retries
from dealerbot.web.http_reads import Answer

if TYPE_CHECKING:
    from loguru import Logger
    from lxml.html import HtmlElement
    from playwright.async_api import Cookie, Page

    from dealerbot.config import PortalSettings, RunSettings
    from dealerbot.web.browser import PortalContext
    from dealerbot.web.http_reads import CookieClient
    from dealerbot.web.locators import SelectorFile
    from dealerbot.web.portal import _Shared


# Reads copy the browser's cookies again after this long even when it did nothing dealerbot saw
# (a page's own script may set one).
COOKIE_RECHECK_SECONDS = 1.0
T = TypeVar("T")


class SessionReads:
    """The reads part of :class:`~dealerbot.web.portal.PortalSession`."""

    if TYPE_CHECKING:  # what this part uses of the whole session (set in PortalSession.__init__)
        name: str
        settings: PortalSettings
        pctx: PortalContext
        page: Page
        selectors: SelectorFile
        run: RunSettings
        log: Logger
        counts: dict[str, int]
        shared: _Shared

        def url(self, path_or_endpoint: str, params: dict[str, Any] | None = None, /, **fmt: Any) -> str: ...
        def check(self, status: int, final_url: str, url: str, expect_login: bool = False,
                  body: str | None = None) -> None: ...
        async def relogin(self, seen_generation: int | None = None) -> None: ...
        async def throttle(self) -> None: ...
        async def _maybe_recycle(self) -> None: ...
        async def _guarded(self, fn: Callable[[], Awaitable[T]]) -> T: ...

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
    ) -> HtmlElement:
        """GET a page with the browser's cookies and parse it (lxml element; see :meth:`fetch`).

        Raises:
            SystemFailure: see the module docstring.
        """
        from lxml import html as lxml_html  # not at import: `dealerbot bots` need not load it

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
                await context.add_cookies(answer.cookies)
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
        import httpx  # loaded with the client (dealerbot.web.http_reads): not before a read needs it

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
                                       user_agent=agent, accept_language=language,
                                       proxy=getattr(self.pctx, "proxy", None))
        mark = (sh.generation, id(self.pctx.context), sh.moves)  # before the copy: a move meanwhile copies again
        now = asyncio.get_running_loop().time()
        if sh.http_synced != mark or now - sh.http_synced_at >= COOKIE_RECHECK_SECONDS:
            self._load_cookies(await self.pctx.context.cookies())
            sh.http_synced, sh.http_synced_at = mark, now
        return sh.http


    def _load_cookies(self, cookies: list[Cookie]) -> None:
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


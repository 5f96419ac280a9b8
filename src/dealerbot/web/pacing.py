"""Pacing a portal's requests: the configured rate (``[run] requests_per_minute``) for dealerbot's reads
and the browser's own requests, a pause after a rate limit, and the gate that holds reads while the
browser context is renewed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

if TYPE_CHECKING:
    from loguru import Logger
    from playwright.async_api import Route

    from dealerbot.config import PortalSettings, RunSettings
    from dealerbot.web.browser import PortalContext
    from dealerbot.web.portal import _Shared

PACED_TYPES = frozenset({"document", "xhr", "fetch", "eventsource", "websocket"})
PACE_MARGIN = 1.02  # N requests take 2% more than a minute: clock jitter never makes it N+1


class Pace(Protocol):
    """What a portal's requests wait on before going out: an ``aiolimiter.AsyncLimiter`` in one
    process, or a group's budget shared by every worker
    (:class:`~dealerbot.group.budget.SharedPace`, handed in by the runner)."""

    async def acquire(self) -> None: ...


class Gate:
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
    async def use(self) -> AsyncIterator[None]:
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
    async def exclusive(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._open.clear()
        try:
            await self._drained.wait()
            yield
        finally:
            self._open.set()


class SessionPacing:
    """The pacing part of :class:`~dealerbot.web.portal.PortalSession`."""

    if TYPE_CHECKING:  # what this part uses of the whole session (set in PortalSession.__init__)
        name: str
        settings: PortalSettings
        pctx: PortalContext
        run: RunSettings
        log: Logger
        shared: _Shared

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

        async def handle(route: Route) -> None:
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


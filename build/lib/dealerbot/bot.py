"""What a bot is, and the context the runner hands it.

A bot is the operator's checklist in code: it opens portals, calls page objects and hands each
scraped record to :meth:`BotContext.emit`, which runs the entity's pipeline and streams the
result (accepted, repaired, flagged or rejected with a reason) into the run store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from dealerbot.browser import Browser, Evidence
from dealerbot.config import Settings
from dealerbot.credentials import PasswordSource
from dealerbot.errors import RecordRejected
from dealerbot.locators import SelectorFile, build_locator, load_portal_selectors
from dealerbot.pipeline import Pipeline, issue_dict, pipeline_for
from dealerbot.portal import PortalSession
from dealerbot.records import Entity, Item
from dealerbot.store import RecordWriter

class PortalApp(Protocol):
    """A portal's top-level page object (see :mod:`dealerbot.pages`)."""

    async def open(self) -> None: ...

    async def login(self) -> None: ...


COUNT_KEYS = ("pages", "read", "accepted", "repaired", "flagged", "rejected", "retries", "relogins")


class Bot(ABC):
    """Base class of bots. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    portal: ClassVar[str]
    entity: ClassVar[Entity]
    description: ClassVar[str]
    incremental: ClassVar[bool] = False

    @abstractmethod
    async def run(self, ctx: BotContext) -> None:
        """Do the work. Raise a :class:`~dealerbot.errors.SystemFailure` when a portal breaks."""


@dataclass
class BotContext:
    """Everything a bot may use during one run."""

    run_id: str
    bot: Bot
    settings: Settings
    browser: Browser
    writer: RecordWriter
    evidence: Evidence
    passwords: PasswordSource
    log: Any
    full: bool = False
    since: datetime | None = None
    selectors_dir: Path | None = None
    on_progress: Callable[[dict[str, int]], None] | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    newest_change: datetime | None = None
    _pipelines: dict[str, Pipeline] = field(default_factory=dict)

    # -- portals ----------------------------------------------------------------------------
    def selectors(self, portal: str) -> SelectorFile:
        """The portal's validated selector file."""
        return load_portal_selectors(portal, self.selectors_dir)

    def state_file(self, portal: str) -> Path:
        """Where the portal's login is kept between runs (git-ignored, mode 0600)."""
        username = getattr(self.settings, portal).username or "default"
        return self.settings.path("state") / f"{portal}-{username}.json"

    @asynccontextmanager
    async def portal(self, portal: str, app: Callable[[PortalSession, Callable[[], str]], PortalApp]) -> AsyncIterator[PortalSession]:
        """Open ``portal`` in a fresh browser context, logged in, on its landing page.

        ``app(session, password)`` builds the portal's top-level page object; its ``open()``
        logs in when the saved login no longer works, and its ``login()`` is used again when
        the session expires mid-run. Failure evidence is saved when the block raises.

        Raises:
            LoginRejected: the portal refused the password (never retried).
            CredentialsMissing: no password is configured.
            SystemFailure: the portal could not be opened.
        """
        selectors = self.selectors(portal)
        settings = getattr(self.settings, portal)

        def mask(page: Any) -> list[Any]:
            return [
                build_locator(page, c)
                for name in selectors.evidence_mask
                for c in selectors.spec(name).candidates
                if not c.fields()
            ]

        async with self.browser.context(
            portal, self.evidence, self.state_file(portal), mask,
            timeout_ms=self.settings.run.timeout_seconds * 1000,
        ) as pctx:
            page = await pctx.new_page()
            session = PortalSession(
                portal, settings, pctx, page, selectors, self.settings.run, self.log, self.counts
            )
            top = app(session, lambda: self.password(portal))
            session.login = top.login
            await session.step(f"open {selectors.title}", top.open)
            yield session

    def password(self, portal: str) -> str:
        """The portal's password (environment, keyring or the runner's overrides).

        Raises:
            CredentialsMissing: there is none.
        """
        return self.passwords(portal, getattr(self.settings, portal).username)

    # -- records --------------------------------------------------------------------------
    def emit(self, entity: Entity, data: dict[str, Any], source: str = "") -> bool:
        """Process one scraped record and queue it for the store.

        Returns True when accepted (possibly repaired or flagged), False when rejected.
        """
        pipeline = self._pipelines.get(entity.name)
        if pipeline is None:
            pipeline = self._pipelines[entity.name] = pipeline_for(entity)
        raw = dict(data)
        item = Item(entity, dict(data), source=source)
        self.counts["read"] += 1
        try:
            item = pipeline.process(item)
        except RecordRejected as rej:
            self.counts["rejected"] += 1
            self.writer.reject(entity, item.key, rej.code, rej.field, rej.reason, raw, [issue_dict(i) for i in item.issues])
            self.log.info("rejected {} {}: {}", entity.name, item.key or "(no key)", rej.reason)
            self._track_change(entity, item.data)
            self.progress()
            return False
        severities = {i.severity for i in item.issues}
        if "flag" in severities:
            self.counts["flagged"] += 1
        elif "repaired" in severities:
            self.counts["repaired"] += 1
        self.counts["accepted"] += 1
        self.writer.add(entity, item.data, [issue_dict(i) for i in item.issues])
        self._track_change(entity, item.data)
        self.progress()
        return True

    def _track_change(self, entity: Entity, data: dict[str, Any]) -> None:
        if entity.change_field is None:
            return
        value = data.get(entity.change_field)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace(" ", "T"))
            except ValueError:
                return
        if isinstance(value, datetime) and (self.newest_change is None or value > self.newest_change):
            self.newest_change = value

    def page_done(self) -> None:
        """Count a list page read."""
        self.counts["pages"] += 1
        self.progress()

    def progress(self) -> None:
        """Tell the progress display (if any) the current counts."""
        if self.on_progress is not None:
            self.on_progress(self.counts)


async def scrape_pages(ctx: BotContext, screen: Any, entity: Entity) -> None:
    """Read every page of a paged list screen (``screen.fetch(page) -> (rows, has_next)``)
    and emit each row as an ``entity`` record.

    Raises:
        SystemFailure: a page could not be read after the retries.
    """
    page = 1
    limit = ctx.settings.run.page_limit
    while True:
        rows, has_next = await screen.fetch(page)
        ctx.page_done()
        for row in rows:
            ctx.emit(entity, row, source=f"page {page}")
        if not has_next or (limit and page >= limit):
            return
        page += 1

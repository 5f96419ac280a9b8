"""What a bot is: :class:`Bot`, and the ready-made :class:`ListBot` and :class:`TableBot`.

A bot is the operator's checklist in code: it opens portals, calls page objects and hands each
scraped record to :meth:`~dealerbot.running.context.BotContext.emit`, which runs the entity's
pipeline and streams the result (accepted, repaired, flagged or rejected with a reason) into the
run store. The context the runner hands a bot: :mod:`dealerbot.running.context`; many reads at
once: :mod:`dealerbot.running.fan_out`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Protocol

from dealerbot.data.records import Entity
from dealerbot.pages.common import HeaderTable
from dealerbot.running.context import PortalApp
from dealerbot.web.portal import PortalSession

if TYPE_CHECKING:
    from dealerbot.running.context import BotContext


class ListScreen(Protocol):
    """A paged list screen's page object (:class:`dealerbot.pages.common.HeaderTable` or alike)."""

    async def open(self) -> None: ...

    async def fetch(self, page: int) -> tuple[list[dict[str, str]], bool]: ...


class Bot(ABC):
    """Base class of bots. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    portal: ClassVar[str]  # the portal whose account the bot runs for (one run per account at a time)
    also_uses: ClassVar[tuple[str, ...]] = ()  # further portals it opens in the same run
    entity: ClassVar[Entity | None] = None  # the records it reads (None: a bot that writes)
    entities: ClassVar[tuple[Entity, ...]] = ()  # further record types it emits
    description: ClassVar[str]
    # What an operator calls it, short ("读取厂家订单"): the console's and the messages' name for
    # it; empty: the description is used.
    title: ClassVar[str] = ""
    incremental: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()  # run options it understands, e.g. ("dry_run",) or ("input",)
    needs_input: ClassVar[bool] = False  # True: a run without --input FILE is refused before it starts
    trace: ClassVar[bool] = True  # keep a Playwright trace of a failed run unless [browser] trace says
    uses_browser: ClassVar[bool] = True  # False: a desktop bot (no browser is started for its runs)
    # True: the bot's pages wait on a screen while it reads through the session, so that a long
    # run may go on in a fresh browser context between reads ([browser] recycle_requests,
    # recycle_memory_mb); a renewal reopens every page at its address. Bots filling forms leave it.
    recycles: ClassVar[bool] = False
    # True: the bot writes the re-key ledger's actions (start_rekey): its run holds the store's
    # ledger lock from before it lists them until it ends, so no plan changes them meanwhile.
    ledger_writer: ClassVar[bool] = False
    # The portals the bot writes into: before its first write, the canary checks the screens it
    # writes through (dealerbot.web.canary; a miss ends the run "portal_changed", nothing written):
    # the names passed as ``require`` to ``ctx.portal``, else every non-optional name that a
    # screen of the portal's selector file holds (the login screen left out).
    writes_to: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    async def run(self, ctx: BotContext) -> None:
        """Do the work. Raise a :class:`~dealerbot.errors.SystemFailure` when a portal breaks."""


def bot_entities(cls: type[Bot]) -> tuple[Entity, ...]:
    """Every record type a bot emits (``entity`` first)."""
    return ((cls.entity,) if cls.entity is not None else ()) + tuple(e for e in cls.entities if e is not cls.entity)


def bot_portals(cls: type[Bot]) -> tuple[str, ...]:
    """Every portal a bot opens (``portal`` first)."""
    return (cls.portal, *(p for p in cls.also_uses if p != cls.portal))


class ListBot(Bot):
    """A bot that reads every page of one server-rendered list screen.

    Subclasses set ``app`` (the portal's top-level page object) and ``screen`` (a factory of
    the list's page object, whose ``fetch(page)`` returns ``(rows, has_next)``).
    """

    app: ClassVar[Callable[..., PortalApp]]
    screen: ClassVar[Callable[[PortalSession], ListScreen]]
    entity: ClassVar[Entity]
    recycles = True

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal(self.portal, type(self).app) as s:
            screen = type(self).screen(s)
            await s.step("open the list", screen.open)
            await scrape_pages(ctx, screen, self.entity)


class TableBot(Bot):
    """A bot that reads every page of a list declared under ``tables:`` in its portal's selector
    file (columns by header text, the next-page link followed) and emits each row as ``entity``:
    a bot in five lines of settings (``name``, ``portal``, ``entity``, ``table``, ``description``)."""

    table: ClassVar[str]
    entity: ClassVar[Entity]
    recycles = True

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal(self.portal) as s:
            async for rows in HeaderTable(s, self.table).rows(page_limit=ctx.settings.run.page_limit):
                ctx.page_done()
                for row in rows:
                    ctx.emit(self.entity, row, source=f"{self.table} page {ctx.counts['pages']}")
                ctx.check_stop()


async def scrape_pages(ctx: BotContext, screen: ListScreen, entity: Entity) -> None:
    """Read every page of a paged list screen (``screen.fetch(page) -> (rows, has_next)``)
    and emit each row as an ``entity`` record.

    Raises:
        SystemFailure: a page could not be read after the retries.
    """
    page = 1
    limit = ctx.settings.run.page_limit
    while True:
        ctx.check_stop()
        rows, has_next = await screen.fetch(page)
        total = getattr(screen, "total", None)  # the list's total where its screen states it
        if page == 1 and total is not None:
            ctx.counts.setdefault("expected", total)
        ctx.page_done()
        for row in rows:
            ctx.emit(entity, row, source=f"page {page}")
        if not has_next or (limit and page >= limit):
            return
        page += 1

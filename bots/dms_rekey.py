"""dms-rekey: types the approved actions of the ledger into the DMS, exactly once, read back.

New contracts (with their customer when the DMS has none yet), status and field updates, and
(when enabled) cancellations, through the DMS's own screens as a clerk would: the customer
pop-up, the model dropdown, the 确认保存? dialog. ``--dry-run`` goes through every screen but
the final save. Run ``dealerbot reconcile`` (or ``dealerbot sync``) first to plan the actions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from dealerbot.api import Bot, BotContext, run_rekey
from portals.dms import WRITE_SELECTORS, DmsApp, WebDms


class DmsRekeyBot(Bot):
    """Writes approved OEM orders and status changes into the DMS."""

    name = "dms-rekey"
    portal = "dms"
    title = "写入DMS"
    description = "把已批准的操作录入DMS（新建合同及客户、更新状态），逐条回读核对"
    options = ("dry_run",)
    ledger_writer = True  # planning waits while it writes (the store's ledger lock)
    writes_to = ("dms",)  # the canary checks the DMS's contract and customer forms before writing
    # A failed record keeps a screenshot and the page; a trace of every form would cost about a
    # fifth of the speed ([browser] trace = true records one anyway).
    trace = False

    async def run(self, ctx: BotContext) -> None:
        @asynccontextmanager
        async def pages(actions: int) -> AsyncIterator[list[WebDms]]:
            """One logged-in page per writer, as many as ``[rekey] concurrency`` allows."""
            count = min(ctx.settings.rekey.concurrency, actions)
            async with ctx.portal_pages("dms", DmsApp, count, WRITE_SELECTORS) as sessions:
                yield [WebDms(s, partial(ctx.page_evidence, s)) for s in sessions]

        await run_rekey(ctx, pages)

"""dms-prospects: the DMS's prospects (潜客管理) and the follow-ups its sales staff entered (跟进记录)."""

from __future__ import annotations

from dealerbot.api import DMS_FOLLOWUP, DMS_PROSPECT, Bot, BotContext, scrape_pages
from portals.dms import PROSPECT_SELECTORS, DmsApp, prospect_followups_screen, prospects_screen


class DmsProspectsBot(Bot):
    """Reads every page of the DMS's prospects, then of its follow-ups."""

    name = "dms-prospects"
    portal = "dms"
    entity = DMS_PROSPECT
    entities = (DMS_FOLLOWUP,)
    title = "读取DMS潜客"
    description = "DMS潜客及销售跟进记录"
    recycles = True

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal(self.portal, DmsApp, require=PROSPECT_SELECTORS) as s:
            prospects = prospects_screen(s)
            await s.step("open the list", prospects.open)
            await scrape_pages(ctx, prospects, DMS_PROSPECT)
            await scrape_pages(ctx, prospect_followups_screen(s), DMS_FOLLOWUP)

"""dms-deliveries: the DMS's deliveries (交车记录), each with its buyer and consent, for the
delivery reports into the OEM portal."""

from __future__ import annotations

from dealerbot.api import DMS_DELIVERY, BotContext, ListBot, scrape_pages
from portals.dms import DELIVERY_SELECTORS, DmsApp, deliveries_screen


class DmsDeliveriesBot(ListBot):
    """Reads every page of the DMS's 交车记录 list."""

    name = "dms-deliveries"
    portal = "dms"
    entity = DMS_DELIVERY
    title = "读取DMS交车记录"
    description = "DMS交车记录（含购车人及信息授权）"
    app = DmsApp
    screen = deliveries_screen

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal(self.portal, DmsApp, require=DELIVERY_SELECTORS) as s:
            screen = deliveries_screen(s)
            await s.step("open the list", screen.open)
            await scrape_pages(ctx, screen, self.entity)

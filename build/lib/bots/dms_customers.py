"""dms-customers: the DMS's customers, for matching OEM customers later."""

from __future__ import annotations

from dealerbot.bot import Bot, BotContext, scrape_pages
from dealerbot.pages.dms import DmsApp, customers_screen
from dealerbot.records import DMS_CUSTOMER


class DmsCustomersBot(Bot):
    """Reads every page of the DMS customer list."""

    name = "dms-customers"
    portal = "dms"
    entity = DMS_CUSTOMER
    description = "DMS客户档案"

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("dms", DmsApp) as s:
            screen = customers_screen(s)
            await s.step("open the list", screen.open)
            await scrape_pages(ctx, screen, DMS_CUSTOMER)

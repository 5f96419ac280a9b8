"""oem-customers: the OEM portal's customers with their data-sharing consent."""

from __future__ import annotations

from dealerbot.bot import Bot, BotContext, scrape_pages
from dealerbot.pages.oem import CustomersPage, OemPortal
from dealerbot.records import OEM_CUSTOMER


class OemCustomersBot(Bot):
    """Reads every page of the OEM portal's customer list (consent included)."""

    name = "oem-customers"
    portal = "oem"
    entity = OEM_CUSTOMER
    description = "厂家门户客户及数据共享授权"

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("oem", OemPortal) as s:
            screen = CustomersPage(s)
            await s.step("open the list", screen.open)
            await scrape_pages(ctx, screen, OEM_CUSTOMER)

"""dms-contracts: the DMS's sales contracts (销售合同), for matching OEM orders later."""

from __future__ import annotations

from dealerbot.bot import Bot, BotContext, scrape_pages
from dealerbot.pages.dms import DmsApp, contracts_screen
from dealerbot.records import DMS_CONTRACT


class DmsContractsBot(Bot):
    """Reads every page of the DMS sales-contract list."""

    name = "dms-contracts"
    portal = "dms"
    entity = DMS_CONTRACT
    description = "DMS销售合同"

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("dms", DmsApp) as s:
            screen = contracts_screen(s)
            await s.step("open the list", screen.open)
            await scrape_pages(ctx, screen, DMS_CONTRACT)

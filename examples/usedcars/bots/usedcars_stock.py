"""usedcars-stock: every car on the trade-in platform, into the store and the review workbook."""

from __future__ import annotations

from portals.usedcars import USED_CAR, CarsList

from dealerbot.api import Bot, BotContext


class UsedCarsStock(Bot):
    name = "usedcars-stock"
    portal = "usedcars"
    entity = USED_CAR
    description = "二手车置换平台：全部置换车辆"

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("usedcars") as s:
            async for rows in CarsList(s).pages():
                ctx.page_done()
                for row in rows:
                    ctx.emit(USED_CAR, row, source="cars")

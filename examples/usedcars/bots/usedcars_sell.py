"""usedcars-sell: records the sales of an input file (`--input sales.csv`: vin, sale_price,
buyer_name, buyer_mobile, sold_on) on the trade-in platform, exactly once each: each car is found
by its VIN, a car already sold is not typed again, a refused sale is listed with the platform's
reason, every saved one is read back from the car's sale page (``ctx.write_once``)."""

from dealerbot.api import Bot, BotContext
from portals.usedcars import CAR_SALE, SaleForm


class UsedCarsSell(Bot):
    name = "usedcars-sell"
    portal = "usedcars"
    entity = CAR_SALE
    description = "二手车置换平台：按输入文件登记车辆售出（已售出的跳过）"
    options = ("input",)
    needs_input = True

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("usedcars") as s:
            form = SaleForm(s)
            for sale in ctx.input_rows():
                await ctx.write_once(CAR_SALE, sale, find=form.find, create=form.sell)

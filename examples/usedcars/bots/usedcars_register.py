"""usedcars-register: registers the cars of an input file (`--input cars.xlsx`) on the trade-in
platform, exactly once each: a car already there is not typed again, a refused one is listed with
the platform's reason, every saved one is read back (``ctx.write_once``).

usedcars-sell: records the sales of an input file (`--input sales.csv`: vin, sale_price,
buyer_name, buyer_mobile, sold_on) the same way: each car found by its VIN, a car already sold
not typed again, every saved sale read back from the car's sale page."""

from dealerbot.api import Bot, BotContext, HeaderTable
from portals.usedcars import CAR_SALE, USED_CAR, CarForm, SaleForm


class UsedCarsRegister(Bot):
    name = "usedcars-register"
    portal = "usedcars"
    writes_to = ("usedcars",)  # the canary: the registration form's selectors checked before the first write
    entity = USED_CAR
    description = "二手车置换平台：按输入文件登记车辆（已登记的跳过）"
    options = ("input",)  # columns: vin, brand, model, reg_date, mileage_km, price, owner_name, owner_mobile
    needs_input = True    # (and license_photo: a file path, optional)

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("usedcars") as s:
            find = HeaderTable(s, "cars").finder("vin", search="q")  # the list's search, by VIN
            form = CarForm(s)
            for car in ctx.input_rows():
                await ctx.write_once(USED_CAR, car, find=find, create=form.register)


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

"""usedcars-register: registers the cars of an input file (`--input cars.xlsx`) on the trade-in
platform, exactly once each: a car already there is not typed again, a refused one is listed with
the platform's reason, every saved one is read back (``ctx.write_once``)."""

from dealerbot.api import Bot, BotContext, HeaderTable
from portals.usedcars import USED_CAR, CarForm


class UsedCarsRegister(Bot):
    name = "usedcars-register"
    portal = "usedcars"
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

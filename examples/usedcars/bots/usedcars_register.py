"""usedcars-register: registers the cars of an input file (`--input cars.xlsx`) on the trade-in
platform, once each: a car already there is not registered again, a refused one is listed with
the platform's reason, every saved one is read back."""

from __future__ import annotations

from portals.usedcars import USED_CAR, CarForm, CarsList

from dealerbot.api import Bot, BotContext


class UsedCarsRegister(Bot):
    name = "usedcars-register"
    portal = "usedcars"
    entity = USED_CAR
    description = "二手车置换平台：按输入文件登记车辆（已登记的跳过）"
    options = ("input",)

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("usedcars") as s:
            cars, form = CarsList(s), CarForm(s)
            for car in ctx.input_rows():
                ctx.check_stop()
                ctx.personal(car.get("owner_name"), car.get("owner_mobile"))
                vin = car.get("vin", "").strip().upper()
                with ctx.rejecting(USED_CAR, car):  # e.g. a brand the dropdown lacks: listed, the run goes on
                    if await cars.find(vin):  # search before create: a re-run never registers twice
                        ctx.note(f"{vin} 已登记，跳过")
                        continue
                    outcome = await form.register({**car, "vin": vin})
                    if outcome.result != "saved":  # refused, or no clear answer: never submitted again
                        ctx.reject(USED_CAR, car, f"submit_{outcome.result}", outcome.message or "平台未确认保存")
                        continue
                    found = await cars.find(vin)  # read back what the platform now holds
                    if not found:
                        ctx.reject(USED_CAR, car, "not_found_after_save", "保存后在平台上查不到该车")
                        continue
                    ctx.emit(USED_CAR, found[0], source=outcome.url)

"""Page objects of the used-car trade-in platform (二手车置换平台), on dealerbot's public API.

Logging in needs no code: the default :class:`~dealerbot.api.PortalApp` types the configured
username and the password into ``login.username`` / ``login.password``.
"""

from dealerbot.api import Entity, FieldDef, Form, SubmitOutcome

USED_CAR = Entity(
    name="used_car", title="置换车辆", key="vin",
    fields=(
        FieldDef("vin", "车架号", width=20, check="vin"),
        FieldDef("brand", "品牌", required=True),
        FieldDef("model", "车型", required=True),
        FieldDef("reg_date", "上牌日期", "date"),
        FieldDef("mileage_km", "表显里程", "int"),
        FieldDef("price", "评估价", "decimal"),
        FieldDef("owner_name", "车主", personal=True, check="name"),
        FieldDef("owner_mobile", "手机", personal=True, check="mobile"),
        FieldDef("status", "状态"),
    ),
)
FORM_FIELDS = ("vin", "model", "reg_date", "mileage_km", "price", "owner_name", "owner_mobile")


class CarForm(Form):
    """登记置换车辆: labels not linked to inputs, brand picked by its text, a native confirm()."""

    async def register(self, car: dict[str, str]) -> SubmitOutcome:
        await self.s.goto("car_new")
        await self.fill({f"car.{f}": car[f] for f in FORM_FIELDS})
        await self.choose("car.brand", text=car["brand"])
        if car.get("license_photo"):  # optional: a photo of the 行驶证, by its path
            await self.upload("car.license_photo", car["license_photo"])
        return await self.submit("car.save", errors="car.errors", dialog="accept")

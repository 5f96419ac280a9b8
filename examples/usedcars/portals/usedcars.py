"""Page objects of the used-car trade-in platform (二手车置换平台), on dealerbot's public API.

Logging in needs no code: the default :class:`~dealerbot.api.PortalApp` types the configured
username and the password into ``login.username`` / ``login.password``.
"""

from __future__ import annotations

from pathlib import Path

from dealerbot.api import Entity, FieldDef, Form, HeaderTable, PortalSession, SubmitOutcome

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


class CarsList:
    """车辆列表: every page, read by column header; the CSV export."""

    def __init__(self, s: PortalSession) -> None:
        self.s, self.table, self.form = s, HeaderTable(s, "cars"), Form(s)

    def pages(self, vin: str = ""):  # noqa: ANN201 - an async iterator of row lists
        return self.table.rows({"q": vin} if vin else None)

    async def find(self, vin: str) -> list[dict[str, str]]:
        return [row async for rows in self.pages(vin) for row in rows if row["vin"] == vin]

    async def export(self, folder: Path) -> Path:
        await self.s.goto("cars_page")
        return await self.form.download("cars.export", folder, "cars.csv")


class CarForm:
    """登记置换车辆: labels not linked to inputs, brand picked by its text, a native confirm()."""

    def __init__(self, s: PortalSession) -> None:
        self.s, self.form = s, Form(s)

    async def register(self, car: dict[str, str]) -> SubmitOutcome:
        await self.s.goto("car_new")
        await self.form.fill({f"car.{f}": car[f] for f in FORM_FIELDS})
        await self.form.choose("car.brand", text=car["brand"])
        if car.get("license_photo"):  # optional: a photo of the 行驶证, by its path
            await self.form.upload("car.license_photo", Path(car["license_photo"]))
        return await self.form.submit("car.save", errors="car.errors", dialog="accept", toast="car.saved")

    async def status(self) -> str:
        return await self.form.read_text("car.status")  # inside the badge's shadow root

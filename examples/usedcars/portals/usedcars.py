"""Page objects of the used-car trade-in platform (二手车置换平台), on dealerbot's public API.

Logging in needs no code: the default :class:`~dealerbot.api.PortalApp` types the configured
username and the password into ``login.username`` / ``login.password``.
"""

from dealerbot.api import Entity, FieldDef, Form, RecordRejected, SubmitOutcome

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

    async def register(self, car: dict[str, str], dry_run: bool = False) -> SubmitOutcome:
        """Fill the registration form and save it once (``dry_run``: fill only, never save)."""
        await self.s.goto("car_new")
        await self.fill({f"car.{f}": car[f] for f in FORM_FIELDS})
        await self.choose("car.brand", text=car["brand"])
        if car.get("license_photo"):  # optional: a photo of the 行驶证, by its path
            await self.upload("car.license_photo", car["license_photo"])
        if dry_run:
            return SubmitOutcome("unknown", detail="dry run: not saved")
        return await self.submit("car.save", errors="car.errors", dialog="accept")


CAR_SALE = Entity(name="car_sale", title="车辆售出", key="vin", fields=(
    FieldDef("vin", "车架号", width=20, check="vin"), FieldDef("sale_price", "成交价", "decimal", required=True),
    FieldDef("buyer_name", "买方", personal=True, check="name", required=True), FieldDef("sold_on", "成交日期", "date", required=True),
    FieldDef("buyer_mobile", "买方手机", personal=True, check="mobile", required=True)))
SALE_FIELDS = CAR_SALE.field_names[1:]  # what the sale form asks


class SaleForm(Form):
    """售出登记: a car found on the list by its VIN (over HTTP), its sale form opened, filled by
    label (one round-trip) and submitted once; a sale is read back from the car's sale page."""

    async def find(self, vin: str) -> dict[str, str] | None:
        """The sale the platform holds for ``vin`` (None: not sold yet); notes the car's id.

        Raises:
            RecordRejected: no car with that VIN on the list.
        """
        root = await self.s.fetch_html("cars_page", {"q": vin})
        links = [a.get("href", "") for a in self.s.html.find_all(root, "cars.link") if a.text_content().strip() == vin]
        if not links:
            raise RecordRejected("car_missing", f"平台上没有车架号为 {vin} 的车辆", "vin")
        self.car_id = links[0].strip("/").split("/")[-1]  # its page is /cars/{id}/
        sale = await self.s.fetch_html("car_sell", car_id=self.car_id)
        held = {f: self.s.html.text(sale, "sale.field", required=False, field=f) for f in SALE_FIELDS}
        return {"vin": vin, **held} if held["sold_on"] else None

    async def sell(self, sale: dict[str, str]) -> SubmitOutcome:
        """Open the sale form of the car :meth:`find` found (``write_once`` finds just before),
        fill it and submit it once."""
        await self.s.goto("car_sell", car_id=self.car_id)
        await self.fill({f"sale.{f}": sale[f] for f in SALE_FIELDS})
        return await self.submit("sale.save", errors="sale.errors")

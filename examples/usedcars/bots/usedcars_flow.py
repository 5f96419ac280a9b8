"""A flow of the dealership's own: its trade-in evaluations (置换评估) registered on the car maker's
used-car platform, through the ledger like the shipped orders re-key (plan -> approve -> write
exactly once -> read back), run by `dealerbot sync` when `[flows] enabled` lists it.

trade-ins: reads the evaluations the dealership keeps in ``trade_ins.csv`` (in the project folder)
into the store. The platform's stock is read by usedcars-stock. usedcars-flow-write writes the
approved registrations (`dealerbot review` / the console approve them).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from dealerbot.api import (
    Action,
    Bot,
    BotContext,
    Entity,
    FieldDef,
    Flow,
    HeaderTable,
    PlannedAction,
    RecordRejected,
    SubmitOutcome,
    run_ledger_writer,
)
from portals.usedcars import FORM_FIELDS, USED_CAR, CarForm

TRADE_IN = Entity(
    name="trade_in", title="置换评估", key="vin",
    fields=(
        FieldDef("vin", "车架号", width=20, check="vin"),
        FieldDef("brand", "品牌", required=True),
        FieldDef("model", "车型", required=True),
        FieldDef("reg_date", "上牌日期", "date"),
        FieldDef("mileage_km", "表显里程", "int"),
        FieldDef("price", "评估价", "decimal"),
        FieldDef("owner_name", "车主", personal=True, check="name"),
        FieldDef("owner_mobile", "手机", personal=True, check="mobile"),
    ),
)
REGISTER = "register_car"


def _price(value: Any) -> str:
    """A price as the platform shows it (two decimals, no thousands separator)."""
    try:
        return f"{Decimal(str(value).replace(',', '')):.2f}"
    except (InvalidOperation, ValueError):
        raise RecordRejected("bad_price", f"评估价「{value}」不是数字", "price") from None


def plan_registration(record: dict[str, Any], on_platform: dict[str, Any] | None, _dictionary: Any) -> PlannedAction | None:
    """A trade-in not on the platform yet becomes one registration (pure: the text to type).

    Raises:
        RecordRejected: it cannot be registered (no brand, a price that is not a number).
    """
    if on_platform is not None:
        return None  # registered already (by us, or by a person)
    if not record.get("brand"):
        raise RecordRejected("no_brand", "没有品牌，无法登记", "brand")
    values = {f: "" if record.get(f) is None else str(record[f]) for f in ("vin", "brand", *FORM_FIELDS[1:])}
    values["price"] = _price(record.get("price"))
    return USEDCARS.action(REGISTER, str(record["vin"]), values, note="登记到二手车平台")


USEDCARS = Flow(
    name="usedcars",
    title="置换车辆登记",
    read_bots=("trade-ins", "usedcars-stock"),
    source=TRADE_IN,
    target=USED_CAR,
    writer_bot="usedcars-flow-write",
    kinds={REGISTER: "登记车辆"},
    approval_required=frozenset({REGISTER}),
    plan=plan_registration,
    description="置换评估 → 二手车置换平台的车辆登记",
)


class TradeIns(Bot):
    name = "trade-ins"
    portal = "usedcars"
    entity = TRADE_IN
    description = "读取本店的置换评估（项目文件夹中的 trade_ins.csv）"

    async def run(self, ctx: BotContext) -> None:
        path = ctx.settings.home / "trade_ins.csv"
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                ctx.emit(TRADE_IN, {f: row.get(f, "") for f in TRADE_IN.field_names})


class PlatformTarget:
    """The platform as the ledger writer sees it: find a car by VIN, register one."""

    def __init__(self, session: Any) -> None:
        self.table = HeaderTable(session, "cars")
        self.form = CarForm(session)

    async def find(self, action: Action) -> dict[str, str] | None:
        row = await self.table.find("vin", action.natural_key, {"q": action.natural_key})
        if row is None:
            return None
        return {**row, "mileage_km": row.get("mileage_km", "").replace(",", ""), "price": _price(row.get("price", "0"))}

    async def submit(self, action: Action, dry_run: bool) -> SubmitOutcome:
        return await self.form.register(action.new_values, dry_run=dry_run)


class UsedCarsFlowWrite(Bot):
    name = "usedcars-flow-write"
    portal = "usedcars"
    title = "登记到二手车平台"
    description = "把已批准的置换车辆登记到二手车平台，逐条回读核对（流程 usedcars）"
    options = ("dry_run",)
    ledger_writer = True  # planning waits while it writes
    writes_to = ("usedcars",)

    async def run(self, ctx: BotContext) -> None:
        @asynccontextmanager
        async def targets(_count: int) -> AsyncIterator[list[PlatformTarget]]:
            async with ctx.portal("usedcars") as s:
                yield [PlatformTarget(s)]

        await run_ledger_writer(ctx, USEDCARS.name, targets)

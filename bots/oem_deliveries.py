"""The delivery-report flow (交车上报): each delivery the DMS records is reported into the OEM
portal's 交车上报 screen once, on time, checked against its 上报记录.

deliveries (flow): reads ``dms-deliveries`` (the DMS's 交车记录) and ``oem-reports`` (the OEM's
上报记录), pairs them by VIN and plans each delivery (:func:`plan_report`, pure):

* not reported yet -> ``report`` (上报交车), written without a person by default;
* reported with the same data -> nothing (``in_sync``);
* reported with another invoice number, amount or date -> ``report_conflict`` (与厂家记录不符), a
  conflict for a person: the portal has no correction screen, so it is never written;
* consent (信息授权): a buyer who did not consent is reported without the personal fields the
  OEM does not require (ID number and mobile left out: field minimisation); a new-energy car
  needs the buyer's ID number whatever the consent (subsidy audit), so its report is held for a
  person (``report_id_required``, always approved by a person);
* no VIN, no delivery date, no invoice number or amount, a consenting buyer without an ID
  number: rejected with the reason, listed in the review workbook.

Deadline: a delivery must be reported within :data:`REPORT_DAYS` days (the OEM accepts a later
one and flags it 逾期上报). oem-report-deliveries writes the deliveries still on time first,
closest to their deadline first, then the late ones (:func:`write_order`, by the portal's
business date read from the 交车上报 screen, never the wall clock); each late report is noted in
the run's summary. The sync's message lists what waits, closest to its deadline first
(:func:`deadline_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from dealerbot.api import (
    DMS_DELIVERY,
    OEM_REPORT,
    OPEN_STATES,
    Action,
    Bot,
    BotContext,
    Flow,
    PlannedAction,
    RecordRejected,
    read_table,
    start_ledger_writer,
    write_actions,
)
from portals.oem import (
    BUSINESS_DATE_MARK,
    REPORT_WRITE_SELECTORS,
    REPORTS_SELECTORS,
    OemPortal,
    ReportForm,
    ReportsPage,
    WriteOutcome,
)
from portals.oem import REPORT_FIELDS as OEM_REPORT_FIELDS

REPORT = "report"
REPORT_ID_REQUIRED = "report_id_required"
REPORT_CONFLICT = "report_conflict"
REPORT_DAYS = 7  # the OEM's deadline: days after the delivery
CONSENTED, NOT_CONSENTED = "已授权", "未授权"
# What a report holds, compared field by field with the OEM's 上报记录 on read-back.
REPORT_FIELDS = ("vin", "delivery_date", "invoice_no", "invoice_amount", "consent", "buyer_id_number", "buyer_mobile")
DMS_KEYS = ("delivery_no", "contract_no")
COMPARED = ("delivery_date", "invoice_no", "invoice_amount")  # a report already there that differs here: a conflict


def consented(value: Any) -> bool:
    """Whether the DMS's 客户信息授权 says the buyer consented (``True``/``已授权``/``是``)."""
    if isinstance(value, bool):
        return value
    return str(value or "").strip() in (CONSENTED, "是", "true", "True", "1", "Y", "y")


def new_energy(model_code: Any) -> bool:
    """A new-energy model (the OEM requires the buyer's ID number for its subsidy audit): the
    model code starts with ``EV`` (the DMS's ``DMS-EV…`` as the OEM's ``EV…``)."""
    code = str(model_code or "").strip().upper()
    return code.removeprefix("DMS-").startswith("EV")


def amount_text(value: Any, field: str = "invoice_amount") -> str:
    """An amount as typed and compared (two decimals, no separators).

    Raises:
        RecordRejected: not a number.
    """
    raw = str(value if value is not None else "").replace(",", "").replace("，", "").strip()
    try:
        amount = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise RecordRejected("bad_invoice_amount", f"发票金额「{value}」不是金额", field) from None
    if not amount.is_finite() or amount <= 0:
        raise RecordRejected("bad_invoice_amount", f"发票金额「{value}」不是有效金额", field)
    return f"{amount:.2f}"


def date_text(value: Any, field: str) -> str:
    """A date as YYYY-MM-DD ("" when there is none).

    Raises:
        RecordRejected: not a date.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, date):
        return value.isoformat()[:10]
    text = str(value).strip()[:10]
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise RecordRejected("bad_date", f"日期「{value}」格式不正确", field) from None


def deadline_of(delivery_date: str) -> str:
    """The OEM's reporting deadline of a delivery (``REPORT_DAYS`` days after it)."""
    return (date.fromisoformat(delivery_date) + timedelta(days=REPORT_DAYS)).isoformat()


def report_values(record: dict[str, Any]) -> dict[str, str]:
    """What is typed into 交车上报 for one DMS delivery (pure): a buyer who did not consent
    gives no ID number or mobile, except the ID number of a new-energy car (held for a person).

    Raises:
        RecordRejected: no VIN, no delivery date, no invoice number or amount, a consenting
            buyer (or a new-energy car) without an ID number.
    """
    vin = str(record.get("vin") or "").strip().upper()
    if not vin:
        raise RecordRejected("no_vin", "交车记录没有VIN，无法上报", "vin")
    delivered = date_text(record.get("delivery_date"), "delivery_date")
    if not delivered:
        raise RecordRejected("no_delivery_date", "交车记录没有交车日期", "delivery_date")
    invoice = str(record.get("invoice_no") or "").strip()
    if not invoice:
        raise RecordRejected("no_invoice_no", "交车记录没有发票号码（开票后再上报）", "invoice_no")
    if record.get("invoice_amount") in (None, ""):
        raise RecordRejected("no_invoice_amount", "交车记录没有发票金额", "invoice_amount")
    agreed = consented(record.get("consent"))
    ev = new_energy(record.get("model_code"))
    id_number = str(record.get("buyer_id_number") or "").strip().upper()
    if (agreed or ev) and not id_number:
        raise RecordRejected("no_id_number", "新能源车型须填写购车人证件号码，DMS中没有" if ev
                             else "客户已授权，但DMS中没有购车人证件号码", "buyer_id_number")
    return {
        # the DMS's own numbers (the review workbook's row is a whole delivery; never typed)
        "delivery_no": str(record.get("delivery_no") or ""), "contract_no": str(record.get("contract_no") or ""),
        "vin": vin, "delivery_date": delivered, "invoice_no": invoice,
        "invoice_amount": amount_text(record.get("invoice_amount")),
        "consent": CONSENTED if agreed else NOT_CONSENTED,
        "buyer_id_number": id_number if (agreed or ev) else "",  # field minimisation
        "buyer_mobile": str(record.get("buyer_mobile") or "").strip() if agreed else "",
    }


def plan_report(record: dict[str, Any], reported: dict[str, Any] | None, _dictionary: Any) -> PlannedAction | None:
    """One DMS delivery against the OEM's report of its VIN (pure; see the module docstring).

    Raises:
        RecordRejected: as :func:`report_values`.
    """
    values = report_values(record)
    deadline = deadline_of(values["delivery_date"])
    if reported is not None:
        theirs = {"delivery_date": date_text(reported.get("delivery_date"), "delivery_date"),
                  "invoice_no": str(reported.get("invoice_no") or "").strip(),
                  "invoice_amount": amount_text(reported.get("invoice_amount"))}
        differ = {f: theirs[f] for f in COMPARED if theirs[f] != values[f]}
        if not differ:
            return None  # reported (by us or by a person)
        return DELIVERIES.action(
            REPORT_CONFLICT, str(record.get("delivery_no") or values["vin"]), {f: values[f] for f in differ}, differ,
            target_key=str(reported.get("report_no") or ""), conflict=True,
            note=f"厂家已有该车的上报（{reported.get('report_no') or ''}），与DMS不同；门户不能修改上报，请联系厂家更正")
    kind, note = REPORT, f"上报截止 {deadline}"
    if not consented(record.get("consent")) and new_energy(record.get("model_code")):
        kind = REPORT_ID_REQUIRED
        note = f"客户未授权，但新能源车型须上报购车人证件号码，请人工确认；上报截止 {deadline}"
    return DELIVERIES.action(kind, str(record.get("delivery_no") or values["vin"]), values, note=note)


@dataclass(frozen=True)
class Due:
    """One delivery waiting to be reported, by its deadline."""

    key: str
    vin: str
    deadline: str
    late: bool


def due(values: dict[str, str], key: str, today: date) -> Due:
    """When ``values`` (a report's) must be reported by, and whether it is late on ``today``."""
    deadline = deadline_of(values["delivery_date"])
    return Due(key, values.get("vin", ""), deadline, date.fromisoformat(deadline) < today)


def write_order(actions: Sequence[tuple[Action, bool]], today: date | None) -> list[tuple[Action, bool]]:
    """The order to write in (pure): resumed writes first, then the deliveries still on time,
    closest to their deadline first, then the late ones (oldest first). Without the portal's
    date: by deadline."""
    def rank(item: tuple[Action, bool]) -> tuple[int, int, str, int]:
        action, resumed = item
        try:
            d = due(action.new_values, action.natural_key, today or date.min)
        except (KeyError, ValueError):
            return (0 if resumed else 1, 2, "", action.id)
        return (0 if resumed else 1, 1 if d.late and today else 0, d.deadline, action.id)

    return sorted(actions, key=rank)


def deadline_lines(open_values: Iterable[tuple[str, dict[str, str]]], today: date | None, limit: int = 10) -> list[str]:
    """The message's list of what waits (pure): late ones first, then the closest deadlines."""
    items: list[Due] = []
    for key, values in open_values:
        try:
            items.append(due(values, key, today or date.min))
        except (KeyError, ValueError):
            continue
    if today is None:
        items = [Due(d.key, d.vin, d.deadline, False) for d in items]
    items.sort(key=lambda d: (not d.late, d.deadline, d.key))
    lines = [f"{d.key}（VIN {d.vin}）{'已逾期，' if d.late else ''}截止 {d.deadline}" for d in items[:limit]]
    if len(items) > limit:
        lines.append(f"……另有 {len(items) - limit} 条")
    return lines


def portal_date(report_dates: Iterable[Any]) -> date | None:
    """The portal's latest business date the store knows: the newest 上报日期 it stamped on a
    report (the portal stamps its own date, never the wall clock); None without one."""
    days = []
    for value in report_dates:
        try:
            days.append(date.fromisoformat(date_text(value, "reported_on")))
        except (RecordRejected, ValueError):
            continue
    return max(days) if days else None


def waiting_deliveries(store: Any) -> list[str]:
    """The message's lines after a sync: each delivery not reported yet (waiting for a person,
    failed, or not written), the late ones first, then by deadline; late by the portal's business
    date as last read (else its newest 上报日期 the store holds)."""
    mark = store.watermark(BUSINESS_DATE_MARK)  # read by oem-reports / this flow's writer from the portal
    try:
        today: date | None = date.fromisoformat(mark) if mark else None
    except ValueError:
        today = None
    if today is None:
        today = portal_date(r.get("reported_on") for r in store.iter_records(OEM_REPORT))
    open_ = [(a.natural_key, a.new_values) for a in store.actions(OPEN_STATES, flow=DELIVERIES.name)
             if a.kind in (REPORT, REPORT_ID_REQUIRED)]
    return deadline_lines(open_, today)


DELIVERIES = Flow(
    name="deliveries",
    title="交车上报",
    read_bots=("dms-deliveries", "oem-reports"),
    source=DMS_DELIVERY,
    target=OEM_REPORT,
    match="vin",
    writer_bot="oem-report-deliveries",
    kinds={REPORT: "上报交车", REPORT_ID_REQUIRED: "未授权新能源车上报（须证件号）", REPORT_CONFLICT: "与厂家记录不符"},
    approval_required=frozenset({REPORT_ID_REQUIRED, REPORT_CONFLICT}),
    enabled_kinds=frozenset({REPORT, REPORT_ID_REQUIRED}),
    plan=plan_report,
    description="DMS交车记录 → 厂家门户交车上报（逐条回读上报记录核对）",
    waiting=waiting_deliveries,
)


@dataclass(frozen=True)
class Answer:
    """A 交车上报 answer as the ledger writer reads it (``saved``/``refused``/``unknown``)."""

    result: str
    message: str = ""
    key: str = ""


class ReportTarget:
    """The OEM portal as the ledger writer sees it: the 上报记录 of a VIN, one 交车上报."""

    def __init__(self, ctx: BotContext, session: Any) -> None:
        self.ctx = ctx
        self.s = session
        self.reports = ReportsPage(session)
        self.form = ReportForm(session)
        self.shown: dict[str, str] | None = None  # the report 上报记录 showed right after a save

    async def business_date(self) -> date | None:
        """The portal's business date (当前业务日期 on the 交车上报 screen), None if not shown;
        remembered in the store for the sync's message."""
        today = await self.form.business_date()
        if today is None:
            self.ctx.log.warning("the 交车上报 screen shows no business date: writing by deadline")
        else:
            self.ctx.store.set_watermark(BUSINESS_DATE_MARK, today.isoformat(), self.ctx.run_id)
        return today

    async def find(self, action: Action) -> dict[str, str] | None:
        vin = (action.new_values.get("vin") or action.natural_key).strip().upper()
        shown, self.shown = self.shown, None
        if shown is not None and shown.get("vin", "").strip().upper() == vin:
            rows = [shown]  # the read-back: the list the portal answered the save with (one request fewer)
        else:
            rows = await self.reports.find(vin)
        if not rows:
            return None
        row = dict(rows[0])
        for own in DMS_KEYS:  # not the portal's: the DMS's numbers the report was planned from
            row[own] = action.new_values.get(own, "")
        try:
            row["invoice_amount"] = amount_text(row.get("invoice_amount", ""))
        except RecordRejected:
            pass
        return row

    async def _shown_after_save(self, action: Action) -> dict[str, str] | None:
        """The report of the action's VIN on the 上报记录 page the portal redirected the save to
        (the list filtered by the new report's number, rendered from what it stored), or None."""
        from lxml import html as lxml_html

        try:
            root = lxml_html.fromstring(await self.s.page.content())
            rows = read_table(self.s, root, "reports.row", "reports.cell", OEM_REPORT_FIELDS)
        except Exception as exc:  # noqa: BLE001 - the read-back then searches the list as usual
            self.ctx.log.debug("the list after the save could not be read ({}): searching it", exc)
            return None
        vin = action.new_values.get("vin", "").strip().upper()
        return next((r for r in rows if r.get("vin", "").strip().upper() == vin), None)

    async def submit(self, action: Action, dry_run: bool) -> Answer:
        if action.kind not in (REPORT, REPORT_ID_REQUIRED):
            raise RecordRejected("not_writable", "与厂家记录不符：门户不能修改上报，请联系厂家更正")
        out: WriteOutcome = await self.form.report_delivery(dict(action.new_values), dry_run=dry_run)
        if out.result == "accepted":
            self.shown = await self._shown_after_save(action)
            if out.late:
                self.ctx.note(f"逾期上报：{action.natural_key}（VIN {action.new_values.get('vin', '')}，"
                              f"截止 {deadline_of(action.new_values['delivery_date'])}）厂家已受理并标记逾期")
                self.ctx.counts["late"] = self.ctx.counts.get("late", 0) + 1
                self.ctx.store.audit_write(  # the 逾期 flag in the audit trail (`dealerbot audit`)
                    self.ctx.run_id, self.ctx.bot.name, "late", OEM_REPORT.name, action.natural_key,
                    {"vin": action.new_values.get("vin", ""), "report_no": out.number,
                     "deadline": deadline_of(action.new_values["delivery_date"])},
                    note="逾期上报：厂家已受理并标记逾期")
            return Answer("saved", out.message, out.number)
        if out.result == "rehearsed":
            return Answer("saved", "rehearsed")
        return Answer(out.result, out.message)


class OemReportDeliveries(Bot):
    name = "oem-report-deliveries"
    portal = "oem"
    title = "交车上报到厂家门户"
    description = "把已批准的交车记录上报到厂家门户（交车上报），逐条回读上报记录核对（流程 deliveries）"
    options = ("dry_run",)
    ledger_writer = True  # planning waits while it writes
    writes_to = ("oem",)
    trace = False  # a form-heavy writer: tracing costs about a fifth of its speed ([browser] trace turns it on)

    async def run(self, ctx: BotContext) -> None:
        writer, todo = start_ledger_writer(ctx, DELIVERIES.name)
        if not todo:
            return
        pages = max(1, min(ctx.settings.rekey.concurrency, len(todo)))  # pages of one login, one request budget
        async with ctx.portal_pages("oem", OemPortal, pages, (*REPORTS_SELECTORS, *REPORT_WRITE_SELECTORS,
                                                              "report_form.business_date")) as sessions:
            targets = [ReportTarget(ctx, s) for s in sessions]
            today = await sessions[0].step("read the business date", targets[0].business_date)
            todo = write_order(todo, today)
            await write_actions(ctx.store, writer, targets, todo, ctx.settings.run.retries,
                                ctx.settings.run.backoff_seconds, ctx.log, check_stop=ctx.check_stop,
                                requeue_rounds=ctx.settings.run.requeue_rounds)

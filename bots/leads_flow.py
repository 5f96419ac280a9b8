"""The leads flows (issue #24): the car maker's leads into the DMS, the DMS's follow-ups back.

``leads`` (厂家线索建潜客, OEM -> DMS): each lead the OEM portal pushed to this dealer (read by
oem-leads) that has no DMS prospect yet (none carries its lead no: read by dms-prospects) becomes
one DMS prospect (新建潜客), written by leads-write. The person is matched to the DMS's existing
customers (read by dms-customers) **by mobile first**: one customer with that mobile -> the
prospect takes the DMS's name for them, and the action says which customer it matched; several
customers with that mobile -> a conflict that waits for a person (who picks the name); none -> a
new person, as the OEM gave them.

Consent: a lead whose person did not agree to their data reaching the dealer's systems
(信息授权 未授权) is a **listed reject**, never an action waiting for approval: there is nothing a
person may decide in the review that would make copying it lawful, and an action in 待处理 would
invite exactly that (its name and mobile typed into the DMS by one click of 同意). The reject
names the reason; once the OEM shows the consent, the next sync plans the prospect.

``followups`` (DMS跟进登记厂家回访, DMS -> OEM): each DMS follow-up (跟进记录) of a prospect that came
from an OEM lead is logged once into that lead's 回访登记 on the OEM portal, written by
followups-write. The OEM does NOT refuse a second identical follow-up, so exactly-once rests on
the ledger writer's search before every attempt: the lead's page (:meth:`LeadPage.read`) is read
and a follow-up with the same date, result, next step and note counts as this one (two DMS
follow-ups of one lead alike in all four would be logged once). The DMS's result words are mapped
to the OEM's fixed 回访结果 list through the data dictionary's ``followup_results`` table; a word
missing there is a listed reject (never guessed). The lead's deadline (回访截止) is in the action's
note; the OEM accepts a follow-up logged late and flags it 超时.

Leads past their deadline with no follow-up anywhere (the OEM portal's own 已超时, which it
decides by its business date, not the wall clock; and no DMS follow-up of them) are listed for a
person by :func:`overdue_leads`, the ``leads`` flow's ``attention``: a 需人工 sheet in the review
workbook and a line in the message after each sync (lead no and deadline, no personal data).

Both flows' actions wait for approval by default (``[flows.leads] approval_required = []``
lets new prospects through unreviewed); both are off until ``[flows] enabled`` names them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dealerbot.api import (
    DMS_CUSTOMER,
    DMS_FOLLOWUP,
    DMS_PROSPECT,
    OEM_FOLLOWUP,
    OEM_LEAD,
    Action,
    Bot,
    BotContext,
    Flow,
    PlannedAction,
    RecordRejected,
    Submitted,
    run_ledger_writer,
)
from portals.dms import PROSPECT_SELECTORS, PROSPECT_WRITE_SELECTORS, DmsApp, ProspectForm
from portals.oem import FOLLOWUP_WRITE_SELECTORS, LEADS_SELECTORS, FollowupForm, LeadPage, OemPortal

CREATE_PROSPECT = "create_prospect"
LOG_FOLLOWUP = "log_followup"
PROSPECT_SOURCE = "厂家线索"  # the DMS's 客户来源 for a prospect made from an OEM lead
OVERDUE = "已超时"  # the OEM's status of a lead past its deadline without a follow-up
FOLLOWUP_VALUES = ("followed_on", "result", "next_step", "note")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _consented(value: Any) -> bool:
    return value is True or _text(value) in ("已授权", "True", "true", "1")


# -- leads: OEM lead -> DMS prospect ----------------------------------------------------------


def lead_targets(store: Any) -> dict[str, dict[str, Any]]:
    """For each lead no: ``prospect`` (the DMS prospect carrying it, or None), ``customers`` (the
    DMS customers with the lead's mobile) and ``followed`` (whether the DMS has a follow-up of it)."""
    prospects = {_text(p.get("oem_lead_no")).upper(): p for p in store.iter_records(DMS_PROSPECT) if p.get("oem_lead_no")}
    by_mobile: dict[str, list[dict[str, Any]]] = {}
    for c in store.iter_records(DMS_CUSTOMER):
        if _text(c.get("mobile")):
            by_mobile.setdefault(_text(c.get("mobile")), []).append(c)
    followed = {_text(f.get("oem_lead_no")).upper() for f in store.iter_records(DMS_FOLLOWUP)}
    return {
        _text(lead["lead_no"]): {
            "prospect": prospects.get(_text(lead["lead_no"]).upper()),
            "customers": by_mobile.get(_text(lead.get("mobile")), []),
            "followed": _text(lead["lead_no"]).upper() in followed,
        }
        for lead in store.iter_records(OEM_LEAD)
    }


def plan_prospect(lead: dict[str, Any], target: dict[str, Any] | None, dictionary: Any) -> PlannedAction | None:
    """A lead with no DMS prospect becomes one 新建潜客 (pure: the text to type).

    Raises:
        RecordRejected: no consent (``no_consent``) or a model the dictionary does not map
            (``unmapped_model``).
    """
    target = target or {}
    lead_no = _text(lead.get("lead_no"))
    if target.get("prospect") is not None:
        return None  # (past its deadline with no follow-up: listed by overdue_leads, not a reject)
    if not _consented(lead.get("consent")):
        raise RecordRejected("no_consent", "客户未授权信息共享（信息授权：未授权），不把姓名、手机号复制到DMS；"
                                           "厂家门户显示已授权后，下次同步会自动建潜客", "consent")
    model = _text(lead.get("model_code"))
    dms_model = dictionary.lookup("models", model) if dictionary is not None else None
    if not dms_model:
        raise RecordRejected("unmapped_model", f"未映射的车型代码 {model}（请在 dictionary.yaml 的 models 中添加）", "model_code")
    values = {"name": _text(lead.get("name")), "mobile": _text(lead.get("mobile")), "model_code": dms_model,
              "source": PROSPECT_SOURCE, "oem_lead_no": lead_no}
    customers = {_text(c.get("customer_no")): c for c in target.get("customers") or ()}
    deadline = _text(lead.get("followup_deadline"))
    if len(customers) > 1:
        return LEADS.action(CREATE_PROSPECT, lead_no, values, conflict=True,
                            note=f"手机号对应多个DMS客户（{'、'.join(sorted(customers))}）：请确认是哪一位（可修改姓名）后审核；回访截止 {deadline}")
    if len(customers) == 1:
        [(number, customer)] = customers.items()
        values["name"] = _text(customer.get("name")) or values["name"]
        return LEADS.action(CREATE_PROSPECT, lead_no, values,
                            note=f"按手机号匹配到DMS现有客户 {number}（姓名按DMS客户档案）；回访截止 {deadline}")
    return LEADS.action(CREATE_PROSPECT, lead_no, values, note=f"新客户（DMS中没有此手机号）；回访截止 {deadline}")


LEADS = Flow(
    name="leads",
    title="厂家线索建潜客",
    read_bots=("oem-leads", "dms-prospects", "dms-customers"),
    source=OEM_LEAD,
    target=DMS_PROSPECT,
    targets=lead_targets,
    writer_bot="leads-write",
    kinds={CREATE_PROSPECT: "新建潜客"},
    approval_required=frozenset({CREATE_PROSPECT}),
    plan=plan_prospect,
    attention=lambda store: overdue_leads(store),
    description="厂家门户的线索 → DMS潜客（按手机号匹配现有客户；未授权的不复制）",
)


def overdue_leads(store: Any) -> list[tuple[str, str]]:
    """The leads past their deadline with no follow-up anywhere (the OEM's 已超时, by its business
    date, and no DMS follow-up of them): what a person must call now, as (lead no, why)."""
    targets = lead_targets(store)
    out = []
    for lead in store.iter_records(OEM_LEAD):
        lead_no = _text(lead["lead_no"])
        if _text(lead.get("status")) != OVERDUE or targets.get(lead_no, {}).get("followed"):
            continue
        where = "DMS潜客已建" if targets.get(lead_no, {}).get("prospect") is not None else "DMS中尚无潜客"
        out.append((lead_no, f"回访已超时（截止 {_text(lead.get('followup_deadline'))}），厂家门户和DMS都没有回访记录（{where}）："
                             f"请尽快电话回访，并在DMS录入跟进"))
    return out


class ProspectTarget:
    """The DMS as the ledger writer sees it: find a prospect by its OEM lead no, create one."""

    def __init__(self, session: Any) -> None:
        self.form = ProspectForm(session)

    async def find(self, action: Action) -> dict[str, str] | None:
        rows = await self.form.find_prospect(action.natural_key)
        return rows[0] if rows else None

    async def submit(self, action: Action, dry_run: bool) -> Submitted:
        return await self.form.create_prospect(action.new_values, dry_run=dry_run)


class LeadsWrite(Bot):
    name = "leads-write"
    portal = "dms"
    title = "线索建潜客"
    description = "把已批准的厂家线索在DMS建为潜客，逐条回读核对（流程 leads）"
    options = ("dry_run",)
    ledger_writer = True  # planning waits while it writes
    writes_to = ("dms",)
    trace = False  # as dms-rekey: a failed record keeps a screenshot and the page

    async def run(self, ctx: BotContext) -> None:
        @asynccontextmanager
        async def targets(actions: int) -> AsyncIterator[list[ProspectTarget]]:
            count = min(ctx.settings.rekey.concurrency, actions)  # pages of one login, as dms-rekey's
            async with ctx.portal_pages("dms", DmsApp, count, (*PROSPECT_SELECTORS, *PROSPECT_WRITE_SELECTORS)) as sessions:
                yield [ProspectTarget(s) for s in sessions]

        await run_ledger_writer(ctx, LEADS.name, targets)


# -- followups: DMS follow-up -> OEM 回访登记 ------------------------------------------------------


def followup_targets(store: Any) -> dict[str, dict[str, Any]]:
    """For each DMS follow-up no: ``lead_no`` (its OEM lead, by the follow-up's own lead no or its
    prospect's), ``lead`` (that OEM lead as read, or None) and ``logged`` (the OEM's 回访记录 of it)."""
    leads = {_text(lead["lead_no"]).upper(): lead for lead in store.iter_records(OEM_LEAD)}
    logged: dict[str, list[dict[str, Any]]] = {}
    for f in store.iter_records(OEM_FOLLOWUP):
        logged.setdefault(_text(f.get("lead_no")).upper(), []).append(f)
    lead_of = {_text(p["prospect_no"]): _text(p.get("oem_lead_no")).upper() for p in store.iter_records(DMS_PROSPECT)}
    out: dict[str, dict[str, Any]] = {}
    for f in store.iter_records(DMS_FOLLOWUP):
        lead_no = _text(f.get("oem_lead_no")).upper() or lead_of.get(_text(f.get("prospect_no")), "")
        out[_text(f["followup_no"])] = {"lead_no": lead_no, "lead": leads.get(lead_no), "logged": logged.get(lead_no, [])}
    return out


def same_followup(planned: dict[str, str], found: dict[str, Any]) -> bool:
    """Whether the OEM's follow-up ``found`` is the one ``planned`` (date, result, next step, note)."""
    return all(_text(found.get(k)) == _text(planned.get(k)) for k in FOLLOWUP_VALUES)


def plan_followup(followup: dict[str, Any], target: dict[str, Any] | None, dictionary: Any) -> PlannedAction | None:
    """A DMS follow-up of a prospect from an OEM lead, not on the OEM's lead yet, becomes one
    回访登记 (pure). A follow-up of a prospect the dealership found itself (no lead) is not the OEM's.

    Raises:
        RecordRejected: a result word the dictionary does not map (``unmapped_result``), or a
            lead the OEM portal does not show (``lead_unknown``).
    """
    target = target or {}
    lead_no = _text(target.get("lead_no") or followup.get("oem_lead_no"))
    if not lead_no:
        return None
    lead = target.get("lead")
    if lead is None:
        raise RecordRejected("lead_unknown", f"厂家门户的线索中没有 {lead_no}（未读取到或不属于本店），无法登记回访", "oem_lead_no")
    word = _text(followup.get("result"))
    result = (dictionary.followup_results if dictionary is not None else {}).get(word)
    if not result:
        raise RecordRejected("unmapped_result", f"未映射的跟进结果「{word}」（请在 dictionary.yaml 的 followup_results 中添加）",
                             "result")
    values = {"lead_no": _text(lead.get("lead_no")) or lead_no, "followed_on": _text(followup.get("followed_on")),
              "result": result, "next_step": _text(followup.get("next_step")), "note": _text(followup.get("note"))}
    if any(same_followup(values, f) for f in target.get("logged") or ()):
        return None
    deadline = _text(lead.get("followup_deadline"))
    late = "；已过回访截止日期，厂家会标记超时" if _text(lead.get("status")) == OVERDUE else ""
    return FOLLOWUPS.action(LOG_FOLLOWUP, _text(followup["followup_no"]), values, target_key=values["lead_no"],
                            note=f"登记到厂家线索 {values['lead_no']} 的回访（回访截止 {deadline}）{late}")


FOLLOWUPS = Flow(
    name="followups",
    title="跟进登记厂家回访",
    read_bots=("dms-prospects", "oem-leads"),
    source=DMS_FOLLOWUP,
    target=OEM_FOLLOWUP,
    targets=followup_targets,
    writer_bot="followups-write",
    kinds={LOG_FOLLOWUP: "登记回访"},
    approval_required=frozenset({LOG_FOLLOWUP}),
    plan=plan_followup,
    description="DMS的销售跟进记录 → 厂家门户线索的回访登记（每条一次；结果经数据字典映射）",
)


class FollowupTarget:
    """The OEM portal as the ledger writer sees it: a lead's 回访记录 searched for the follow-up
    (the OEM would take a second one), 回访登记 submitted once."""

    def __init__(self, session: Any) -> None:
        self.page = LeadPage(session)
        self.form = FollowupForm(session)

    async def find(self, action: Action) -> dict[str, str] | None:
        _, logged = await self.page.read(action.new_values["lead_no"])
        return next((f for f in logged if same_followup(action.new_values, f)), None)

    async def submit(self, action: Action, dry_run: bool) -> Submitted:
        out = await self.form.log_followup(action.new_values["lead_no"], action.new_values, dry_run=dry_run)
        result = {"accepted": "saved", "refused": "refused", "rehearsed": "rehearsed"}.get(out.result, "unknown")
        return Submitted(result, out.number, out.message)  # type: ignore[arg-type]


class FollowupsWrite(Bot):
    name = "followups-write"
    portal = "oem"
    title = "登记厂家回访"
    description = "把已批准的DMS跟进记录登记到厂家门户的线索回访，逐条回读核对（流程 followups）"
    options = ("dry_run",)
    ledger_writer = True  # planning waits while it writes
    writes_to = ("oem",)
    trace = False  # as dms-rekey: a failed record keeps a screenshot and the page

    async def run(self, ctx: BotContext) -> None:
        @asynccontextmanager
        async def targets(actions: int) -> AsyncIterator[list[FollowupTarget]]:
            # pages of one login: they share its re-logins and the request budget ([run]
            # requests_per_minute), so the OEM portal's rate limit is kept as the reading bots keep it
            count = min(ctx.settings.rekey.concurrency, actions)
            async with ctx.portal_pages("oem", OemPortal, count, (*LEADS_SELECTORS, *FOLLOWUP_WRITE_SELECTORS)) as sessions:
                yield [FollowupTarget(s) for s in sessions]

        await run_ledger_writer(ctx, FOLLOWUPS.name, targets)

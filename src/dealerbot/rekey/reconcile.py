"""Reconciliation: every OEM order against the DMS, and the writes that would bring them together.

Each stored OEM order gets one class::

    create     the DMS has no contract for it: plan a new contract (and customer, when needed)
    update     the contract exists and an OEM change should reach it (which fields, old -> new)
    in_sync    nothing to write
    conflict   both sides changed, or they disagree and no rule of the dictionary settles it
    rejected   it cannot be written (unmapped code, customer not consenting, bad data...)

:func:`classify` decides one order from what the store knows (pure; unit-tested). Each field
follows its dictionary rule (``sync``, ``fill_empty``, ``forward``, ``never``) and the *base*
kept per order in the store: the OEM's and the DMS's values when both last agreed, or when a
reviewer settled a difference (an edited write). A change made by staff in the DMS is never
overwritten, a change on both sides is a conflict for a person, and a difference a reviewer chose
stays until one side moves again.

:func:`reconcile` runs it over the store and writes the plan into the ledger: new actions,
actions superseded because the data changed, and actions left alone (already approved with
the same content, or being written right now).

Planning and writing never interleave for one store: :func:`reconcile` holds the store's ledger
lock (:class:`~dealerbot.store.LedgerLock`) while it plans, and waits while a re-key run holds
it (a re-key lists its actions once, at its start: a plan changed under it would drop
approvals it was about to write). Two rules keep a person's approval from being undone quietly:

* an approved creation whose new customer now exists in the DMS with the same ID number
  (created by a re-key, or keyed by staff) keeps its approval: nothing else changed, and the
  re-key searches for the customer by ID number before creating one;
* any other change that supersedes an action a person approved says so: the new action's note
  (shown in the review workbook and the console) starts with "原已审核 ..., 因计划已变化需重新审核"
  and what changed, the audit trail gets an ``approval_dropped`` row, and the report lists it
  for the message to people (:func:`dealerbot.running.notify.review_message`).

**Reverse actions** (a run rolled back: :mod:`dealerbot.rekey.rollback`) are a person's decision
about what the DMS should hold, not a plan drawn from the data, so reconciliation never
supersedes, replans or undoes one:

* while one is open (planned, approved, failed, being written), its order is left alone: no
  new action, whatever the order's class; the reason says a rollback is pending;
* once it is verified, the order's base takes, for each field, the value restored as its DMS
  side and keeps its OEM side (the OEM's value through the dictionary as it was when the run
  wrote; :meth:`~dealerbot.store.Store.record_verified`). With the same data and dictionary the
  difference is one a person settled, so the same wrong write is not planned again; a changed
  dictionary entry or OEM value (the OEM side moves) is planned as any OEM change (the entry
  corrected to the restored value: in sync), and a later staff edit in the DMS (the DMS side
  moves) is kept as any staff edit;
* skipped by the reviewer: nothing was restored, the base is the one the run's write left, and
  reconciliation goes on from there (it does not plan the reverse itself);
* an open action of the same order when the rollback is planned (planned over what the run
  wrote) is superseded by the reverse action, said as any dropped approval would be.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from dealerbot.data import validate
from dealerbot.data.dictionary import CONTRACT_FIELDS, Dictionary
from dealerbot.data.mapping import (
    CONTRACT_HEADERS,
    check_contract,
    check_customer,
    contract_values,
    customer_values,
    dms_values,
    issues_text,
)
from dealerbot.data.records import DMS_CONTRACT, DMS_CUSTOMER, OEM_CUSTOMER, OEM_ORDER
from dealerbot.errors import RecordRejected
from dealerbot.rekey.ledger import (
    KIND_TEXT,
    OPEN_STATES,
    ORDERS_FLOW,
    REAPPROVAL,
    STATE_TEXT,
    Action,
    ActionKind,
    CustomerPlan,
    PlannedAction,
    Policy,
    approved_by_person,
)
from dealerbot.store import Store, dumps

RECONCILE_CLASSES = ("create", "update", "in_sync", "conflict", "rejected")
RECONCILE_CLASS_TEXT = {"create": "待新建", "update": "待更新", "in_sync": "已同步", "conflict": "冲突", "rejected": "无法处理"}


@dataclass
class Outcome:
    """What reconciliation decided for one OEM order."""

    order_no: str
    reconcile_class: str
    reason: str = ""
    contract_no: str = ""
    action: PlannedAction | None = None
    agreed: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> {"oem", "dms"} alike now

    @property
    def changes(self) -> list[tuple[str, str, str]]:
        """(field, old, new) of the planned write."""
        if self.action is None:
            return []
        return [(f, old, new) for f, (old, new) in self.action.changes.items()]


def _norm(text: Any) -> str:
    return str(text or "").strip().upper()


class Indexes:
    """The OEM customers and the DMS side, indexed for matching orders to them."""

    def __init__(
        self, oem_customers: Iterable[dict[str, Any]], dms_customers: Iterable[dict[str, Any]],
        dms_contracts: Iterable[dict[str, Any]],
    ) -> None:
        self.oem_by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.oem_by_mobile: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in oem_customers:
            if c.get("id_number"):
                self.oem_by_id[_norm(c["id_number"])].append(c)
            if c.get("mobile"):
                self.oem_by_mobile[c["mobile"]].append(c)
        self.dms_by_mobile: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dms_by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dms_by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dms_customers: dict[str, dict[str, Any]] = {}
        for c in dms_customers:
            self.add_dms_customer(c)
        self.contract_by_order: dict[str, dict[str, Any]] = {}
        self.contracts_by_vin: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in dms_contracts:
            if c.get("oem_order_no"):
                self.contract_by_order[_norm(c["oem_order_no"])] = c
            if c.get("vin"):
                self.contracts_by_vin[_norm(c["vin"])].append(c)

    def add_dms_customer(self, c: dict[str, Any]) -> None:
        if c["customer_no"] in self.dms_customers:
            return
        self.dms_customers[c["customer_no"]] = c
        mobile = validate.normalize_mobile(c.get("mobile"))
        if mobile.issue is None or mobile.issue.severity == "repaired":
            self.dms_by_mobile[mobile.value].append(c)
        if c.get("id_number"):
            self.dms_by_id[_norm(c["id_number"])].append(c)
        if c.get("name"):
            self.dms_by_name[validate.normalize_name(c["name"]).value].append(c)

    def oem_customer_for(self, order: dict[str, Any]) -> dict[str, Any] | None:
        """The OEM customer of an order: same ID number, else same mobile and name."""
        found = self.oem_by_id.get(_norm(order.get("id_number")))
        if not found and order.get("mobile"):
            found = [c for c in self.oem_by_mobile.get(order["mobile"], []) if c.get("name") == order.get("customer_name")]
        if not found:
            return None
        # The same person entered twice (the portal has duplicates): consent must hold for all.
        return min(found, key=lambda c: (bool(c.get("consent")), c["customer_no"]))


def match_customer(order: dict[str, Any], oem_customer: dict[str, Any] | None, indexes: Indexes, dictionary: Dictionary) -> CustomerPlan:
    """The DMS customer for a new contract: by normalised mobile, then ID number, then name.

    One clear match is used; several, or a match on the name alone, are ``ambiguous`` (a person
    chooses in the review workbook: never picked here); none means a new customer.

    Raises:
        RecordRejected: a new customer would be refused by the DMS (e.g. no valid mobile).
    """
    idn = _norm(order.get("id_number"))
    mobile = validate.normalize_mobile(order.get("mobile"))
    by_mobile = indexes.dms_by_mobile.get(mobile.value, []) if mobile.issue is None or mobile.issue.severity == "repaired" else []
    numbers = lambda customers: tuple(c["customer_no"] for c in customers)  # noqa: E731
    if len(by_mobile) == 1:
        c = by_mobile[0]
        if idn and c.get("id_number") and _norm(c["id_number"]) != idn:
            return CustomerPlan("ambiguous", candidates=numbers(by_mobile), values=customer_values(order, oem_customer, dictionary))
        return CustomerPlan("existing", c["customer_no"])
    if len(by_mobile) > 1:
        same = [c for c in by_mobile if _norm(c.get("id_number")) == idn] if idn else []
        if len(same) == 1:
            return CustomerPlan("existing", same[0]["customer_no"])
        return CustomerPlan("ambiguous", candidates=numbers(by_mobile), values=customer_values(order, oem_customer, dictionary))
    by_id = indexes.dms_by_id.get(idn, []) if idn else []
    if len(by_id) == 1:
        return CustomerPlan("existing", by_id[0]["customer_no"])
    if len(by_id) > 1:
        return CustomerPlan("ambiguous", candidates=numbers(by_id), values=customer_values(order, oem_customer, dictionary))
    values = customer_values(order, oem_customer, dictionary)
    by_name = indexes.dms_by_name.get(validate.normalize_name(order.get("customer_name")).value, [])
    if by_name:
        return CustomerPlan("ambiguous", candidates=numbers(by_name), values=values)
    issues = check_customer(values)
    if issues:
        raise RecordRejected(issues[0].code, "无法在DMS新建客户：" + issues_text(issues), issues[0].field)
    return CustomerPlan("new", values=values)


def customer_note(plan: CustomerPlan) -> str:
    """Operator-facing words on how the contract gets its customer."""
    if plan.mode == "existing":
        return f"客户：{_customer_text(plan)}"
    if plan.mode == "new":
        return "客户：将在DMS新建客户档案"
    if plan.mode == "ambiguous":
        return (f"客户匹配不唯一（{'、'.join(plan.candidates)}），请在“客户编号”列填写其中一个，"
                f"或填“新建”，并选择“修改后同意”")
    return ""


def classify(
    order: dict[str, Any], indexes: Indexes, dictionary: Dictionary, base: dict[str, dict[str, str]] | None = None,
) -> Outcome:
    """Decide what to do for one stored OEM order (see the module docstring). Never raises."""
    key = order["order_no"]
    oem_customer = indexes.oem_customer_for(order)
    try:
        target = contract_values(order, oem_customer, dictionary)
    except RecordRejected as rej:
        return Outcome(key, "rejected", rej.reason)
    contract = indexes.contract_by_order.get(_norm(key))
    if contract is None:
        return _plan_create(order, oem_customer, target, indexes, dictionary)
    return _plan_update(key, contract, target, base or {}, dictionary)


def _plan_create(
    order: dict[str, Any], oem_customer: dict[str, Any] | None, target: dict[str, str], indexes: Indexes, dictionary: Dictionary,
) -> Outcome:
    key = order["order_no"]
    if target["vin"] and indexes.contracts_by_vin.get(target["vin"]):
        other = indexes.contracts_by_vin[target["vin"]][0]
        return Outcome(
            key, "conflict",
            f"VIN {target['vin']} 已在DMS合同 {other['contract_no']} 中（厂家订单号 {other.get('oem_order_no') or '空'}），"
            f"请人工核对后在DMS中处理", contract_no=other["contract_no"],
        )
    if target["status"] == dictionary.cancelled_status:
        return Outcome(key, "in_sync", "订单已取消且DMS中没有合同：无需处理")
    if oem_customer is None:
        return Outcome(key, "rejected", "厂家门户中找不到该订单客户的资料和授权（先运行 oem-customers）")
    if not oem_customer.get("consent"):
        return Outcome(key, "rejected", f"客户 {oem_customer['customer_no']} 未授权数据共享（未授权）：按个人信息保护法不录入DMS")
    issues = check_contract(target, dictionary)
    if issues:
        return Outcome(key, "rejected", "DMS不会接受：" + issues_text(issues))
    try:
        customer = match_customer(order, oem_customer, indexes, dictionary)
    except RecordRejected as rej:
        return Outcome(key, "rejected", rej.reason)
    note = customer_note(customer)
    return Outcome(key, "create", note, action=PlannedAction("create_contract", key, target, customer=customer, note=note))


def _plan_update(
    key: str, contract: dict[str, Any], target: dict[str, str], base: dict[str, dict[str, str]], dictionary: Dictionary,
) -> Outcome:
    current = dms_values(contract)
    new = dict(current)
    conflicts: list[str] = []
    agreed: dict[str, dict[str, str]] = {}
    lifecycle = list(dictionary.status_order)
    for name in CONTRACT_FIELDS:
        oem, dms = target[name], current[name]
        seen = base.get(name)  # {"oem": ..., "dms": ...} when both last agreed (or a person settled it)
        if oem == dms:
            agreed[name] = {"oem": oem, "dms": dms}
            continue
        rule = dictionary.contract[name].update
        label = CONTRACT_HEADERS[name]
        if rule == "never" or (rule == "fill_empty" and not oem):
            continue
        if seen is not None and seen.get("oem") == oem and seen.get("dms") == dms:
            continue  # a difference a reviewer chose (an edited write): neither side moved since
        oem_moved = seen is None or seen.get("oem") != oem
        dms_moved = seen is not None and seen.get("dms") != dms
        if rule == "fill_empty" and not dms:
            new[name] = oem
        elif rule == "forward":
            if oem == dictionary.cancelled_status:
                new[name] = oem
            elif dms == dictionary.cancelled_status:
                conflicts.append(f"DMS合同已取消，但厂家订单状态为 {oem}")
                new[name] = oem
            elif oem in lifecycle and dms in lifecycle:
                if lifecycle.index(oem) > lifecycle.index(dms):
                    new[name] = oem
                # DMS ahead of the OEM (delivered before the portal caught up): leave it
            else:
                conflicts.append(f"{label} DMS为「{dms}」，厂家映射为「{oem}」，不在 status_order 中")
                new[name] = oem
        elif seen is not None and not dms_moved:
            new[name] = oem  # only the OEM changed since both agreed
        elif seen is not None and not oem_moved:
            continue  # staff changed the DMS since: their value stays
        else:
            why = "双方都已修改" if seen is not None else "两边不一致且没有同步记录"
            conflicts.append(f"{label} DMS为「{dms or '空'}」，厂家为「{oem or '空'}」（{why}）")
            new[name] = oem
    contract_no = contract["contract_no"]
    if new == current:
        return Outcome(key, "in_sync", contract_no=contract_no, agreed=agreed)
    cancel = new["status"] == dictionary.cancelled_status and current["status"] != dictionary.cancelled_status
    kind: ActionKind = "cancel_contract" if cancel else "update_contract"
    action = PlannedAction(kind, key, new, current, contract_no=contract_no, conflict=bool(conflicts),
                           note="；".join(conflicts))
    changes = "；".join(f"{CONTRACT_HEADERS[f]} {old or '空'}→{val or '空'}" for f, (old, val) in action.changes.items())
    if conflicts:
        return Outcome(key, "conflict", action.note, contract_no, action, agreed)
    return Outcome(key, "update", f"{KIND_TEXT[kind]}：{changes}", contract_no, action, agreed)


# -- over the whole store ----------------------------------------------------------------------


@dataclass
class ReconcileReport:
    """What one reconciliation found and planned."""

    counts: Counter[str]
    outcomes: list[Outcome]
    planned: int = 0  # new actions in the ledger
    superseded: int = 0
    awaiting_approval: int = 0  # open actions waiting for a person (new and earlier)
    ready: int = 0  # approved actions the re-key bot will write
    in_progress: int = 0
    carried_over: int = 0  # approvals kept: the new customer exists in the DMS now (same ID number)
    # A person's approval superseded by this plan: (OEM order no, what changed), said to people.
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def count_open(self, store: Store, flow: str, policy: Policy) -> None:
        """Count ``flow``'s open actions as they stand after planning: waiting for a person,
        ready for its writer (approved, of a kind ``policy`` writes), or being written."""
        for a in store.actions(OPEN_STATES, flow=flow):
            if a.state in ("planned", "failed"):
                self.awaiting_approval += 1
            elif a.state == "approved" and a.kind in policy.enabled:
                self.ready += 1
            elif a.state in ("in_progress", "written"):
                self.in_progress += 1


def reconcile(
    store: Store, dictionary: Dictionary, policy: Policy, on_wait: Callable[[str], None] | None = None,
) -> ReconcileReport:
    """Classify every OEM order in the store and bring the ledger in line (one transaction),
    holding the store's ledger lock: while a re-key run writes, wait for it to finish (``on_wait``
    is told once whom it waits for). Inside an event loop use :func:`reconcile_async`.

    Reads the orders, OEM customers and the DMS as last scraped, with what dealerbot itself
    wrote since (from the ledger) laid over them.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the store failed.
        OSError: the lock file could not be made.
    """
    with store.ledger_lock("reconcile", on_wait):
        return plan_ledger(store, dictionary, policy)


async def reconcile_async(
    store: Store, dictionary: Dictionary, policy: Policy, on_wait: Callable[[str], None] | None = None,
) -> ReconcileReport:
    """:func:`reconcile` for a caller in an event loop (``sync``): the wait never blocks the loop.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the store failed.
        OSError: the lock file could not be made.
    """
    async with store.ledger_lock_async("reconcile", on_wait):
        return plan_ledger(store, dictionary, policy)


def plan_ledger(store: Store, dictionary: Dictionary, policy: Policy) -> ReconcileReport:
    """The work of :func:`reconcile`, for a caller that holds the store's ledger lock.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the store failed.
    """
    written = store.written_contracts()
    contracts = {c["contract_no"]: c for c in store.iter_records(DMS_CONTRACT)}
    for key, w in written.items():
        scraped = contracts.get(w["contract_no"])
        if scraped is None or scraped["scraped_at"] < w["written_at"]:
            contracts[w["contract_no"]] = {**(scraped or {}), **w["values"], "contract_no": w["contract_no"]}
    indexes = Indexes(store.iter_records(OEM_CUSTOMER), store.iter_records(DMS_CUSTOMER), contracts.values())
    for c in store.created_customers():
        indexes.add_dms_customer(c)
    latest = store.latest_actions()
    reverse = store.reverse_actions()  # a rollback's actions: left alone while open (module docstring)
    sync = store.sync_state()
    rejected_at_read = {r["record_key"]: r["reason"] for r in store.iter_open_rejects(OEM_ORDER) if r["record_key"]}

    report = ReconcileReport(Counter(), [])
    supersede: list[int] = []
    new: list[tuple[PlannedAction, bool]] = []
    dropped: list[tuple[Action, str]] = []
    sync_rows: list[dict[str, Any]] = []
    for order in store.iter_records(OEM_ORDER):
        key = order["order_no"]
        if key in rejected_at_read:
            outcome = Outcome(key, "rejected", f"读取时被拒绝：{rejected_at_read.pop(key)}")
        else:
            outcome = classify(order, indexes, dictionary, (sync.get(key) or {}).get("base"))
        _decide(outcome, latest.get(key), policy, supersede, new, report, indexes, dropped, reverse)
        report.outcomes.append(outcome)
        report.counts[outcome.reconcile_class] += 1
        base = {**((sync.get(key) or {}).get("base") or {}), **outcome.agreed}
        sync_rows.append({
            "oem_order_no": key, "contract_no": outcome.contract_no or None, "reconcile_class": outcome.reconcile_class,
            "reason": outcome.reason, "changes": dumps([list(c) for c in outcome.changes]), "base": dumps(base),
            "action_id": latest[key].id if key in latest else None,
        })
    for key, reason in sorted(rejected_at_read.items()):  # rejected at every read so far
        outcome = Outcome(key, "rejected", f"读取时被拒绝：{reason}")
        _decide(outcome, latest.get(key), policy, supersede, new, report, indexes, dropped, reverse)
        report.outcomes.append(outcome)
        report.counts["rejected"] += 1
        sync_rows.append({"oem_order_no": key, "contract_no": None, "reconcile_class": "rejected", "reason": outcome.reason,
                          "changes": "[]", "base": dumps((sync.get(key) or {}).get("base") or {}),
                          "action_id": latest[key].id if key in latest else None})
    store.save_plan(supersede, new, sync_rows, dropped=dropped)
    report.dropped = [(a.natural_key, why) for a, why in dropped]
    report.planned, report.superseded = len(new), len(supersede)
    report.count_open(store, ORDERS_FLOW, policy)
    return report


def _decide(
    outcome: Outcome, latest: Action | None, policy: Policy, supersede: list[int],
    new: list[tuple[PlannedAction, bool]], report: ReconcileReport, indexes: Indexes | None = None,
    dropped: list[tuple[Action, str]] | None = None, reverse: dict[int, str] | None = None,
) -> None:
    """What the ledger does with ``outcome``, given the order's newest action (see the module
    docstring); ``indexes`` is the DMS as planned against, ``dropped`` collects the approvals a
    person gave that this plan supersedes, with what changed; ``reverse``: the reverse actions
    of rollbacks by id (the run each rolls back), left alone while open."""
    open_action = latest if latest is not None and latest.state in OPEN_STATES else None
    if open_action is not None and open_action.state in ("in_progress", "written"):
        outcome.reason = _join(outcome.reason, "正在写入DMS（上次运行未完成，下次运行继续）")
        return  # the re-key bot owns it until it is verified or failed
    if open_action is not None and reverse and open_action.id in reverse:
        outcome.reason = _join(f"回滚运行 {reverse[open_action.id]} 的操作{STATE_TEXT[open_action.state]}，对账不改动它",
                               outcome.reason)
        return  # a person's rollback: reviewed, written or skipped, never replanned here
    action = outcome.action
    by_person = open_action is not None and approved_by_person(open_action)
    if action is None:
        if open_action is not None:
            supersede.append(open_action.id)
            if by_person:
                assert open_action is not None
                why = f"订单现为「{RECONCILE_CLASS_TEXT[outcome.reconcile_class]}」" + (f"：{outcome.reason}" if outcome.reason else "")
                outcome.reason = _join(f"{REAPPROVAL}的{KIND_TEXT[open_action.kind]}已作废（{open_action.reviewed_by}）", outcome.reason)
                if dropped is not None:
                    dropped.append((open_action, why))
        return
    plan = action.checksum()
    if open_action is not None and open_action.plan_checksum == plan:
        if open_action.state == "failed":
            outcome.reason = f"上次写入失败：{open_action.failure_reason}"
        return  # planned before with the same content: keep its approval (or its failure)
    if open_action is not None and open_action.state == "approved" and indexes is not None:
        customer_no = carried_customer(open_action, action, indexes)
        if customer_no:
            outcome.reason = _join(outcome.reason, f"新客户已在DMS中（{customer_no}，证件号码相同）：沿用原审核，写入时使用该客户")
            report.carried_over += 1
            return
    if latest is not None and latest.state == "skipped" and latest.plan_checksum == plan:
        outcome.reason = _join(outcome.reason, "审核时已跳过")
        return
    if open_action is not None:
        supersede.append(open_action.id)
    if action.kind not in policy.enabled:
        action = replace(action, note=_join(
            action.note, f"{KIND_TEXT[action.kind]}未启用：在 dealerbot.toml 的 [rekey] enabled 中加入 {action.kind} 后才会写入"))
        outcome.action = action
    needs_approval = policy.needs_approval(action) or action.kind not in policy.enabled
    if by_person:
        assert open_action is not None
        why = describe_change(open_action, action)
        then = "需重新审核" if needs_approval else "新计划按规则无需审核"
        action = replace(action, note=_join(f"{REAPPROVAL}（{open_action.reviewed_by}），因计划已变化{then}：{why}", action.note))
        outcome.action = action
        outcome.reason = _join(f"{REAPPROVAL}，因计划已变化{then}：{why}", outcome.reason)
        if dropped is not None:
            dropped.append((open_action, why))
    elif open_action is not None and open_action.state == "planned" and open_action.note.startswith(REAPPROVAL):
        # Still waiting for the person whose approval was dropped: keep telling them why.
        action = replace(action, note=_join(open_action.note.split("；")[0], action.note))
        outcome.action = action
    new.append((action, needs_approval))


def _join(*parts: str) -> str:
    return "；".join(p for p in parts if p)


def carried_customer(approved: Action, plan: PlannedAction, indexes: Indexes) -> str | None:
    """The DMS customer no when ``plan`` differs from the ``approved`` creation only in that the
    new customer it was to create exists now: exactly one DMS customer has that ID number (the
    one the re-key's search before creating finds) and ``plan`` uses it. Otherwise None.

    Everything else must be as approved: the kind, the contract's values as planned (a
    reviewer's edits stay theirs), the new customer's details as approved.
    """
    if approved.kind != "create_contract" or plan.kind != "create_contract":
        return None
    if approved.customer.mode != "new" or plan.customer.mode != "existing":
        return None
    idn = _norm(approved.customer.values.get("id_number"))
    same = indexes.dms_by_id.get(idn, []) if idn else []
    if len(same) != 1 or same[0]["customer_no"] != plan.customer.customer_no:
        return None
    if replace(plan, customer=approved.customer).checksum() != approved.plan_checksum:
        return None  # something else changed too (or a reviewer changed the customer)
    return plan.customer.customer_no


def _customer_text(plan: CustomerPlan) -> str:
    if plan.mode == "existing":
        return f"DMS现有客户 {plan.customer_no}"
    if plan.mode == "new":
        return "新建客户"
    if plan.mode == "ambiguous":
        return f"客户匹配不唯一（{'、'.join(plan.candidates)}）"
    return "无"


def describe_change(approved: Action, plan: PlannedAction) -> str:
    """What differs between an approved action and the plan replacing it, in words for the
    reviewer (no personal data: customers by number, contract fields only)."""
    parts: list[str] = []
    if approved.kind != plan.kind:
        parts.append(f"操作由「{KIND_TEXT[approved.kind]}」变为「{KIND_TEXT[plan.kind]}」")
        if approved.kind == "create_contract" and plan.contract_no:
            parts.append(f"DMS中已有该订单的合同 {plan.contract_no}")
    elif (approved.contract_no or "") != (plan.contract_no or ""):
        parts.append(f"合同号 {approved.contract_no or '空'}→{plan.contract_no or '空'}")
    if approved.kind == plan.kind == "create_contract" and approved.customer != plan.customer:
        before, after = _customer_text(approved.customer), _customer_text(plan.customer)
        parts.append(f"客户 {before}→{after}" if before != after else "新建客户的资料已变化")
    planned = approved.plan_values or approved.new_values
    if approved.kind == plan.kind:
        fields = [f for f in CONTRACT_FIELDS if planned.get(f, "") != plan.new_values.get(f, "")]
        parts += [f"{CONTRACT_HEADERS[f]} {planned.get(f) or '空'}→{plan.new_values.get(f) or '空'}" for f in fields]
        moved = [f for f in CONTRACT_FIELDS if approved.old_values.get(f, "") != plan.old_values.get(f, "")]
        if approved.kind != "create_contract":
            parts += [f"DMS合同{CONTRACT_HEADERS[f]} 原为「{approved.old_values.get(f) or '空'}」，现为「{plan.old_values.get(f) or '空'}」"
                      for f in moved]
    if plan.conflict and not approved.conflict:
        parts.append("出现冲突")
    return "，".join(parts) or "计划内容已变化"  # one segment of a note ("；" separates those)

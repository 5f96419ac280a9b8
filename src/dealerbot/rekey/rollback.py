"""Rolling back a re-key run: the reverse of each DMS write it made, planned from the audit trail.

``dealerbot rollback --run ID`` and the console's 回滚此次写入 (on the run's page) call
:func:`plan_rollback` (what would be reversed; nothing stored) and :func:`rollback` (the same,
stored in the ledger, under the store's ledger lock). Nothing is written into the DMS here: the
reverse actions are ordinary ledger actions (``update_contract``, ``cancel_contract``), planned
for a person's approval, and go through the same review (workbook, console), re-key writer
(read before typing, one submit, read back) and audit trail as any other write.

From the run's audit rows (its ledger writes), per contract:

* an **updated** field goes back to its audited old value, only where the target still holds
  what the run wrote: compared with what the store last knew of the DMS (the contract as last
  read, or as dealerbot last wrote it when that is newer); the writer checks again on the live
  DMS before it types (an update is written only where the DMS still holds the values it was
  planned from). A field that moved since (staff, a later run) is a **conflict**: not reverted,
  listed with what the run wrote, what the DMS holds now and what it held before the run;
* a **created** contract is listed for cancellation (``cancel_contract``: its status set to the
  dictionary's ``cancelled_status``; nothing is ever deleted), written only where
  ``cancel_contract`` is in ``[rekey] enabled`` (otherwise the note says how to enable it, and
  an approved cancellation waits). A customer the run created is listed for a person (the DMS
  cannot cancel a customer; it may have other contracts by now);
* a **cancellation** the run made is an updated status: set back.

Reverse actions always wait for a person (``planned``), whatever ``[rekey]`` says of their kind.
Each is marked in the append-only audit trail by a ``rollback_planned`` row (``run_id``: the
run rolled back; ``action_id``: the reverse action; old -> new: what it restores); a contract
with only conflicts gets a ``rollback_conflict`` row. A run with such rows is rolled back:
asking again is refused. An open action of the same order (planned, approved or failed: planned
over what the run wrote) is superseded by the reverse action; an order being written right now
refuses the rollback until that run ends. How reconciliation treats reverse actions afterwards:
:mod:`dealerbot.rekey.reconcile`'s docstring.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dealerbot.data.dictionary import CONTRACT_FIELDS
from dealerbot.data.mapping import CONTRACT_HEADERS, dms_values
from dealerbot.data.records import DMS_CONTRACT
from dealerbot.errors import RollbackRefused
from dealerbot.rekey.ledger import (
    IN_FLIGHT,
    KIND_TEXT,
    OPEN_STATES,
    STATE_TEXT,
    Action,
    PlannedAction,
    Policy,
    approved_by_person,
)

if TYPE_CHECKING:
    from dealerbot.store import Store

WRITE_EVENTS = ("create_contract", "update_contract", "cancel_contract")
ROLLBACK_MARK = "回滚运行"  # how a reverse action's note starts: "回滚运行 <run id>：..."


@dataclass(frozen=True)
class Conflict:
    """A field the run wrote that holds something else now: left as it is, for a person."""

    field: str
    written: str  # what the run wrote
    now: str  # what the DMS holds, as the store last knew it
    before: str  # what it held before the run (the audit's old value; empty for a creation)

    def text(self) -> str:
        return (f"{CONTRACT_HEADERS.get(self.field, self.field)} 本次写入「{self.written or '空'}」，"
                f"现为「{self.now or '空'}」" + (f"，运行前为「{self.before or '空'}」" if self.before or self.written else ""))


@dataclass
class Reversal:
    """What the rollback does with one contract the run wrote."""

    order_no: str
    contract_no: str
    created: bool  # the run created it (else it updated it)
    action: PlannedAction | None = None  # the reverse action; None: nothing to write (see ``why``)
    restore: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (written, back to)
    conflicts: list[Conflict] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)  # customers the run created for it
    found: bool = False  # the run found the contract saved (an earlier attempt, or staff) rather than saving it
    replaces: Action | None = None  # the order's open action, superseded by the reverse action
    why: str = ""  # why nothing is written (all conflicts, already cancelled)


@dataclass
class RollbackPlan:
    """The reverse of one run's writes (see the module docstring)."""

    run_id: str
    bot: str
    reversals: list[Reversal]
    cancel_enabled: bool
    ids: dict[str, int] = field(default_factory=dict)  # the stored reverse actions by order (after :func:`rollback`)

    @property
    def actions(self) -> list[PlannedAction]:
        return [r.action for r in self.reversals if r.action is not None]

    @property
    def conflicts(self) -> int:
        return sum(len(r.conflicts) for r in self.reversals)

    def lines(self, mask: Callable[[str], str] = str) -> list[str]:
        """The plan in the operator's words, one line a contract (masked with ``mask``), then a
        summary line; the same on the command line and in the console."""
        out = []
        for r in self.reversals:
            head = f"{r.order_no} 合同 {r.contract_no}："
            if r.action is None:
                what = f"不回滚（{r.why}）"
            elif r.created:
                what = "取消本次新建的合同" + ("" if self.cancel_enabled else "（取消合同未启用，同意后也不会写入，见说明）")
            else:
                what = "恢复 " + "；".join(f"{CONTRACT_HEADERS.get(f, f)} {w or '空'}→{b or '空'}" for f, (w, b) in r.restore.items())
            parts = [what]
            if r.found:
                parts.append("该合同是本次运行在DMS中找到的（可能是上次中断的写入或工作人员所录），请核实后再同意")
            if r.conflicts:
                parts.append("冲突，需人工处理（运行后已被改动，不覆盖）：" + "；".join(c.text() for c in r.conflicts))
            if r.customers:
                parts.append(f"本次新建的客户 {'、'.join(r.customers)} 不会被取消（DMS中的客户无法取消），请人工处理")
            if r.replaces is not None:
                parts.append(f"作废该订单待处理的{KIND_TEXT[r.replaces.kind]}（#{r.replaces.id}，{STATE_TEXT[r.replaces.state]}）")
            out.append(mask(head + "；".join(parts)))
        n = len(self.actions)
        out.append(f"共 {len(self.reversals)} 份合同：计划回滚操作 {n} 条（均需审核同意），冲突字段 {self.conflicts} 个（人工处理）")
        if not self.cancel_enabled and any(r.created and r.action is not None for r in self.reversals):
            out.append("取消合同未启用：在 dealerbot.toml 的 [rekey] enabled 中加入 cancel_contract 后，已同意的取消才会写入DMS")
        return out


def _refuse(run_id: str, why: str) -> RollbackRefused:
    return RollbackRefused(f"无法回滚运行 {run_id}：{why}；未做任何改动")


def dms_view(store: Store) -> dict[str, dict[str, Any]]:
    """The DMS's contracts by number as the store last knew them: as last read, or as dealerbot
    last wrote them where that is newer (as reconciliation sees them)."""
    contracts = {c["contract_no"]: c for c in store.iter_records(DMS_CONTRACT)}
    for w in store.written_contracts().values():
        scraped = contracts.get(w["contract_no"])
        if scraped is None or scraped["scraped_at"] < w["written_at"]:
            contracts[w["contract_no"]] = {**(scraped or {}), **w["values"], "contract_no": w["contract_no"]}
    return contracts


def plan_rollback(store: Store, run_id: str, cancelled_status: str, policy: Policy) -> RollbackPlan:
    """The reverse of each DMS write of run ``run_id`` (module docstring); nothing is stored.
    ``cancelled_status``: the dictionary's (what a cancelled contract's status is).

    Raises:
        RollbackRefused: no such run, still running, not a writing run (a reading bot, a dry
            run), nothing written, already rolled back, or one of its orders being written now.
        sqlalchemy.exc.SQLAlchemyError: the store failed.
    """
    run = store.run(run_id)
    if run is None:
        raise _refuse(run_id, "没有这次运行（见 dealerbot runs 或控制台的运行记录）")
    if run.status == "running":
        raise _refuse(run_id, "这次运行还没有结束，请等它结束后再回滚")
    if "actions" not in run.counts:
        raise _refuse(run_id, f"这是「{run.bot}」的运行，不是写入DMS的运行（只有 dms-rekey 等写入DMS的运行可以回滚）")
    if run.options.get("dry_run"):
        raise _refuse(run_id, "这是演练（未写入DMS），没有可回滚的写入")
    earlier = store.rollback_rows(run_id)
    if earlier:
        first = earlier[0]
        ids = sorted({r["action_id"] for r in earlier if r["action_id"]})
        raise _refuse(run_id, f"已于 {first['at']:%Y-%m-%d %H:%M} 由 {first['actor']} 计划过回滚"
                      + (f"（回滚操作 {'、'.join(f'#{i}' for i in ids)}）" if ids else "")
                      + f"，不再重复计划；详情见 dealerbot audit --run {run_id}")
    rows = store.run_audit(run_id, (*WRITE_EVENTS, "create_customer"))
    writes = [r for r in rows if r["event"] in WRITE_EVENTS and r["action_id"] is not None]
    if not writes:
        raise _refuse(run_id, "这次运行没有写入DMS的记录，无需回滚")
    latest = store.latest_actions()
    busy = [k for k in dict.fromkeys(r["natural_key"] for r in writes)
            if k in latest and latest[k].state in IN_FLIGHT]
    if busy:
        raise _refuse(run_id, f"订单 {'、'.join(busy[:5])} 正在写入DMS（有运行未完成），请等写入结束"
                      f"（或运行 dms-rekey 完成它）后再回滚")
    view = dms_view(store)
    customers: dict[int, list[str]] = {}
    for r in rows:
        if r["event"] == "create_customer" and r["action_id"] is not None:
            customers.setdefault(r["action_id"], []).append(r["target"])
    by_contract: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in writes:
        by_contract.setdefault((r["natural_key"], r["target"]), []).append(r)
    reversals = []
    for (order_no, contract_no), its in by_contract.items():
        current = dms_values(view.get(contract_no) or {})
        open_action = latest.get(order_no)
        rev = Reversal(order_no, contract_no, created=any(r["event"] == "create_contract" for r in its),
                       found=any(r["event"] == "create_contract" and r["note"] for r in its))
        rev.customers = [c for r in its for c in customers.get(r["action_id"], [])]
        if open_action is not None and open_action.state in OPEN_STATES:
            rev.replaces = open_action
        written: dict[str, str] = {}
        before: dict[str, str] = {}
        for r in its:  # oldest first: the value before the run is the first write's old one
            for f, v in r["new_values"].items():
                if f in CONTRACT_FIELDS:
                    before.setdefault(f, "" if rev.created else str(r["old_values"].get(f, "")))
                    written[f] = str(v)
        for f, w in written.items():
            if current.get(f, "") != w:
                rev.conflicts.append(Conflict(f, w, current.get(f, ""), before[f]))
            elif not rev.created and before[f] != w:
                rev.restore[f] = (w, before[f])
        note_tail = [f"冲突（运行后已被改动，不覆盖）：{'；'.join(c.text() for c in rev.conflicts)}"] if rev.conflicts else []
        if rev.customers:
            note_tail.append(f"本次新建的客户 {'、'.join(rev.customers)} 请人工处理（DMS中的客户无法取消）")
        if rev.created:
            if current.get("status") == cancelled_status:
                rev.why = "合同已是取消状态"
                rev.replaces = None
            else:
                new = {**current, "status": cancelled_status}
                note = [f"{ROLLBACK_MARK} {run_id}：取消本次新建的合同", *note_tail]
                if rev.found:
                    note.append("该合同是本次运行在DMS中找到的（可能是上次中断的写入或工作人员所录），请核实")
                if "cancel_contract" not in policy.enabled:
                    note.append("取消合同未启用：在 dealerbot.toml 的 [rekey] enabled 中加入 cancel_contract 后才会写入")
                rev.action = PlannedAction("cancel_contract", order_no, new, current, contract_no=contract_no,
                                           conflict=bool(rev.conflicts), note="；".join(note))
        elif rev.restore:
            new = {**current, **{f: b for f, (_, b) in rev.restore.items()}}
            changes = "；".join(f"{CONTRACT_HEADERS.get(f, f)} {w or '空'}→{b or '空'}" for f, (w, b) in rev.restore.items())
            rev.action = PlannedAction("update_contract", order_no, new, current, contract_no=contract_no,
                                       conflict=bool(rev.conflicts), note="；".join([f"{ROLLBACK_MARK} {run_id}：恢复 {changes}", *note_tail]))
        else:
            rev.why = "本次写入的字段在运行后都已被改动" if rev.conflicts else "没有需要恢复的字段"
            rev.replaces = None
        reversals.append(rev)
    return RollbackPlan(run_id, run.bot, reversals, "cancel_contract" in policy.enabled)


def save_plan(store: Store, plan: RollbackPlan, actor: str) -> dict[str, int]:
    """Store ``plan`` (one transaction, see :meth:`~dealerbot.store.Store.save_rollback`); the
    caller holds the ledger lock. Returns the reverse actions' ids by order.

    Raises:
        RollbackRefused: rolled back meanwhile.
        sqlalchemy.exc.SQLAlchemyError: the store failed.
    """
    rows = []
    for r in plan.reversals:
        if r.action is None and not r.conflicts:
            continue  # nothing to do and nothing for a person (already cancelled)
        if r.action is not None:
            old = ({f: w for f, (w, _) in r.restore.items()} if not r.created
                   else {"status": r.action.old_values.get("status", "")})
            new = ({f: b for f, (_, b) in r.restore.items()} if not r.created else {"status": r.action.new_values["status"]})
            note = r.action.note
        else:
            old = {c.field: c.written for c in r.conflicts}
            new = {c.field: c.now for c in r.conflicts}
            note = f"{ROLLBACK_MARK} {plan.run_id}：未回滚，{r.why}：" + "；".join(c.text() for c in r.conflicts)
        rows.append({"action": r.action, "target": r.contract_no, "natural_key": r.order_no, "old": old, "new": new,
                     "note": note})
    replaced = [r.replaces for r in plan.reversals if r.replaces is not None and r.action is not None]
    dropped = [(a, f"计划回滚运行 {plan.run_id}：原{KIND_TEXT[a.kind]}已作废") for a in replaced if approved_by_person(a)]
    plan.ids = store.save_rollback(plan.run_id, actor, rows, replaced, dropped)
    return plan.ids


def rollback(
    store: Store, run_id: str, cancelled_status: str, policy: Policy, actor: str | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> RollbackPlan:
    """Plan the reverse of run ``run_id``'s writes and store it in the ledger, holding the
    store's ledger lock (waiting while a re-key writes; ``on_wait`` is told whom for). ``actor``:
    who asked (default: the system user), in the audit trail.

    Raises:
        RollbackRefused: as :func:`plan_rollback`, or rolled back meanwhile (nothing stored).
        sqlalchemy.exc.SQLAlchemyError: the store failed.
        OSError: the lock file could not be made.
    """
    with store.ledger_lock("rollback", on_wait):
        plan = plan_rollback(store, run_id, cancelled_status, policy)
        save_plan(store, plan, actor or getpass.getuser())
    return plan

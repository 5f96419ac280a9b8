"""Planning a flow: its source records against what the target holds, into the ledger.

For ``orders`` this is :func:`dealerbot.rekey.reconcile.reconcile_async` (unchanged). For any
other flow, :func:`plan_flow` runs the flow's pure ``plan`` over every stored source record
(with the target's record of the same key, as last read) and brings the flow's actions in line
in one transaction, by the rules the orders re-key follows:

* an action being written (``in_progress``/``written``) is left to its writer;
* an open action planned with the same content keeps its approval (or its failure);
* a write already verified, or skipped by a person, with the same content is not planned again
  (the target may not have been read since it was written);
* anything else supersedes the open action and is planned anew, approved by the policy when it
  needs no person; a person's approval superseded is said (audit row ``approval_dropped``).

Planning holds the store's ledger lock, so it never changes actions a writer has listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dealerbot.errors import RecordRejected
from dealerbot.flows import Flow
from dealerbot.rekey.ledger import OPEN_STATES, REAPPROVAL, Action, PlannedAction, Policy, approved_by_person
from dealerbot.rekey.reconcile import Outcome, ReconcileReport

if TYPE_CHECKING:
    from dealerbot.data.dictionary import Dictionary
    from dealerbot.store import Store


def classify_flow(flow: Flow, record: dict[str, Any], target: dict[str, Any] | None, dictionary: Dictionary | None) -> Outcome:
    """One source record through the flow's mapping: ``create``/``update`` (an action),
    ``in_sync`` or ``rejected`` with the reason. Never raises for a bad record."""
    assert flow.plan is not None
    key = str(record.get(flow.source.key) or "")
    try:
        action = flow.plan(record, target, dictionary)
    except RecordRejected as rej:
        return Outcome(key, "rejected", rej.reason)
    if action is None:
        return Outcome(key, "in_sync")
    if action.flow != flow.name:
        action = replace(action, flow=flow.name)
    klass = "conflict" if action.conflict else ("update" if action.old_values else "create")
    changes = "；".join(f"{f} {o or '空'}→{n or '空'}" for f, (o, n) in action.changes.items())
    reason = action.note or f"{flow.kind_text(action.kind)}：{changes}"
    return Outcome(key, klass, reason, action.contract_no, action)


def plan_flow(store: Store, flow: Flow, dictionary: Dictionary | None, policy: Policy) -> ReconcileReport:
    """Plan ``flow`` over the store (see the module docstring), for a caller that holds the
    store's ledger lock (:func:`plan_flow_async` takes it).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the store failed.
    """
    targets: Mapping[str, dict[str, Any]] = {}
    if flow.targets is not None:
        targets = flow.targets(store)
    elif flow.target is not None:
        by = flow.match or flow.target.key
        targets = {str(r.get(by) or "").strip().upper() if flow.match else str(r.get(by) or ""): r
                   for r in store.iter_records(flow.target)}
    latest = store.latest_actions(flow.name)
    report = ReconcileReport(Counter(), [])
    supersede: list[int] = []
    new: list[tuple[PlannedAction, bool]] = []
    dropped: list[tuple[Action, str]] = []
    for record in store.iter_records(flow.source):
        pair = (str(record.get(flow.match) or "").strip().upper() if flow.match
                else str(record.get(flow.source.key) or ""))
        outcome = classify_flow(flow, record, targets.get(pair), dictionary)
        _decide(flow, outcome, latest.get(outcome.order_no), policy, supersede, new, dropped)
        report.outcomes.append(outcome)
        report.counts[outcome.reconcile_class] += 1
    store.save_plan(supersede, new, [], dropped=dropped)
    report.dropped = [(a.natural_key, why) for a, why in dropped]
    report.planned, report.superseded = len(new), len(supersede)
    report.count_open(store, flow.name, policy)
    return report


def _decide(
    flow: Flow, outcome: Outcome, latest: Action | None, policy: Policy, supersede: list[int],
    new: list[tuple[PlannedAction, bool]], dropped: list[tuple[Action, str]],
) -> None:
    open_action = latest if latest is not None and latest.state in OPEN_STATES else None
    if open_action is not None and open_action.state in ("in_progress", "written"):
        outcome.reason = "；".join(p for p in (outcome.reason, "正在写入（上次运行未完成，下次运行继续）") if p)
        return
    action = outcome.action
    by_person = open_action is not None and approved_by_person(open_action)
    if action is None:
        if open_action is not None:
            supersede.append(open_action.id)
            if by_person:
                assert open_action is not None
                dropped.append((open_action, f"现为「{outcome.reconcile_class}」：{outcome.reason}"))
        return
    plan = action.checksum()
    if open_action is not None and open_action.plan_checksum == plan:
        if open_action.state == "failed":
            outcome.reason = f"上次写入失败：{open_action.failure_reason}"
        return
    if latest is not None and latest.plan_checksum == plan and latest.state in ("verified", "skipped"):
        outcome.reason = "已写入并核对" if latest.state == "verified" else "审核时已跳过"
        outcome.reconcile_class = "in_sync" if latest.state == "verified" else outcome.reconcile_class
        outcome.action = None if latest.state == "verified" else outcome.action
        return
    if open_action is not None:
        supersede.append(open_action.id)
    if action.kind not in policy.enabled:
        action = replace(action, note="；".join(p for p in (
            action.note, f"{flow.kind_text(action.kind)}未启用：在 dealerbot.toml 的 [flows.{flow.name}] kinds 中加入 "
                         f"{action.kind} 后才会写入") if p))
        outcome.action = action
    needs_approval = policy.needs_approval(action) or action.kind not in policy.enabled
    if by_person:
        assert open_action is not None
        then = "需重新审核" if needs_approval else "新计划按规则无需审核"
        action = replace(action, note=f"{REAPPROVAL}（{open_action.reviewed_by}），因计划已变化{then}" +
                         (f"；{action.note}" if action.note else ""))
        outcome.action = action
        dropped.append((open_action, "计划内容已变化"))
    new.append((action, needs_approval))


async def plan_flow_async(
    store: Store, flow: Flow, dictionary: Dictionary | None, policy: Policy, on_wait: Callable[[str], None] | None = None,
) -> ReconcileReport:
    """:func:`plan_flow` holding the store's ledger lock (waits while a writer writes).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the store failed.
        OSError: the lock file could not be made.
    """
    async with store.ledger_lock_async("reconcile", on_wait):
        return plan_flow(store, flow, dictionary, policy)


async def reconcile_flow(
    store: Store, flow: Flow, dictionary: Dictionary | None, policy: Policy, on_wait: Callable[[str], None] | None = None,
) -> ReconcileReport:
    """Plan any flow: ``orders`` by :func:`dealerbot.rekey.reconcile.reconcile_async`, the
    others by :func:`plan_flow_async`.

    Raises:
        as those.
    """
    if flow.plan is None:
        from dealerbot.rekey.reconcile import reconcile_async

        assert dictionary is not None
        return await reconcile_async(store, dictionary, policy, on_wait=on_wait)
    return await plan_flow_async(store, flow, dictionary, policy, on_wait)

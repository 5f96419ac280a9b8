"""The re-key ledger: planned DMS writes, their states as a re-key claims, writes, verifies or fails
them, and staff's review decisions (states and rules: :mod:`dealerbot.rekey.ledger`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update

from dealerbot.rekey.ledger import (
    AWAITING_REVIEW,
    CLAIMABLE,
    IN_FLIGHT,
    ORDERS_FLOW,
    POLICY_REVIEWER,
    ROLLBACK_CONFLICT,
    ROLLBACK_PLANNED,
    SUPERSEDABLE,
    Action,
    CustomerPlan,
    PlannedAction,
)
from dealerbot.store.audit import AuditPart
from dealerbot.store.schema import dumps


def _customer_fields(plan: CustomerPlan | None) -> dict[str, str]:
    """A contract's customer as audit fields (its number, or the new customer's values)."""
    if plan is None:
        return {}
    return {"customer_no": plan.customer_no or ("新建" if plan.mode == "new" else ""), **plan.values}


class LedgerPart(AuditPart):
    """The re-key ledger: planned DMS writes, their states as a re-key claims, writes, verifies or fails"""

    @staticmethod
    def _action(row: Any) -> Action:
        return Action(
            kind=row["kind"], natural_key=row["natural_key"], new_values=json.loads(row["new_values"]),
            old_values=json.loads(row["old_values"]), contract_no=row["contract_no"] or "",
            customer=CustomerPlan.from_dict(json.loads(row["customer"])), conflict=bool(row["conflict"]),
            note=row["note"] or "", id=row["id"], state=row["state"], needs_approval=bool(row["needs_approval"]),
            stored_checksum=row["checksum"], plan_checksum=row["plan_checksum"],
            plan_values=json.loads(row["plan_values"]), reviewed_by=row["reviewed_by"], review_note=row["review_note"],
            run_id=row["run_id"], attempts=row["attempts"], customer_submitted=row["customer_submitted_at"] is not None,
            submitted=row["submitted_at"] is not None, result_customer_no=row["result_customer_no"],
            failure_code=row["failure_code"], failure_reason=row["failure_reason"], evidence_dir=row["evidence_dir"],
            flow=row["flow"],
        )

    def action(self, action_id: int) -> Action | None:
        """One action by id, or None."""
        t = self.tables["actions"]
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(self._mine(t), t.c.id == action_id)).mappings().first()
        return self._action(row) if row else None

    def actions(
        self, states: Iterable[str] | None = None, natural_key: str | None = None, run_id: str | None = None,
        flow: str | None = None,
    ) -> list[Action]:
        """Actions (in the given states, of one order, last taken by one run, of one flow: every
        flow's when None), oldest first."""
        t = self.tables["actions"]
        q = select(t).where(self._mine(t)).order_by(t.c.id)
        if flow is not None:
            q = q.where(t.c.flow == flow)
        if states is not None:
            q = q.where(t.c.state.in_(list(states)))
        if natural_key is not None:
            q = q.where(t.c.natural_key == natural_key)
        if run_id is not None:
            q = q.where(t.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [self._action(r) for r in conn.execute(q).mappings()]

    def latest_actions(self, flow: str = ORDERS_FLOW) -> dict[str, Action]:
        """The newest action of every OEM order (natural key of ``flow``) that has one."""
        t = self.tables["actions"]
        newest = (select(func.max(t.c.id)).where(self._mine(t), t.c.flow == flow)
                  .group_by(t.c.natural_key).scalar_subquery())
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=1000).execute(select(t).where(t.c.id.in_(newest))).mappings()
            return {r["natural_key"]: self._action(r) for r in rows}

    def written_contracts(self) -> dict[str, dict[str, Any]]:
        """What dealerbot last wrote for each OEM order (actions that reached the DMS, whatever
        happened next): the contract no, its values as written and when; newer than a scrape
        taken before it."""
        t = self.tables["actions"]
        q = select(t).where(self._mine(t), t.c.flow == ORDERS_FLOW, t.c.written_at.is_not(None),
                            t.c.contract_no.is_not(None)).order_by(t.c.id)
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=1000).execute(q).mappings():
                customer = CustomerPlan.from_dict(json.loads(r["customer"]))
                values = json.loads(r["new_values"])
                no = r["result_customer_no"] or customer.customer_no
                if no:
                    values["customer_no"] = no
                out[r["natural_key"]] = {"contract_no": r["contract_no"], "values": values, "written_at": r["written_at"]}
        return out

    def created_customers(self) -> list[dict[str, Any]]:
        """The DMS customers dealerbot created (their number and the values typed)."""
        t = self.tables["actions"]
        q = select(t.c.customer, t.c.result_customer_no).where(self._mine(t), t.c.flow == ORDERS_FLOW,
                                                                t.c.result_customer_no.is_not(None))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        out = []
        for customer, no in rows:
            plan = CustomerPlan.from_dict(json.loads(customer))
            if plan.mode == "new":
                out.append({**plan.values, "customer_no": no})
        return out

    def save_plan(
        self,
        supersede: Sequence[int],
        new: Sequence[tuple[PlannedAction, bool]],
        sync_rows: Sequence[dict[str, Any]],
        new_state: dict[int, str] | None = None,
        dropped: Sequence[tuple[Action, str]] = (),
    ) -> dict[str, int]:
        """Store one reconciliation in one transaction: close the open actions in ``supersede``
        (state ``superseded``), add each ``(action, needs_approval)`` of ``new`` (``planned``, or
        ``approved`` by policy when it needs no approval), and upsert ``sync_rows`` (their
        ``action_id`` is filled in for new actions of the same order). Each ``(action, reason)``
        of ``dropped`` (a person's approval superseded) gets an ``approval_dropped`` row in the
        audit trail with the reason. Returns the new ids by natural key.

        Raises:
            sqlalchemy.exc.IntegrityError: a second open action for one order (never planned).
        """
        t, st = self.tables["actions"], self.tables["order_sync"]
        now = datetime.now()
        ids: dict[str, int] = {}
        with self.engine.begin() as conn:
            if supersede:
                conn.execute(
                    update(t).where(self._mine(t), t.c.id.in_(list(supersede)),
                                    t.c.state.in_(SUPERSEDABLE))
                    .values(state="superseded", updated_at=now)
                )
            for action, reason in dropped:
                self._audit(conn, None, "reconcile", action, "approval_dropped", action.contract_no, {}, {}, reason)
            for plan, needs_approval in new:
                result = conn.execute(t.insert().values(
                    flow=plan.flow, kind=plan.kind, natural_key=plan.natural_key, contract_no=plan.contract_no or None,
                    customer=dumps(plan.customer.as_dict()), new_values=dumps(plan.new_values),
                    old_values=dumps(plan.old_values), checksum=plan.checksum(), plan_checksum=plan.checksum(),
                    plan_values=dumps(plan.new_values),
                    state="planned" if needs_approval else "approved", needs_approval=needs_approval,
                    conflict=plan.conflict, note=plan.note, planned_at=now, updated_at=now,
                    reviewed_by=None if needs_approval else POLICY_REVIEWER, reviewed_at=None if needs_approval else now,
                    attempts=0, store=self.code,
                ))
                key = result.inserted_primary_key
                assert key is not None  # a single-row INSERT always has its key
                ids[plan.natural_key] = int(key[0])
            rows = [dict(r, action_id=ids.get(r["oem_order_no"], r.get("action_id")), reconciled_at=now, store=self.code)
                    for r in sync_rows]
            for start in range(0, len(rows), 500):
                conn.execute(self._upsert(st, ["store", "oem_order_no"]), rows[start:start + 500])
        return ids

    def has_plan(self) -> bool:
        """Whether reconciliation has ever run on this store."""
        t = self.tables["order_sync"]
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.oem_order_no).where(self._mine(t)).limit(1)).first() is not None

    def sync_state(self) -> dict[str, dict[str, Any]]:
        """Each OEM order's last reconciliation (class, reason, changes, agreed base values)."""
        t = self.tables["order_sync"]
        with self.engine.connect() as conn:
            return {
                r["oem_order_no"]: {**r, "base": json.loads(r["base"]), "changes": json.loads(r["changes"])}
                for r in conn.execution_options(yield_per=1000).execute(select(t).where(self._mine(t))).mappings()
            }

    def claim(self, action_id: int, run_id: str, from_states: Sequence[str] = CLAIMABLE, from_run: str | None = None) -> bool:
        """Take an action for ``run_id`` (compare-and-set): True when this run now owns it.

        From ``approved`` it moves to ``in_progress``; an ``in_progress``/``written`` action of a
        run that ended without finishing is taken over where it stands (``from_run`` names it).
        """
        t = self.tables["actions"]
        q = update(t).where(self._mine(t), t.c.id == action_id, t.c.state.in_(list(from_states)))
        if from_run is not None:
            q = q.where(t.c.run_id == from_run)
        values: dict[str, Any] = {"run_id": run_id, "updated_at": datetime.now(), "attempts": t.c.attempts + 1}
        if "approved" in from_states:
            values["state"] = case((t.c.state == "approved", "in_progress"), else_=t.c.state)
        with self.engine.begin() as conn:
            return conn.execute(q.values(**values)).rowcount == 1

    def abandoned_actions(self, flow: str | None = None) -> list[Action]:
        """Actions (of ``flow``; every flow's when None) left ``in_progress`` or ``written`` by
        runs that are no longer running."""
        t, r = self.tables["actions"], self.tables["runs"]
        running = select(r.c.run_id).where(r.c.status == "running")
        q = select(t).where(
            self._mine(t), t.c.state.in_(IN_FLIGHT), (t.c.run_id.is_(None)) | (t.c.run_id.not_in(running))
        ).order_by(t.c.id)
        if flow is not None:
            q = q.where(t.c.flow == flow)
        with self.engine.connect() as conn:
            return [self._action(row) for row in conn.execute(q).mappings()]

    def mark(self, action_id: int, run_id: str, **stamps: bool) -> None:
        """Note a step about to happen, before it happens: ``customer_submitted`` or
        ``submitted`` (a submit may have reached the DMS: from now on, search before any retry)."""
        t = self.tables["actions"]
        now = datetime.now()
        values: dict[str, Any] = {f"{k}_at": now for k, on in stamps.items() if on}
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action_id, t.c.run_id == run_id).values(updated_at=now, **values))

    def record_customer(self, action: Action, run_id: str, customer_no: str, created: bool, actor: str) -> None:
        """The contract's customer exists in the DMS now (created by this run, or found)."""
        t = self.tables["actions"]
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action.id, t.c.run_id == run_id).values(
                result_customer_no=customer_no, updated_at=datetime.now()))
            self._audit(conn, run_id, actor, action, "create_customer" if created else "found_customer", customer_no,
                        {}, action.customer.values if created else {}, "" if created else "DMS中已有该证件号码的客户，未重复新建")

    def record_written(
        self, action: Action, run_id: str, contract_no: str, actor: str, found: bool = False,
        old_values: dict[str, str] | None = None,
    ) -> None:
        """The DMS saved the contract (or it was found saved after a crash): state ``written``."""
        t = self.tables["actions"]
        now = datetime.now()
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action.id, t.c.run_id == run_id).values(
                state="written", contract_no=contract_no, written_at=now, updated_at=now))
            old = action.old_values if old_values is None else old_values
            self._audit(conn, run_id, actor, action, action.kind, contract_no, old,
                        {k: v for k, v in action.new_values.items() if old.get(k, "") != v},
                        "在DMS中找到已保存的记录（上次运行在记录前中断）" if found else "")

    def record_verified(self, action: Action, run_id: str, contract_no: str) -> None:
        """Read back equal to what was planned: state ``verified``; for the orders flow the values
        become the base both sides agree on."""
        t, st = self.tables["actions"], self.tables["order_sync"]
        now = datetime.now()
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action.id, t.c.run_id == run_id).values(
                state="verified", verified_at=now, updated_at=now, failure_code=None, failure_reason=None))
            if action.flow != ORDERS_FLOW:
                return
            row = conn.execute(select(st.c.base).where(self._mine(st), st.c.oem_order_no == action.natural_key)).first()
            # Both sides agree now: the DMS holds what was written, the OEM what was planned
            # from it (they differ where a reviewer edited the value).
            written = {f: {"oem": action.plan_values.get(f, v), "dms": v} for f, v in action.new_values.items()}
            before = json.loads(row.base) if row else {}
            if self._reverses(conn, action) is not None:
                # A rollback's write restored the DMS, the OEM did not move: each field keeps
                # the OEM side of its base (rule in dealerbot.rekey.reconcile's docstring).
                written = {f: {"oem": (before.get(f) or {}).get("oem", v), "dms": v} for f, v in action.new_values.items()}
            base = {**before, **written}
            conn.execute(self._upsert(st, ["store", "oem_order_no"], keep=["reconcile_class", "reason", "changes", "action_id"]), [{
                "store": self.code, "oem_order_no": action.natural_key, "contract_no": contract_no, "reconcile_class": "in_sync", "reason": "",
                "changes": "[]", "base": dumps(base), "action_id": action.id, "reconciled_at": now,
            }])

    def record_failed(self, action: Action, run_id: str, code: str, reason: str, evidence_dir: str | None = None) -> None:
        """The DMS refused the record, or the read-back differs: state ``failed`` with the reason
        (a person decides in the next review workbook)."""
        t = self.tables["actions"]
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action.id, t.c.run_id == run_id).values(
                state="failed", failure_code=code, failure_reason=reason, evidence_dir=evidence_dir,
                updated_at=datetime.now()))

    def review(self, decisions: Sequence[dict[str, Any]], actor: str) -> list[int]:
        """Apply reviewed workbook rows in one transaction, each only if the action is still as
        exported (same checksum, awaiting review). Returns the ids that did not match (nothing is
        applied then).

        Each decision: ``id``, ``checksum`` (as exported), ``decision`` (approve | skip), and for
        edited rows ``new_values``/``customer`` (the new content) and ``note``.
        """
        t = self.tables["actions"]
        now = datetime.now()
        stale: list[int] = []
        with self.engine.begin() as conn:
            for decision in decisions:
                row = conn.execute(select(t).where(self._mine(t), t.c.id == decision["id"])).mappings().first()
                if row is None or row["checksum"] != decision["checksum"] or row["state"] not in AWAITING_REVIEW:
                    stale.append(decision["id"])
            if stale:
                return stale
            for decision in decisions:
                action = self._action(conn.execute(select(t).where(self._mine(t), t.c.id == decision["id"])).mappings().one())
                values: dict[str, Any] = {"reviewed_by": actor, "reviewed_at": now, "updated_at": now,
                                          "review_note": decision.get("note") or None}
                event = "skip"
                if decision["decision"] == "approve":
                    event = "approve"
                    values.update(state="approved", failure_code=None, failure_reason=None)
                    if decision.get("new_values") is not None:
                        event = "approve_edited"
                        customer = decision.get("customer") or action.customer
                        values.update(
                            new_values=dumps(decision["new_values"]), customer=dumps(customer.as_dict()),
                            note=decision.get("plan_note", action.note),
                            checksum=PlannedAction(action.kind, action.natural_key, decision["new_values"], action.old_values,
                                                   action.contract_no, customer).checksum(),
                        )
                else:
                    values["state"] = "skipped"
                conn.execute(update(t).where(self._mine(t), t.c.id == action.id).values(**values))
                before = {**action.new_values, **_customer_fields(action.customer)}
                after = {**(decision.get("new_values") or {}), **_customer_fields(decision.get("customer"))}
                self._audit(conn, None, actor, action, event, action.contract_no,
                            {k: v for k, v in before.items() if k in after and after[k] != v},
                            {k: v for k, v in after.items() if before.get(k) != v}, decision.get("note") or "")
        return []

    def save_rollback(
        self, run_id: str, actor: str, reversals: Sequence[dict[str, Any]], supersede: Sequence[Action] = (),
        dropped: Sequence[tuple[Action, str]] = (),
    ) -> dict[str, int]:
        """Store a rollback of ``run_id`` in one transaction (:mod:`dealerbot.rekey.rollback`):
        close the open actions in ``supersede`` (``superseded``; each of ``dropped``, a person's
        approval, gets an ``approval_dropped`` audit row with its reason), add each reversal's
        ``action`` (a :class:`PlannedAction`, or None for a contract with only conflicts) as
        ``planned`` for a person's approval, and mark each in the audit trail (``run_id``: the run
        rolled back; ``target``, ``old``, ``new``, ``note`` as given). Returns the new action
        ids by natural key.

        Raises:
            dealerbot.errors.RollbackRefused: the run was rolled back meanwhile (nothing stored).
            sqlalchemy.exc.IntegrityError: a second open action for one order (nothing stored).
        """
        from dealerbot.errors import RollbackRefused

        t, audit = self.tables["actions"], self.tables["audit"]
        now = datetime.now()
        ids: dict[str, int] = {}
        with self.engine.begin() as conn:
            done = select(audit.c.id).where(self._mine(audit), audit.c.run_id == run_id,
                                            audit.c.event.in_([ROLLBACK_PLANNED, ROLLBACK_CONFLICT])).limit(1)
            if conn.execute(done).first() is not None:
                raise RollbackRefused(f"运行 {run_id} 已计划过回滚，未重复计划 (already rolled back)")
            if supersede:
                conn.execute(update(t).where(self._mine(t), t.c.id.in_([a.id for a in supersede]), t.c.state.in_(SUPERSEDABLE))
                             .values(state="superseded", updated_at=now))
            for action, reason in dropped:
                self._audit(conn, None, actor, action, "approval_dropped", action.contract_no, {}, {}, reason)
            for r in reversals:
                plan: PlannedAction | None = r["action"]
                if plan is None:
                    conn.execute(audit.insert().values(
                        at=now, run_id=run_id, actor=actor, action_id=None, event=ROLLBACK_CONFLICT, target=r["target"],
                        natural_key=r["natural_key"], old_values=dumps(r["old"]), new_values=dumps(r["new"]),
                        note=r["note"], store=self.code))
                    continue
                result = conn.execute(t.insert().values(
                    kind=plan.kind, natural_key=plan.natural_key, contract_no=plan.contract_no or None,
                    customer=dumps(plan.customer.as_dict()), new_values=dumps(plan.new_values),
                    old_values=dumps(plan.old_values), checksum=plan.checksum(), plan_checksum=plan.checksum(),
                    plan_values=dumps(plan.new_values), state="planned", needs_approval=True, conflict=plan.conflict,
                    note=plan.note, planned_at=now, updated_at=now, attempts=0, store=self.code,
                ))
                key = result.inserted_primary_key
                assert key is not None  # a single-row INSERT always has its key
                ids[plan.natural_key] = int(key[0])
                conn.execute(audit.insert().values(
                    at=now, run_id=run_id, actor=actor, action_id=ids[plan.natural_key], event=ROLLBACK_PLANNED,
                    target=r["target"], natural_key=plan.natural_key, old_values=dumps(r["old"]),
                    new_values=dumps(r["new"]), note=r["note"], store=self.code))
        return ids

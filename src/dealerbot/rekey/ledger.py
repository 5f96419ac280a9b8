"""The re-key ledger's vocabulary: planned actions, their states, their checksum, the policy.

Every write dealerbot makes in the DMS is first a planned action in the store (table
``actions``) and moves along one state machine, one store transaction per step::

    planned --approve--> approved --claim--> in_progress --saved--> written --read back--> verified
       |  \\--skip--> skipped            |                      \\--mismatch--> failed
       |                                 \\--DMS refused (business)--> failed --approve--> approved
       \\--data changed before it ran--> superseded

    in_progress / written after a crash: the next run searches the DMS first (never a blind
    resubmit), then goes on from where the record stands.

Every action belongs to a flow (:mod:`dealerbot.flows`; the OEM-order -> DMS-contract re-key is
the flow :data:`ORDERS_FLOW`): the states and the store's functions are the same for every flow.

At most one action per OEM order (per natural key of a flow) is open (planned, approved, in_progress, written or failed):
the store's unique index makes a second "create" for the same order impossible. The values to
write are kept as the text typed into the DMS form; :func:`checksum` covers everything a
reviewer approves, so that a workbook exported before the data changed is refused on import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from dealerbot.errors import ConfigError

ORDERS_FLOW = "orders"  # the flow of the OEM-order -> DMS-contract re-key (every action made before flows)
ActionKind = Literal["create_contract", "update_contract", "cancel_contract"]
ACTION_KINDS: tuple[str, ...] = ("create_contract", "update_contract", "cancel_contract")
KIND_TEXT = {"create_contract": "新建合同", "update_contract": "更新合同", "cancel_contract": "取消合同"}

STATES = ("planned", "approved", "in_progress", "written", "verified", "failed", "skipped", "superseded")
OPEN_STATES = ("planned", "approved", "in_progress", "written", "failed")
AWAITING_REVIEW = ("planned", "failed")  # a person decides what happens next
# The transitions the store applies (store/ledger.py), by the states they start from:
SUPERSEDABLE = ("planned", "approved", "failed")  # -> superseded: a newer plan for the order replaces it
CLAIMABLE = ("approved",)  # -> in_progress: a re-key run claims it
IN_FLIGHT = ("in_progress", "written")  # left so by a run that ended: the next re-key resumes it
# review decisions apply to AWAITING_REVIEW only: -> approved, or -> skipped
STATE_TEXT = {
    "planned": "待审核", "approved": "已批准待写入", "in_progress": "写入中", "written": "已写入待核对",
    "verified": "已写入并核对", "failed": "失败", "skipped": "已跳过", "superseded": "已作废（数据已变化）",
}
POLICY_REVIEWER = "policy"  # reviewed_by of an action approved by [rekey] policy, not by a person
# How the note of an action replacing one a person approved starts (a plan changed under it):
# the workbook, the console and the message after a sync say it with what changed.
REAPPROVAL = "原已审核"
# A run rolled back (dealerbot.rekey.rollback): its reverse actions are ordinary actions, each
# marked by an append-only audit row of this event (run_id: the run rolled back, action_id: the
# reverse action); a contract with only conflicts gets a ROLLBACK_CONFLICT row instead.
ROLLBACK_PLANNED = "rollback_planned"
ROLLBACK_CONFLICT = "rollback_conflict"
ROLLBACK_EVENTS = (ROLLBACK_PLANNED, ROLLBACK_CONFLICT)
CustomerMode = Literal["existing", "new", "ambiguous", "none"]
NEW_CUSTOMER = "新建"  # what a reviewer types in the 客户编号 cell to have a customer created


@dataclass(frozen=True)
class CustomerPlan:
    """Which DMS customer a new contract gets.

    ``existing``: ``customer_no`` names one; ``new``: one is created from ``values``;
    ``ambiguous``: several match (``candidates``) and a person must choose; ``none``: not needed
    (updates).
    """

    mode: CustomerMode = "none"
    customer_no: str = ""
    values: dict[str, str] = field(default_factory=dict)
    candidates: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "customer_no": self.customer_no, "values": dict(self.values),
                "candidates": list(self.candidates)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerPlan:
        return cls(data.get("mode", "none"), data.get("customer_no", ""), dict(data.get("values") or {}),
                   tuple(data.get("candidates") or ()))


@dataclass(frozen=True)
class PlannedAction:
    """One write to make in the DMS, with the exact text to type.

    ``new_values`` is the contract as it should be after the write (every mapped field);
    ``old_values`` the contract as the DMS had it when planned (empty for a creation).
    """

    kind: ActionKind
    natural_key: str  # the OEM order no
    new_values: dict[str, str]
    old_values: dict[str, str] = field(default_factory=dict)
    contract_no: str = ""
    customer: CustomerPlan = field(default_factory=CustomerPlan)
    conflict: bool = False
    note: str = ""
    flow: str = ORDERS_FLOW  # not in the checksum: one flow's actions are only ever compared among themselves

    @property
    def changes(self) -> dict[str, tuple[str, str]]:
        """Field -> (old, new) for what the write changes."""
        return {
            k: (self.old_values.get(k, ""), v) for k, v in self.new_values.items() if self.old_values.get(k, "") != v
        }

    def checksum(self) -> str:
        """A digest of everything a reviewer approves (kind, target, customer, values)."""
        return checksum(self.kind, self.natural_key, self.contract_no, self.customer, self.new_values, self.old_values)


def checksum(
    kind: str, natural_key: str, contract_no: str, customer: CustomerPlan,
    new_values: dict[str, str], old_values: dict[str, str],
) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of an action's content."""
    body = json.dumps(
        [kind, natural_key, contract_no or "", customer.as_dict(), new_values, old_values],
        ensure_ascii=False, sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Action(PlannedAction):
    """A planned action as the store holds it."""

    id: int = 0
    state: str = "planned"
    needs_approval: bool = True
    stored_checksum: str = ""  # of the content as it stands (after a reviewer's edits)
    plan_checksum: str = ""  # of the content as reconciliation planned it
    plan_values: dict[str, str] = field(default_factory=dict)  # new_values as planned, before any edit
    reviewed_by: str | None = None
    review_note: str | None = None
    run_id: str | None = None
    attempts: int = 0
    customer_submitted: bool = False
    submitted: bool = False
    result_customer_no: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    evidence_dir: str | None = None


def approved_by_person(action: Action) -> bool:
    """Whether ``action`` is approved (not yet taken by a re-key) by a person's review, not by
    the policy: superseding it drops that person's decision, which must be said."""
    return action.state == "approved" and action.reviewed_by not in (None, POLICY_REVIEWER)


@dataclass(frozen=True)
class Policy:
    """Which action kinds need a person's approval, and which the bot may write at all.

    Defaults: creations and cancellations wait for approval, updates go straight through;
    cancellations are not written unless ``cancel_contract`` is listed in ``enabled``.
    Conflicts always wait for approval.
    """

    approval_required: frozenset[str] = frozenset({"create_contract", "cancel_contract"})
    enabled: frozenset[str] = frozenset({"create_contract", "update_contract"})
    # An update that changes only these fields needs no approval (the status moving on, a VIN
    # allocated); one that changes others (a model, a delivery date...) waits for a person.
    auto_update_fields: frozenset[str] = frozenset({"status", "vin"})

    @classmethod
    def of(cls, approval_required: Iterable[str], enabled: Iterable[str],
           auto_update_fields: Iterable[str] = ("status", "vin"), kinds: Iterable[str] = ACTION_KINDS,
           where: str = "[rekey]") -> Policy:
        """Build from config lists; ``kinds`` are the flow's action kinds (the re-key's by
        default), ``where`` names the settings' section in the message.

        Raises:
            ConfigError: an unknown action kind (names it and the known ones).
        """
        approval, allowed = frozenset(approval_required), frozenset(enabled)
        known = tuple(kinds)
        unknown = sorted((approval | allowed) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown action kind(s) {unknown}; known: {', '.join(known)}")
        return cls(approval, allowed, frozenset(auto_update_fields))

    def needs_approval(self, action: PlannedAction) -> bool:
        """Whether a person must approve ``action`` before it is written."""
        if action.conflict or action.customer.mode == "ambiguous" or action.kind in self.approval_required:
            return True
        return action.kind == "update_contract" and not set(action.changes) <= self.auto_update_fields

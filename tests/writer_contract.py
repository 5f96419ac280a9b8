"""The writer contract: the exactly-once rules of the re-key, as one suite of cases that runs
against any DMS writer (issue #21).

A *case* is an ``async def case(dms: ContractDms)``: it asks the DMS side for approved actions,
plants a fault, runs the re-key (possibly killed at a named step, then run again) and checks the
outcome a person cares about: what the DMS holds (each record exactly once, with the planned
values), how many submits reached it, and the ledger (states, failure codes and reasons, one
audit row per write). Two kinds of DMS side implement :class:`ContractDms`:

* :class:`FakeHarness` (``tests/unit/test_writer_contract.py``): :class:`FakeDms`, an in-memory
  DMS writer with injectable faults, driven by the real engine (:class:`dealerbot.rekey.Rekeyer`,
  :func:`dealerbot.rekey.write_actions`) on a real SQLite store; a kill is the exception
  :class:`Killed` raised at a failpoint, the run then recorded interrupted (what the next process's
  ``close_abandoned_runs`` does) and the engine run again on the same store. Every case, in
  milliseconds.
* the web and desktop writers against the sandbox (``tests/integration/test_writer_contract.py``),
  for the (case, writer) pairs no existing integration test already proves: :data:`PROVEN` names
  the existing test of each other pair (checked to exist by the unit suite).

The fake lives here, among the test helpers, not in ``dealerbot``: it stands in for a DMS only to
prove the engine's rules; an integrator's own writer is proven against their own portal (see
docs/testing.md, "The writer contract").
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from dealerbot.errors import PortalUnavailable, RecordRejected
from dealerbot.failpoints import Failpoints
from dealerbot.ledger import Action, CustomerPlan, PlannedAction, Policy
from dealerbot.rekey import Rekeyer, Submitted, pending_actions, write_actions
from dealerbot.store import Store

# -- faults ---------------------------------------------------------------------------------------

# What a DMS does to one record's save (by OEM order no; customer faults by ID number):
CONTRACT_FAULTS = (
    "refuse",               # a field error: nothing stored, the DMS's message
    "store_otherwise",      # answered 保存成功, stored with another colour
    "lose_save",            # answered with a contract number, nothing stored
    "unknown_after_save",   # stored, then no clear answer (a slow save, a session lost on the way)
    "unknown_before_save",  # no clear answer, nothing stored (the first submit only)
    "raise_after_save",     # stored, then the writer raised a retryable system failure
    "raise_before_save",    # the writer raised before anything was stored (the first submit only)
)
CUSTOMER_FAULTS = ("customer_refuse", "customer_store_otherwise", "customer_unknown_after_save")
ONCE = {"unknown_before_save", "raise_before_save"}  # the DMS works again on the next submit
OTHER_COLOUR = "DMS默认色"


class Killed(BaseException):
    """The process "dies" at a failpoint: a BaseException, so no ``except Exception`` of the
    engine or the writer cleans anything up (as after a SIGKILL)."""


class KillAt(Failpoints):
    """Failpoints that raise :class:`Killed` at the N-th pass through ``name`` (``"name:N"``)
    instead of sending SIGKILL, so a test kills and resumes the engine in one process."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        name, _, nth = spec.partition(":")
        self.name, self.nth, self.passes = name, int(nth or 1), 0

    def hit(self, name: str) -> None:
        if name != self.name:
            return
        self.passes += 1
        if self.passes == self.nth:
            raise Killed(name)


# -- the fake DMS -----------------------------------------------------------------------------------


@dataclass
class FakeDms:
    """An in-memory DMS behind the :class:`dealerbot.rekey.DmsWriter` interface: contracts and
    customers in dicts, numbered as a DMS would, every call logged (``calls``), every submit
    counted by record (``submits``: OEM order no, or ID number for a new customer), and the
    faults of :data:`CONTRACT_FAULTS` / :data:`CUSTOMER_FAULTS` planted by record."""

    contracts: dict[str, dict[str, str]] = field(default_factory=dict)  # contract no -> fields (with customer_no)
    customers: dict[str, dict[str, str]] = field(default_factory=dict)  # customer no -> name, mobile, id_number, address
    faults: dict[str, str] = field(default_factory=dict)  # record -> fault kind
    calls: list[tuple[str, str]] = field(default_factory=list)
    submits: Counter[str] = field(default_factory=Counter)
    evidence_labels: list[str] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # seeding (what the DMS holds before the run: staff's records)
    def add_customer(self, values: dict[str, str]) -> str:
        no = f"KH9{next(self._numbers):05d}"
        self.customers[no] = dict(values)
        return no

    def add_contract(self, customer_no: str, values: dict[str, str]) -> str:
        no = f"HT9{next(self._numbers):05d}"
        self.contracts[no] = {**values, "customer_no": customer_no}
        return no

    def _fault(self, record: str) -> str | None:
        kind = self.faults.get(record)
        if kind in ONCE:
            del self.faults[record]
        return kind

    # the writer interface
    async def find_contracts(self, oem_order_no: str) -> list[dict[str, str]]:
        self.calls.append(("find_contracts", oem_order_no))
        want = oem_order_no.strip().upper()
        return [{**c, "contract_no": no} for no, c in self.contracts.items() if c.get("oem_order_no", "").upper() == want]

    async def read_contract(self, contract_no: str) -> dict[str, str] | None:
        self.calls.append(("read_contract", contract_no))
        c = self.contracts.get(contract_no)
        return None if c is None else {**c, "contract_no": contract_no}

    async def find_customer(self, id_number: str) -> str | None:
        self.calls.append(("find_customer", id_number))
        found = [no for no, c in self.customers.items() if c["id_number"].upper() == id_number.upper()]
        return found[0] if len(found) == 1 else None

    async def read_customer(self, customer_no: str) -> dict[str, str] | None:
        self.calls.append(("read_customer", customer_no))
        c = self.customers.get(customer_no)
        return None if c is None else dict(c)

    async def create_customer(self, values: dict[str, str], dry_run: bool) -> Submitted:
        idn = values["id_number"]
        self.calls.append(("create_customer", idn))
        if dry_run:
            return Submitted("rehearsed")
        self.submits[idn] += 1
        kind = self._fault(idn)
        if kind == "customer_refuse":
            return Submitted("refused", message="证件号码：格式不正确")
        stored = dict(values, address=values["address"][:2]) if kind == "customer_store_otherwise" else dict(values)
        no = self.add_customer(stored)
        return Submitted("unknown", message="no answer") if kind == "customer_unknown_after_save" else Submitted("saved", no)

    async def create_contract(self, customer_no: str | None, values: dict[str, str], dry_run: bool) -> Submitted:
        order = values["oem_order_no"]
        self.calls.append(("create_contract", order))
        if dry_run:
            return Submitted("rehearsed")
        if customer_no not in self.customers:  # as the web form's 选择客户 pop-up says it
            raise RecordRejected("dms_customer_missing", f"DMS的选择客户中查不到客户 {customer_no}")
        return self._save(order, lambda v: self.add_contract(customer_no, v), values)

    async def update_contract(self, contract_no: str, changes: dict[str, str], dry_run: bool) -> Submitted:
        order = self.contracts[contract_no].get("oem_order_no", contract_no)
        self.calls.append(("update_contract", order))
        if dry_run:
            return Submitted("rehearsed")

        def store(v: dict[str, str]) -> str:
            self.contracts[contract_no].update(v)
            return contract_no

        return self._save(order, store, changes)

    def _save(self, order: str, store: Callable[[dict[str, str]], str], values: dict[str, str]) -> Submitted:
        self.submits[order] += 1
        kind = self._fault(order)
        if kind == "refuse":
            return Submitted("refused", message="VIN：该VIN已存在于合同 HT0000001")
        if kind == "unknown_before_save":
            return Submitted("unknown", message="no answer")
        if kind == "raise_before_save":
            raise PortalUnavailable(f"fake dms: the save of {order} got no answer (nothing stored)")
        if kind == "lose_save":
            return Submitted("saved", f"HT8{next(self._numbers):05d}")
        no = store(dict(values, color=OTHER_COLOUR) if kind == "store_otherwise" and "color" in values else values)
        if kind == "unknown_after_save":
            return Submitted("unknown", message="no answer")
        if kind == "raise_after_save":
            raise PortalUnavailable(f"fake dms: the save of {order} got no answer (stored)")
        return Submitted("saved", no)

    async def evidence(self, label: str) -> str | None:
        self.evidence_labels.append(label)
        return f"evidence/{label}"


# -- the DMS side a case talks to -------------------------------------------------------------------


class ContractDms(Protocol):
    """What a contract case needs from a DMS and its writer."""

    name: str
    store: Store
    kill_points: tuple[str, ...]  # the failpoints this side can be killed at

    async def approve(self, new: int = 0, existing: int = 0, shared: bool = False, updates: int = 0) -> list[Action]:
        """Approved actions: creations for ``new`` new customers (``shared``: each with two
        orders) and ``existing`` known ones, and ``updates`` status updates."""
        ...

    def fault(self, kind: str, action: Action) -> None:
        """Plant ``kind`` on ``action``'s record (contract faults) or its new customer."""
        ...

    def seed_contract(self, action: Action) -> str:
        """Key ``action``'s contract (planned values, its existing customer) in the DMS as a
        clerk would; its number."""
        ...

    def seed_customer(self, action: Action) -> str:
        """Key ``action``'s new customer in the DMS as a clerk would; the customer no."""
        ...

    async def rekey(self, kill_at: str | None = None) -> dict[str, int] | None:
        """One re-key run; its counts, or None when it was killed at ``kill_at`` (``name:N``)."""
        ...

    def contracts(self, order_no: str) -> list[dict[str, Any]]:
        """The DMS's contracts of an OEM order (ground truth)."""
        ...

    def customers(self, id_number: str) -> list[dict[str, Any]]:
        """The DMS's customers with an ID number (ground truth)."""
        ...

    def submits(self, record: str) -> int | None:
        """How many submits of a record reached the DMS, or None when this DMS cannot tell."""
        ...


def _person(i: int) -> dict[str, str]:
    return {"name": f"测试客户{i}", "mobile": f"1380000{i:04d}", "id_number": f"11010119900101{i:03d}X",
            "address": f"北京市东城区测试路{i}号"}


def _contract(order: str, i: int, status: str = "待配车") -> dict[str, str]:
    return {"model_code": "DMS-GX7L", "color": "星云白", "vin": f"LGXFAKE{i:010d}", "price": f"{189800 + i}.00",
            "deposit": "5000.00", "delivery_date": "2026-12-20", "oem_order_no": order, "status": status}


class FakeHarness:
    """:class:`ContractDms` on :class:`FakeDms` and a real SQLite store, in one process."""

    name = "fake"
    kill_points = ("rekey.before_submit", "rekey.after_submit", "rekey.before_read_back",
                   "rekey.after_customer", "rekey.customer_recorded")

    def __init__(self, store: Store, dms: FakeDms | None = None, retries: int = 2) -> None:
        self.store = store
        self.dms = dms or FakeDms()
        self.retries = retries
        self._orders = itertools.count(1)

    async def approve(self, new: int = 0, existing: int = 0, shared: bool = False, updates: int = 0) -> list[Action]:
        planned: list[PlannedAction] = []
        for _ in range(new):
            n = next(self._orders)
            plan = CustomerPlan("new", values=_person(n))
            for _ in range(2 if shared else 1):
                order = f"XS2026{next(self._orders):06d}"
                planned.append(PlannedAction("create_contract", order, _contract(order, n), customer=plan))
        for _ in range(existing):
            n = next(self._orders)
            no = self.dms.add_customer(_person(n))
            order = f"XS2026{n:06d}"
            planned.append(PlannedAction("create_contract", order, _contract(order, n), customer=CustomerPlan("existing", no)))
        for _ in range(updates):
            n = next(self._orders)
            order = f"XS2026{n:06d}"
            before = _contract(order, n, "已配车")
            no = self.dms.add_contract(self.dms.add_customer(_person(n)), before)
            planned.append(PlannedAction("update_contract", order, dict(before, status="运输中"), before, contract_no=no))
        ids = self.store.save_plan([], [(a, False) for a in planned], [])  # approved (by the policy)
        return [a for a in (self.store.action(ids[p.natural_key]) for p in planned) if a is not None]

    def fault(self, kind: str, action: Action) -> None:
        record = action.customer.values["id_number"] if kind in CUSTOMER_FAULTS else action.natural_key
        self.dms.faults[record] = kind

    def seed_contract(self, action: Action) -> str:
        return self.dms.add_contract(action.customer.customer_no, action.new_values)

    def seed_customer(self, action: Action) -> str:
        return self.dms.add_customer(action.customer.values)

    async def rekey(self, kill_at: str | None = None) -> dict[str, int] | None:
        return await rekey_run(self.store, self.dms, KillAt(kill_at) if kill_at else None, self.retries)

    def contracts(self, order_no: str) -> list[dict[str, Any]]:
        return [{**c, "contract_no": no} for no, c in self.dms.contracts.items() if c.get("oem_order_no") == order_no]

    def customers(self, id_number: str) -> list[dict[str, Any]]:
        return [{**c, "customer_no": no} for no, c in self.dms.customers.items() if c["id_number"] == id_number]

    def submits(self, record: str) -> int | None:
        return self.dms.submits[record]


async def rekey_run(store: Store, writer: Any, failpoints: Failpoints | None = None, retries: int = 2) -> dict[str, int] | None:
    """What ``dealerbot run dms-rekey`` does around the engine, in this process: a run in the
    store, the actions left by ended runs and the approved ones, written through ``writer``.
    Killed at a failpoint: the run is recorded interrupted (as the next process would find it)
    and None returned."""
    run_id = f"contract-{uuid.uuid4().hex[:8]}"
    store.start_run(run_id, "dms-rekey", "manual")
    counts: dict[str, int] = {}
    rekeyer = Rekeyer(store, run_id, "dms-rekey", counts, logger, failpoints=failpoints)
    todo = pending_actions(store, Policy().enabled, log=logger)
    try:
        await write_actions(store, rekeyer, [writer], todo, retries, 0.0, logger)
    except BaseExceptionGroup as group:
        if group.subgroup(Killed) is None:
            raise
        store.finish_run(run_id, "interrupted", counts, error="killed at a failpoint")
        return None
    store.finish_run(run_id, "succeeded", counts)
    return counts


# -- checks shared by the cases ------------------------------------------------------------------


def writes_in_audit(store: Store, action: Action) -> list[dict[str, Any]]:
    """The audit rows that say the action's record was written (or found written) in the DMS."""
    return [r for r in store.audit_rows(10_000, natural_key=action.natural_key) if r["event"] == action.kind]


def assert_written_once(dms: ContractDms, actions: list[Action]) -> None:
    """Every action verified; its order's contract in the DMS exactly once, with the planned
    values and customer; one audit row of the write; each new person a customer exactly once."""
    for planned in actions:
        a = dms.store.action(planned.id)
        assert a is not None and a.state == "verified", (planned.natural_key, a and a.state, a and a.failure_reason)
        [c] = dms.contracts(a.natural_key)
        assert str(c["contract_no"]) == a.contract_no
        for f in ("color", "vin", "status", "model_code"):
            assert str(c[f]) == a.new_values[f], (a.natural_key, f, c[f], a.new_values[f])
        if a.kind == "create_contract":
            assert c["customer_no"] == (a.result_customer_no or a.customer.customer_no)
        if a.customer.mode == "new":
            [person] = dms.customers(a.customer.values["id_number"])
            assert person["customer_no"] == a.result_customer_no
        assert len(writes_in_audit(dms.store, a)) == 1, writes_in_audit(dms.store, a)


def assert_failed(dms: ContractDms, action: Action, codes: tuple[str, ...], *words: str) -> Action:
    a = dms.store.action(action.id)
    assert a is not None and a.state == "failed" and a.failure_code in codes, (a and a.state, a and a.failure_code,
                                                                                 a and a.failure_reason)
    for w in words:
        assert w in (a.failure_reason or ""), (w, a.failure_reason)
    assert a.evidence_dir, "a failure keeps the writer's evidence"
    return a


async def assert_second_run_writes_nothing(dms: ContractDms, actions: list[Action]) -> None:
    before = {a.natural_key: (dms.submits(a.natural_key), dms.contracts(a.natural_key)) for a in actions}
    counts = await dms.rekey()
    assert counts is not None and counts.get("done", 0) == 0, counts
    assert {a.natural_key: (dms.submits(a.natural_key), dms.contracts(a.natural_key)) for a in actions} == before


# -- the cases ------------------------------------------------------------------------------------


async def case_one_submit_each(dms: ContractDms) -> None:
    """One submit per record: a new person with two orders is created once and used for both;
    each contract once; a second run submits nothing."""
    chosen = await dms.approve(new=2, shared=True, existing=1, updates=1)
    counts = await dms.rekey()
    assert counts is not None and counts["verified"] == len(chosen) == counts["done"], counts
    assert counts["customers_created"] == 2 and counts["found"] == 0, counts
    assert_written_once(dms, chosen)
    for a in chosen:
        assert dms.submits(a.natural_key) in (1, None)
        if a.customer.mode == "new":
            assert dms.submits(a.customer.values["id_number"]) in (1, None)
    await assert_second_run_writes_nothing(dms, chosen)


async def case_search_before_create(dms: ContractDms) -> None:
    """The DMS already holds the contract of an approved order (a clerk keyed it, or a run died
    between the save and the record), and the new customer of another: found, recorded,
    checked, never created again."""
    chosen = await dms.approve(new=2, existing=1)
    person, keyed = chosen[0], chosen[2]
    dms.seed_contract(keyed)
    customer_no = dms.seed_customer(person)
    counts = await dms.rekey()
    assert counts is not None and counts["verified"] == 3 and counts["found"] == 1, counts
    assert counts["customers_created"] == 1, counts
    assert_written_once(dms, chosen)
    assert dms.submits(keyed.natural_key) in (0, None)
    assert dms.submits(person.customer.values["id_number"]) in (0, None)
    assert dms.store.action(person.id).result_customer_no == customer_no  # type: ignore[union-attr]
    [row] = writes_in_audit(dms.store, keyed)
    assert "找到已保存的记录" in row["note"]


async def case_read_back_difference_is_listed_failure(dms: ContractDms) -> None:
    """Read back after save: a DMS that stores otherwise than typed (another value; nothing at
    all; a new customer's address cut) fails exactly those records with both values named for a
    person, never verified and never submitted again; the others are verified."""
    chosen = await dms.approve(new=1, existing=3)
    person, other, lost, fine = chosen
    dms.fault("customer_store_otherwise", person)
    dms.fault("store_otherwise", other)
    dms.fault("lose_save", lost)
    counts = await dms.rekey()
    assert counts is not None and counts["failed"] == 3 and counts["verified"] == 1, counts
    address = person.customer.values["address"]
    assert_failed(dms, person, ("customer_read_back_mismatch",), f"地址 计划「{address}」，DMS为「{address[:2]}」")
    assert dms.contracts(person.natural_key) == []  # nothing typed against a customer that read back wrong
    wrong = assert_failed(dms, other, ("read_back_mismatch",), "写入后核对不一致")
    [stored] = dms.contracts(other.natural_key)
    assert any(f"DMS为「{stored[f]}」" in (wrong.failure_reason or "") for f in ("color", "model_code", "price",
                                                                                  "delivery_date")), wrong.failure_reason
    assert_failed(dms, lost, ("read_back_missing",), "找不到")
    assert dms.contracts(lost.natural_key) == []
    for a, record in ((person, person.customer.values["id_number"]), (other, other.natural_key), (lost, lost.natural_key)):
        assert dms.submits(record) in (1, None), (record, dms.submits(record))  # never retried blindly
    assert_written_once(dms, [fine])
    await assert_second_run_writes_nothing(dms, chosen)  # the failed ones wait for a person


async def case_refusal_is_listed(dms: ContractDms) -> None:
    """A refusal (a field error) fails that record only, with the DMS's words and evidence, a
    business failure listed for a person: never resubmitted, never the end of the run."""
    chosen = await dms.approve(new=1, existing=2)
    person, refused, fine = chosen
    dms.fault("customer_refuse", person)
    dms.fault("refuse", refused)
    counts = await dms.rekey()
    assert counts is not None and counts["failed"] == 2 and counts["verified"] == 1, counts
    assert_failed(dms, person, ("dms_refused_customer",), "DMS拒绝新建客户")
    assert_failed(dms, refused, ("dms_refused",), "DMS拒绝保存", "该VIN已存在于合同")
    assert dms.contracts(refused.natural_key) == [] and dms.contracts(person.natural_key) == []
    assert dms.submits(refused.natural_key) in (1, None) and dms.submits(person.customer.values["id_number"]) in (1, None)
    assert_written_once(dms, [fine])
    await assert_second_run_writes_nothing(dms, chosen)


UNCLEAR = ("unknown_after_save", "raise_after_save", "unknown_before_save", "raise_before_save",
           "customer_unknown_after_save")


def unclear_case(kind: str) -> Callable[[ContractDms], Awaitable[None]]:
    """An unclear submit is never repeated blindly: the DMS is searched first; what saved is
    found and checked (one submit); what did not is submitted again only after a search found
    nothing. Either way the record is in the DMS exactly once."""

    async def case(dms: ContractDms) -> None:
        on_customer = kind.startswith("customer_")
        chosen = await dms.approve(new=1, existing=1, updates=0 if on_customer else 1)
        hit = {a.id for a in chosen if (a.customer.mode == "new") == on_customer}
        for a in chosen:
            if a.id in hit:
                dms.fault(kind, a)
        counts = await dms.rekey()
        assert counts is not None and counts["verified"] == len(chosen) and counts.get("unfinished", 0) == 0, counts
        assert_written_once(dms, chosen)
        for a in chosen:
            want = 2 if a.id in hit and "before_save" in kind else 1
            assert dms.submits(a.natural_key) in (want, None), (kind, a.natural_key, dms.submits(a.natural_key), want)
            if a.customer.mode == "new":
                assert dms.submits(a.customer.values["id_number"]) in (1, None)
            if isinstance(dms, FakeHarness):
                _assert_searched_between_submits(dms.dms, a)
        if on_customer:  # the customer that saved was found by the search, not made again
            events = [r["event"] for a in chosen for r in dms.store.audit_rows(100, natural_key=a.natural_key)]
            assert events.count("found_customer") == 1 and "create_customer" not in events, events
        elif "after_save" in kind:
            assert counts["found"] >= 1, counts  # what saved was found by the search, not made again

    case.__name__ = f"case_unclear_{kind}"
    return case


def _assert_searched_between_submits(fake: FakeDms, action: Action) -> None:
    """Before every submit after the first, the record was looked for in the DMS."""
    submit = "create_contract" if action.kind == "create_contract" else "update_contract"
    search = "find_contracts" if action.kind == "create_contract" else "read_contract"
    mine = [m for m, key in fake.calls if key in (action.natural_key, action.contract_no) and m in (submit, search)]
    for i, m in enumerate(mine):
        if m == submit and submit in mine[:i]:
            assert mine[i - 1] == search, (action.natural_key, mine)


def kill_case(point: str, nth: int = 1) -> Callable[[ContractDms], Awaitable[None]]:
    """Resume after a kill at the named step: killed at its ``nth`` pass (the first record to
    reach it; ``nth`` 4: the status update after three creations), the re-key run again on the
    same store writes every record exactly once, each new customer once, one audit row per
    write, nothing left in progress."""

    async def case(dms: ContractDms) -> None:
        customers_first = point in ("rekey.after_customer", "rekey.customer_recorded")
        chosen = await dms.approve(new=2, existing=1, updates=0 if customers_first else 1)
        killed = await dms.rekey(kill_at=f"{point}:{nth}")
        assert killed is None, f"the run was not killed at {point}:{nth}"
        states = [dms.store.action(a.id).state for a in chosen]  # type: ignore[union-attr]
        assert states.count("verified") < len(chosen), states
        again = await dms.rekey()
        assert again is not None and again["verified"] == len(chosen) - states.count("verified"), (again, states)
        assert_written_once(dms, chosen)
        for a in chosen:
            assert dms.submits(a.natural_key) in (0, 1, None)  # 0: found after the kill
            if a.customer.mode == "new":
                assert dms.submits(a.customer.values["id_number"]) in (1, None)
        assert not dms.store.actions(["in_progress", "written"])
        if point == "rekey.after_submit":
            found = [r for a in chosen for r in writes_in_audit(dms.store, a) if "找到已保存的记录" in r["note"]]
            assert len(found) == 1, found  # the save the kill hid was found, not made again

    case.__name__ = f"case_killed_at_{point.split('.')[-1]}"
    return case


KILL_POINTS = FakeHarness.kill_points
UPDATE_KILL_POINTS = ("rekey.before_submit", "rekey.after_submit", "rekey.before_read_back")
CASES: dict[str, Callable[[ContractDms], Awaitable[None]]] = {
    "one_submit_each": case_one_submit_each,
    "search_before_create": case_search_before_create,
    "read_back_difference_is_listed_failure": case_read_back_difference_is_listed_failure,
    "refusal_is_listed": case_refusal_is_listed,
    **{f"unclear_{k}": unclear_case(k) for k in UNCLEAR},
    **{f"killed_at_{p.split('.')[-1]}": kill_case(p) for p in KILL_POINTS},
    **{f"killed_at_{p.split('.')[-1]}_of_an_update": kill_case(p, 4) for p in UPDATE_KILL_POINTS},
}

# The (case, real writer) pairs an existing integration test already proves through Chromium or
# Xvfb: the contract suite names them instead of proving them a second time (the unit suite
# checks each named test exists). The pairs not listed here run in
# tests/integration/test_writer_contract.py, or are listed in docs/testing.md as not reachable
# through the sandbox.
PROVEN: dict[tuple[str, str], str] = {
    ("one_submit_each", "web"):
        "test_rekey.py::test_sync_writes_exactly_the_expected_contracts_and_a_second_sync_writes_nothing",
    ("one_submit_each", "desktop"):
        "test_desktop.py::test_twenty_contracts_typed_into_the_desktop_client_are_in_the_dms_exactly_once",
    ("search_before_create", "web"): "test_rekey.py::test_killed_at_any_step_then_rerun_no_duplicate_nothing_missing",
    ("search_before_create", "desktop"): "test_desktop.py::test_killed_mid_run_then_rerun_no_duplicate",
    ("read_back_difference_is_listed_failure", "web"):
        "test_readback.py::test_every_write_fault_ends_as_a_listed_read_back_failure_and_nothing_else_does",
    ("refusal_is_listed", "web"): "test_rekey.py::test_a_dms_refusal_fails_that_record_only_and_is_listed",
    ("refusal_is_listed", "desktop"):
        "test_desktop.py::test_a_refusal_in_the_client_is_listed_with_its_reason_and_a_screenshot",
    ("unclear_unknown_after_save", "web"): "test_rekey.py::test_a_slow_dms_save_is_never_submitted_twice",
    ("killed_at_after_submit", "web"): "test_rekey.py::test_killed_at_any_step_then_rerun_no_duplicate_nothing_missing",
    ("killed_at_after_customer", "web"):
        "test_rekey.py::test_killed_at_any_step_then_rerun_no_duplicate_nothing_missing",
    ("killed_at_after_submit", "desktop"): "test_desktop.py::test_killed_mid_run_then_rerun_no_duplicate",
}

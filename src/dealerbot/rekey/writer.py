"""Writing planned actions into a DMS exactly once, whatever DMS it is (web or desktop).

A DMS is reached through a :class:`DmsWriter` (the web DMS's page objects, later a desktop
client's driver). :class:`Rekeyer` walks each approved action along the ledger's states
(:mod:`dealerbot.rekey.ledger`) with these rules:

* **search before create**: before a contract (or customer) is created, the DMS is searched
  for it (OEM order no; ID number), so a run that died between "saved" and "recorded" never
  yields a second one: what is found is recorded and checked instead;
* **mark before submit**: the ledger notes "submitted" before the click that may save a
  contract ("customer_submitted" before a new customer's save), a record of how far the action
  got. A resumed *create* does not rely on it: it searches the DMS first whether or not the mark
  is there (search before create). Only a resumed *update* consults it: finding the contract
  already holding the planned values, a marked update takes them for its own save that died
  before being recorded (recorded as written, one audit row, counted "found"); an unmarked one
  was never sent, so someone else made the change, and it is only read back;
* **never a blind retry of a submit**: when the DMS gives no clear answer, the bot searches;
  finding nothing, it leaves the action for a later attempt, which searches again first;
* **read back after save**: the record is read from the DMS and compared field by field; a
  difference fails the action with evidence (both values named for a person), and so does a
  contract the DMS said it saved but does not hold (never saved again); a new customer is
  read back too (also when found after our own submit gave no clear answer or a run died after
  it), and a difference fails every action of that person in the run (the customer is
  recorded as made, so it is never made twice);
* **optimistic updates**: an update is written only if the DMS still holds the values it held
  when planned; otherwise the action fails ("changed in the DMS since") for a person.

A DMS refusal (a field error) is a business failure of that action (reason kept, shown in the
next review workbook), never a crash of the run.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dealerbot.data.mapping import CONTRACT_HEADERS, CUSTOMER_HEADERS
from dealerbot.errors import CircuitOpen, ConfigError, RecordRejected, StopRequested, SystemFailure, UnknownOutcome
from dealerbot.failpoints import Failpoints
from dealerbot.private_files import private_dir, private_file
from dealerbot.rekey.ledger import IN_FLIGHT, KIND_TEXT, ORDERS_FLOW, Action
from dealerbot.retries import with_retries

if TYPE_CHECKING:
    from loguru import Logger

    from dealerbot.running.context import BotContext
    from dealerbot.store import Store

REKEY_COUNTS = ("actions", "done", "verified", "found", "customers_created", "failed", "unfinished", "rehearsed")
# A dry run's account of what it would have written, one JSON object a line, in the run's folder
# (masked; read by the console's run page): see :func:`rehearsal_entry` and :func:`read_rehearsal`.
REHEARSAL_FILE = "rehearsal.jsonl"


def rehearsal_entry(action: Action, result: Literal["rehearsed", "would_fail"], reason: str = "") -> dict[str, Any]:
    """What a dry run would have written for ``action``, in the words of the review workbook:
    ``kind`` (新建合同...), ``key`` (the OEM order no), ``contract_no``, ``customer`` (an existing
    customer's number, or the new customer's fields by their Chinese headers), ``values``
    (the contract's filled fields by header; an update: only the changed ones, ``old -> new``),
    ``result`` (``rehearsed`` or ``would_fail``) and ``reason``. Values are as planned (unmasked:
    the caller masks them)."""
    if action.kind == "create_contract":
        customer: dict[str, str] | str = (
            {CUSTOMER_HEADERS.get(f, f): v for f, v in action.customer.values.items()}
            if action.customer.mode == "new" and not action.result_customer_no
            else f"已有客户 {action.result_customer_no or action.customer.customer_no}")
        values = {CONTRACT_HEADERS.get(f, f): v for f, v in action.new_values.items() if v}
    else:
        customer = ""
        values = {CONTRACT_HEADERS.get(f, f): f"{old or '（空）'} → {new}" for f, (old, new) in action.changes.items()}
    return {"kind": KIND_TEXT.get(action.kind, action.kind), "key": action.natural_key, "contract_no": action.contract_no or "",
            "customer": customer, "values": values, "result": result, "reason": reason}


def read_rehearsal(run_dir: Path) -> list[dict[str, Any]]:
    """A dry run's rehearsal entries (see :func:`rehearsal_entry`), in the order rehearsed; []
    when the run kept none (not a dry run, or nothing to write). Lines that do not parse (a run
    killed mid-line) are skipped."""
    path = run_dir / REHEARSAL_FILE
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with suppress(ValueError):
            entries.append(json.loads(line))
    return entries


@dataclass(frozen=True)
class Submitted:
    """The DMS's answer to a create or update.

    ``saved`` (``key``: the new record's number when created; empty when the writer cannot
    tell it: the engine then searches for the record, and one not there fails as missing, never
    saved again), ``refused`` (``message``: the
    DMS's field errors), ``unknown`` (no clear answer: search before anything else) or
    ``rehearsed`` (a dry run filled the form and cancelled).
    """

    result: Literal["saved", "refused", "unknown", "rehearsed"]
    key: str = ""
    message: str = ""


class DmsWriter(Protocol):
    """What the re-key engine needs from a DMS. Reads return form text (see
    :mod:`dealerbot.data.mapping`); every method may raise :class:`SystemFailure`."""

    async def find_contracts(self, oem_order_no: str) -> list[dict[str, str]]:
        """Contracts whose OEM order no is exactly ``oem_order_no`` (with ``contract_no``)."""
        ...

    async def read_contract(self, contract_no: str) -> dict[str, str] | None:
        """A contract's fields (and ``customer_no``), or None when there is none."""
        ...

    async def find_customer(self, id_number: str) -> str | None:
        """The customer no of the one customer with exactly this ID number, or None."""
        ...

    async def read_customer(self, customer_no: str) -> dict[str, str] | None:
        """A customer's ``name``, ``mobile``, ``id_number`` and ``address`` as the DMS holds
        them, or None when there is none (the read-back after creating one)."""
        ...

    async def create_customer(self, values: dict[str, str], dry_run: bool) -> Submitted:
        """Type and save a new customer (or fill and cancel when ``dry_run``)."""
        ...

    async def create_contract(self, customer_no: str | None, values: dict[str, str], dry_run: bool) -> Submitted:
        """Type and save a new contract (``customer_no`` None only in a dry run)."""
        ...

    async def update_contract(self, contract_no: str, changes: dict[str, str], dry_run: bool) -> Submitted:
        """Change the given fields of a contract and save."""
        ...

    async def evidence(self, label: str) -> str | None:
        """Save failure evidence of the writer's screen; the folder, or None."""
        ...


def _differences(planned: dict[str, str], found: dict[str, str], headers: dict[str, str] = CONTRACT_HEADERS) -> list[str]:
    return [
        f"{headers.get(f, f)} 计划「{v}」，DMS为「{found.get(f, '')}」"
        for f, v in planned.items() if found.get(f, "") != v
    ]


def _customer_differences(planned: dict[str, str], found: dict[str, str] | None) -> str | None:
    """Why a customer just created does not read back as typed (None: it does). The DMS may
    upper-case an ID number and trim spaces; anything else is a difference."""
    if found is None:
        return "新建客户后在DMS中找不到该客户"
    norm = {f: str(found.get(f, "")).strip().upper() if f == "id_number" else str(found.get(f, "")).strip() for f in planned}
    want = {f: v.strip().upper() if f == "id_number" else v.strip() for f, v in planned.items()}
    wrong = _differences(want, norm, CUSTOMER_HEADERS)
    return "新建客户后核对不一致：" + "；".join(wrong) if wrong else None


class Rekeyer:
    """Carries actions through the ledger's states for one run (see the module docstring)."""

    def __init__(
        self, store: Store, run_id: str, actor: str, counts: dict[str, int], log: Logger,
        dry_run: bool = False, failpoints: Failpoints | None = None,
        progress: Callable[[], None] | None = None, rehearsal: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.actor = actor
        self.counts = counts
        self.log = log
        self.dry_run = dry_run
        self.failpoints = failpoints or Failpoints()
        self.progress = progress or (lambda: None)
        self.rehearsal = rehearsal or (lambda _entry: None)  # a dry run: told what each action would write
        self._customer_locks: dict[str, asyncio.Lock] = {}
        self._bad_customers: dict[str, str] = {}  # ID number -> why the customer made in this run read back wrong
        for key in REKEY_COUNTS:
            counts.setdefault(key, 0)

    def bump(self, key: str) -> None:
        """Count one more ``key`` (done, found, failed, unfinished, ...) in the run's counts."""
        self.counts[key] = self.counts.get(key, 0) + 1

    async def execute(self, action: Action, w: DmsWriter) -> str:
        """Bring ``action`` (claimed by this run, or any approved one in a dry run) as far as it
        goes; returns its state afterwards (``verified``, ``failed``, or ``rehearsed``).

        Raises:
            UnknownOutcome: no clear answer and nothing found (left for a later attempt).
            SystemFailure: the DMS or the browser failed (the action is left where it stands).
        """
        if self.dry_run:
            try:
                return await self._rehearse(action, w)
            except RecordRejected as rej:  # what the real run would fail on: say so, go on
                self.log.warning("dry run: {} {} would fail: {}", action.kind, action.natural_key, rej.reason)
                self.rehearsal(rehearsal_entry(action, "would_fail", rej.reason))
                self.bump("failed")
                self.bump("done")
                self.progress()
                return "failed"
        try:
            if action.kind == "create_contract":
                state = await self._create(action, w)
            else:
                state = await self._update(action, w)
        except RecordRejected as rej:  # a value the form cannot take (e.g. no such option)
            state = await self._fail(action, w, rej.code, rej.reason)
        self.bump("done")
        self.bump(state)
        self.progress()
        return state

    # -- dry run ---------------------------------------------------------------------------------
    async def _rehearse(self, action: Action, writer: DmsWriter) -> str:
        if action.kind == "create_contract":
            customer_no = action.customer.customer_no or action.result_customer_no
            if action.customer.mode == "new" and not action.result_customer_no:
                await writer.create_customer(action.customer.values, dry_run=True)
                customer_no = None
            await writer.create_contract(customer_no, action.new_values, dry_run=True)
        else:
            changes = {field: new for field, (_, new) in action.changes.items()}
            await writer.update_contract(action.contract_no, changes, dry_run=True)
        self.log.info("dry run: would {} for {}", action.kind, action.natural_key)
        self.rehearsal(rehearsal_entry(action, "rehearsed"))
        self.bump("rehearsed")
        self.bump("done")
        self.progress()
        return "rehearsed"

    # -- create ----------------------------------------------------------------------------------
    async def _create(self, action: Action, writer: DmsWriter) -> str:
        key = action.natural_key
        if action.state == "written" and action.contract_no:
            return await self._read_back(action, writer, action.contract_no)
        existing = await writer.find_contracts(key)
        if existing:
            return await self._adopt(action, writer, existing)
        customer_no = await self._customer(action, writer)
        self.store.mark(action.id, self.run_id, submitted=True)
        self.failpoints.hit("rekey.before_submit")
        result = await writer.create_contract(customer_no, action.new_values, dry_run=False)
        self.failpoints.hit("rekey.after_submit")
        if result.result == "saved" and result.key:
            self.store.record_written(action, self.run_id, result.key, self.actor)
            self.log.info("{}: contract {} saved", key, result.key)
            return await self._read_back(action, writer, result.key)
        if result.result == "refused":
            return await self._fail(action, writer, "dms_refused", f"DMS拒绝保存：{result.message}")
        existing = await writer.find_contracts(key)  # no clear answer (or saved, no number): did it save?
        if result.result == "saved" and len(existing) == 1:  # the writer could not tell its number
            self.store.record_written(action, self.run_id, existing[0]["contract_no"], self.actor)
            return await self._read_back(action, writer, existing[0]["contract_no"])
        if existing:
            return await self._adopt(action, writer, existing)
        if result.result == "saved":  # a clear answer, and nothing there: listed, never saved again
            return await self._fail(action, writer, "read_back_missing", f"DMS答复已保存，但写入后在DMS中找不到厂家订单号 {key} 的合同")
        raise UnknownOutcome(f"dms: no clear answer saving the contract for {key} ({result.message}) and none found")

    async def _adopt(self, action: Action, writer: DmsWriter, existing: list[dict[str, str]]) -> str:
        """The DMS already has a contract for this order: ours from an attempt that died before
        recording it, or keyed by a clerk. Record it and check it."""
        if len(existing) > 1:
            nos = "、".join(c["contract_no"] for c in existing)
            return await self._fail(action, writer, "dms_duplicates", f"DMS中该厂家订单号有多份合同（{nos}），请人工处理")
        contract_no = existing[0]["contract_no"]
        self.log.warning("{}: the DMS already has contract {}; checking it instead of creating another",
                         action.natural_key, contract_no)
        self.store.record_written(action, self.run_id, contract_no, self.actor, found=True)
        self.bump("found")
        return await self._read_back(action, writer, contract_no)

    async def _customer(self, action: Action, writer: DmsWriter) -> str:
        plan = action.customer
        if plan.mode == "existing":
            return plan.customer_no
        if action.result_customer_no:
            return action.result_customer_no
        if plan.mode != "new":
            raise RecordRejected("customer_undecided", "客户尚未确定（匹配不唯一），请在审核工作簿中选择客户")
        idn = plan.values["id_number"]
        lock = self._customer_locks.setdefault(idn, asyncio.Lock())
        async with lock:  # two orders of one new customer in this run: create it once
            if idn in self._bad_customers:
                raise RecordRejected("customer_read_back_mismatch", self._bad_customers[idn])
            found = await writer.find_customer(idn)
            if found:
                self.store.record_customer(action, self.run_id, found, created=False, actor=self.actor)
                if action.customer_submitted:  # maybe made by our own submit of an earlier attempt: check it
                    await self._check_customer(writer, plan.values, found)
                return found
            self.store.mark(action.id, self.run_id, customer_submitted=True)
            result = await writer.create_customer(plan.values, dry_run=False)
            self.failpoints.hit("rekey.after_customer")
            if result.result == "saved" and result.key:
                self.store.record_customer(action, self.run_id, result.key, created=True, actor=self.actor)
                self.bump("customers_created")
                self.failpoints.hit("rekey.customer_recorded")
                await self._check_customer(writer, plan.values, result.key)
                return result.key
            found = await writer.find_customer(idn)  # refused as a duplicate, or no clear answer
            if found:
                self.store.record_customer(action, self.run_id, found, created=False, actor=self.actor)
                if result.result != "refused":  # made by this submit after all: check it
                    await self._check_customer(writer, plan.values, found)
                return found
            if result.result == "refused":
                raise RecordRejected("dms_refused_customer", f"DMS拒绝新建客户：{result.message}")
            raise UnknownOutcome(f"dms: no clear answer saving the customer of {action.natural_key} and none found")

    async def _check_customer(self, writer: DmsWriter, values: dict[str, str], customer_no: str) -> None:
        """Read back a customer our submit made (whatever its answer was).

        Raises:
            RecordRejected: it differs (every order of that person fails in this run).
        """
        wrong = _customer_differences(values, await writer.read_customer(customer_no))
        if wrong:
            self._bad_customers[values["id_number"]] = f"{wrong}（客户 {customer_no}，请在DMS中更正后重新审核）"
            raise RecordRejected("customer_read_back_mismatch", self._bad_customers[values["id_number"]])

    # -- update ----------------------------------------------------------------------------------
    async def _update(self, action: Action, writer: DmsWriter) -> str:
        no = action.contract_no
        if action.state == "written":
            return await self._read_back(action, writer, no)
        current = await writer.read_contract(no)
        if current is None:
            return await self._fail(action, writer, "dms_missing", f"DMS中找不到合同 {no}")
        changes = {f: v for f, v in action.new_values.items() if current.get(f, "") != v}
        if not changes:  # the DMS already holds it (our submit went through before a crash)
            if action.submitted:
                self.store.record_written(action, self.run_id, no, self.actor, found=True, old_values=action.old_values)
                self.bump("found")
            return await self._read_back(action, writer, no)
        moved = [f for f in changes if current.get(f, "") != action.old_values.get(f, "")]
        if moved:
            what = "；".join(
                f"{CONTRACT_HEADERS.get(f, f)} 计划时为「{action.old_values.get(f, '')}」，现在为「{current.get(f, '')}」"
                for f in moved
            )
            return await self._fail(action, writer, "dms_changed", f"DMS中的合同在计划之后被修改过，未覆盖：{what}")
        self.store.mark(action.id, self.run_id, submitted=True)
        self.failpoints.hit("rekey.before_submit")
        result = await writer.update_contract(no, changes, dry_run=False)
        self.failpoints.hit("rekey.after_submit")
        if result.result == "saved":
            self.store.record_written(action, self.run_id, no, self.actor, old_values=current)
            return await self._read_back(action, writer, no)
        if result.result == "refused":
            return await self._fail(action, writer, "dms_refused", f"DMS拒绝保存：{result.message}")
        after = await writer.read_contract(no)
        if after is not None and not _differences(action.new_values, after):
            self.store.record_written(action, self.run_id, no, self.actor, found=True, old_values=current)
            return await self._read_back(action, writer, no, after)
        raise UnknownOutcome(f"dms: no clear answer saving contract {no} for {action.natural_key}")

    # -- read back -------------------------------------------------------------------------------
    async def _read_back(self, action: Action, writer: DmsWriter, contract_no: str, found: dict[str, str] | None = None) -> str:
        self.failpoints.hit("rekey.before_read_back")
        found = found or await writer.read_contract(contract_no)
        if found is None:
            return await self._fail(action, writer, "read_back_missing", f"写入后在DMS中找不到合同 {contract_no}")
        wrong = _differences(action.new_values, found)
        expected_customer = action.result_customer_no or action.customer.customer_no
        if action.kind == "create_contract" and expected_customer and found.get("customer_no") != expected_customer:
            wrong.append(f"客户编号 计划「{expected_customer}」，DMS为「{found.get('customer_no', '')}」")
        if wrong:
            return await self._fail(action, writer, "read_back_mismatch", "写入后核对不一致：" + "；".join(wrong))
        self.store.record_verified(action, self.run_id, contract_no)
        self.log.info("{}: contract {} verified", action.natural_key, contract_no)
        return "verified"

    async def _fail(self, action: Action, writer: DmsWriter, code: str, reason: str) -> str:
        folder = None
        try:
            folder = await writer.evidence(f"{action.natural_key}-{code}")
        except Exception as exc:  # noqa: BLE001 - evidence is best effort, never the failure
            self.log.warning("could not save evidence for {}: {}", action.natural_key, exc)
        self.store.record_failed(action, self.run_id, code, reason, folder)
        self.log.info("{}: {} failed: {}", action.natural_key, action.kind, reason)
        return "failed"


def start_rekey(ctx: BotContext, actor: str) -> tuple[Rekeyer, list[tuple[Action, bool]]]:
    """What a re-key bot (web or desktop) starts from, for the run of ``ctx`` (a BotContext):
    its :class:`Rekeyer` and the actions to write (:func:`pending_actions`); the names and
    addresses about to be typed are marked personal, so every artifact of the run masks them.
    No actions: logged, and the bot has nothing to do.

    The bot must declare ``ledger_writer = True``: its run then holds the store's ledger lock
    (taken by the runner before ``run``) while it lists and writes, so no reconcile changes
    the actions listed here before they are written.

    Raises:
        ConfigError: the bot does not declare ``ledger_writer`` (it would write unguarded).
    """
    if not getattr(ctx.bot, "ledger_writer", False):
        raise ConfigError(f"bot '{ctx.bot.name}' writes the re-key ledger (start_rekey) but does not declare "
                          f"ledger_writer = True: add it to the class, so that planning waits while it writes")
    dry_run = bool(ctx.options.get("dry_run"))
    rehearsal = None
    if dry_run:
        folder = private_dir(ctx.evidence.folder)
        masker = ctx.evidence.masker

        def rehearsal(entry: dict[str, Any]) -> None:  # masked as every artifact of the run
            line = masker(json.dumps(entry, ensure_ascii=False))
            with private_file(folder / REHEARSAL_FILE).open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    rekeyer = Rekeyer(ctx.store, ctx.run_id, actor, ctx.counts, ctx.log, dry_run=dry_run,
                      failpoints=Failpoints.from_env(), progress=ctx.progress, rehearsal=rehearsal)
    todo = pending_actions(ctx.store, ctx.settings.rekey.policy().enabled, include_resumed=not dry_run, log=ctx.log)
    if not todo:
        ctx.log.info("nothing approved to write (see `dealerbot reconcile` and the review workbook)")
    for action, _ in todo:
        ctx.personal(*action.customer.values.values(), action.new_values.get("customer_name"))
    return rekeyer, todo


async def run_rekey(
    ctx: BotContext, open_writers: Callable[[int], AbstractAsyncContextManager[Sequence[DmsWriter]]],
) -> None:
    """The whole of a re-key bot's run (web or desktop, the shipped ones or a dealership's own):
    :func:`start_rekey` for ``ctx``'s bot; with actions to write, ``open_writers(n)`` (``n``:
    how many actions) opens the DMS's writers (pages of a logged-in browser, a desktop client;
    each a :class:`DmsWriter`) and :func:`write_actions` writes the actions through them, with
    the run's retries, backoff, requeue rounds and stop check. Nothing to write: no writer is
    opened.

    Raises:
        as :func:`start_rekey`, ``open_writers`` and :func:`write_actions`.
    """
    rekeyer, todo = start_rekey(ctx, ctx.bot.name)
    if not todo:
        return
    async with open_writers(len(todo)) as writers:
        await write_actions(
            ctx.store, rekeyer, writers, todo, ctx.settings.run.retries, ctx.settings.run.backoff_seconds, ctx.log,
            check_stop=ctx.check_stop, requeue_rounds=ctx.settings.run.requeue_rounds,
        )


def pending_actions(
    store: Store, kinds: frozenset[str], include_resumed: bool = True, log: Logger | None = None,
    flow: str = ORDERS_FLOW,
) -> list[tuple[Action, bool]]:
    """What a run would write for ``flow``, in order, as ``(action, resumed)``: first the actions
    left half-done by runs that ended (unless ``include_resumed`` is false: a dry run), then the
    approved ones of ``kinds``. Approved actions of other kinds are held back (logged)."""
    resume = [(a, True) for a in store.abandoned_actions(flow) if a.kind in kinds] if include_resumed else []
    approved = store.actions(["approved"], flow=flow)
    held = Counter(a.kind for a in approved if a.kind not in kinds)
    if held and log is not None:
        log.warning("approved but not enabled, held back: {} (add them to [rekey] enabled to write them)",
                    ", ".join(f"{n} {k}" for k, n in sorted(held.items())))
    return resume + [(a, False) for a in approved if a.kind in kinds]


async def write_actions(
    store: Store,
    rekeyer: Rekeyer,
    writers: Sequence[DmsWriter],
    todo: list[tuple[Action, bool]],
    retries: int,
    backoff: float,
    log: Logger,
    max_consecutive_failures: int = 3,
    check_stop: Callable[[], None] | None = None,
    requeue_rounds: int = 0,
) -> None:
    """Write ``todo`` (see :func:`pending_actions`), ``len(writers)`` at a time. Each action is
    claimed in the store before it is touched, so two runs never write one action; a resumed
    one is taken over where it stands and searched for first. An action whose write fails with
    a system error (the DMS answered 500, a form's pop-up search failed) is tried again (with
    backoff, searching first) up to ``retries`` times; then it goes to the end of the queue, to
    be tried again after the others (waiting ``backoff * 2**round`` first), up to
    ``requeue_rounds`` times; only then is it left for the next run (still claimed by this run,
    so the next run takes it over and searches first).

    ``check_stop`` is asked before each action is taken: on a shutdown every page finishes the
    action it is on and takes no other (never stopped inside one); then it raises.

    Raises:
        SystemFailure: a failure that retrying cannot help (the screen changed).
        CircuitOpen: ``max_consecutive_failures`` actions in a row used up their attempts (the
            DMS is down); the last failure is its cause.
        StopRequested: from ``check_stop``.
    """
    loop = asyncio.get_running_loop()
    # (action, resumed, requeue round, not before): a requeued action is already this run's
    queue: asyncio.Queue[tuple[Action, bool, int, float]] = asyncio.Queue()
    for action, was_resumed in todo:
        queue.put_nowait((action, was_resumed, 0, 0.0))
    rekeyer.counts["actions"] = rekeyer.counts["expected"] = len(todo)
    rekeyer.progress()
    resumed = sum(1 for _, r in todo if r)
    if resumed:
        log.warning("resuming {} action(s) left unfinished by an earlier run (searching the DMS first)", resumed)
    consecutive = 0

    def stopping() -> bool:
        if check_stop is None:
            return False
        try:
            check_stop()
        except StopRequested:
            return True
        return False

    async def write_one(action: Action, writer: DmsWriter) -> None:
        """One attempt at ``action``, as the store has it now (a retry searches the DMS first)."""
        current = action if rekeyer.dry_run else store.action(action.id)
        assert current is not None
        await rekeyer.execute(current, writer)

    def trying_again(action: Action, exc: BaseException, _retry: int, seconds: float) -> None:
        log.warning("{}: {}; trying again in {:.1f}s (searching the DMS first)", action.natural_key, exc, seconds)

    async def worker(writer: DmsWriter) -> None:
        nonlocal consecutive
        while not queue.empty():
            if stopping():
                return  # the others finish theirs too; the stop is raised once all are done
            action, was_resumed, round_no, not_before = queue.get_nowait()
            if round_no:
                await asyncio.sleep(max(0.0, not_before - loop.time()))
            elif not rekeyer.dry_run:
                if was_resumed:
                    taken = store.claim(action.id, rekeyer.run_id, IN_FLIGHT, from_run=action.run_id)
                else:
                    taken = store.claim(action.id, rekeyer.run_id)
                if not taken:
                    continue  # another run has it
            try:
                await with_retries(action.natural_key, partial(write_one, action, writer), retries, backoff, log=log,
                                   jitter=False, max_backoff=None, rate_limit_factor=1.0,
                                   announce=partial(trying_again, action))
                consecutive = 0
            except SystemFailure as exc:
                if not exc.retryable:
                    raise
                consecutive += 1
                if consecutive >= max_consecutive_failures:
                    rekeyer.bump("unfinished")
                    rekeyer.progress()
                    raise CircuitOpen(
                        f"DMS连续 {consecutive} 条记录多次尝试仍未能写入，本次运行停止，未完成的记录下次继续 "
                        f"({consecutive} actions in a row could not be written into the DMS after {retries + 1} attempts "
                        f"each; the last: {action.natural_key}: {exc})"
                    ) from exc
                if round_no < requeue_rounds:
                    pause = backoff * 2 ** (round_no + 1)
                    log.warning("{}: {} attempts failed ({}); tried again after the others (round {}/{})",
                                action.natural_key, retries + 1, exc, round_no + 1, requeue_rounds)
                    queue.put_nowait((action, was_resumed, round_no + 1, loop.time() + pause))
                    continue
                rekeyer.bump("unfinished")
                rekeyer.progress()
                log.error("{}: left for the next run after {} attempts: {}", action.natural_key,
                          (retries + 1) * (requeue_rounds + 1), exc)

    async with asyncio.TaskGroup() as tg:
        for writer in writers:
            tg.create_task(worker(writer))
    if check_stop is not None and not queue.empty():
        check_stop()  # raises StopRequested: what is left waits for the next run

"""Writing any flow's approved actions into its portal, exactly once: the DMS re-key's discipline
for every portal, a dealership's own included.

A portal is reached through a :class:`LedgerTarget` (page objects on the public API): ``find``
reads what the portal holds for an action's key, ``submit`` fills the form and submits it once.
:class:`LedgerWriter` walks each approved action of the flow along the ledger's states
(:mod:`dealerbot.rekey.ledger`), with the rules of :mod:`dealerbot.rekey.writer`:

* **search before create**: the portal is searched for the key first, on every attempt and
  after a kill (``in_progress``/``written`` actions are taken over and searched for, never
  submitted blindly); a record already there is adopted (recorded as written, ``found``) and
  read back, never made twice;
* **one submit**: the ledger notes "submitted" before the click; an answer that is not clear is
  followed by a search; nothing found leaves the action for a later attempt (which searches first);
* **read back**: the record is found again and compared with what was planned, field by field;
  a difference fails the action for a person with both values named;
* **optimistic updates**: an action with ``old_values`` is written only while the portal still
  holds them;
* a refusal by the portal is a business failure of that action, kept with the portal's words
  (shown in the review workbook), never a crash of the run;
* a dry run searches and fills every form but never submits, and writes what it would do into
  the run's ``rehearsal.jsonl`` (as the re-key does).

A writer bot declares ``ledger_writer = True`` and calls :func:`run_ledger_writer` with its flow's
name and how to open its targets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, cast

from dealerbot.errors import ConfigError, RecordRejected, UnknownOutcome
from dealerbot.failpoints import Failpoints
from dealerbot.flows import Flow
from dealerbot.private_files import private_dir, private_file
from dealerbot.rekey.ledger import Action
from dealerbot.rekey.writer import REHEARSAL_FILE, Rekeyer, Submitted, pending_actions, write_actions

if TYPE_CHECKING:
    from dealerbot.running.context import BotContext


class LedgerTarget(Protocol):
    """What :class:`LedgerWriter` needs from a portal (page objects). Every method may raise
    :class:`~dealerbot.errors.SystemFailure`; a :class:`~dealerbot.errors.RecordRejected`
    fails the one action with its reason."""

    async def find(self, action: Action) -> dict[str, str] | None:
        """What the portal holds for ``action.natural_key``, as text by the field names of
        ``action.new_values`` (None: nothing there)."""
        ...

    async def submit(self, action: Action, dry_run: bool) -> Any:
        """Fill the form with ``action.new_values`` and submit it once (``dry_run``: fill, never
        submit). Returns a :class:`~dealerbot.rekey.writer.Submitted` or a
        :class:`~dealerbot.web.forms.SubmitOutcome` (``result`` saved / refused / unknown,
        ``message`` the portal's words)."""
        ...


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def differences(flow: Flow, planned: dict[str, str], found: dict[str, Any]) -> list[str]:
    """Each planned field the portal holds otherwise, in words (``车架号 计划「…」，门户为「…」``)."""
    headers = {f.name: f.header for f in flow.source.fields}
    if flow.target is not None:
        headers.update({f.name: f.header for f in flow.target.fields})
    return [f"{headers.get(k, k)} 计划「{v}」，门户为「{_text(found.get(k))}」"
            for k, v in planned.items() if _text(found.get(k)) != _text(v)]


class LedgerWriter(Rekeyer):
    """Carries one flow's actions through the ledger's states for one run (see the module
    docstring); runs under :func:`dealerbot.rekey.writer.write_actions` like the DMS re-key."""

    flow: Flow

    def with_flow(self, flow: Flow) -> LedgerWriter:
        self.flow = flow
        return self

    async def execute(self, action: Action, w: Any) -> str:
        """Bring ``action`` as far as it goes; returns ``verified``, ``failed`` or ``rehearsed``.

        Raises:
            UnknownOutcome: no clear answer and nothing found (left for a later attempt).
            SystemFailure: the portal or the browser failed (the action is left where it stands).
        """
        target = cast(LedgerTarget, w)
        if self.dry_run:
            return await self._rehearse_flow(action, target)
        try:
            state = await self._write(action, target)
        except RecordRejected as rej:
            state = await self._fail_flow(action, w, rej.code, rej.reason)
        self.bump("done")
        self.bump(state)
        self.progress()
        return state

    def _entry(self, action: Action, result: str, reason: str = "") -> dict[str, Any]:
        values = ({k: f"{o or '（空）'} → {n}" for k, (o, n) in action.changes.items()} if action.old_values
                  else {k: v for k, v in action.new_values.items() if v})
        return {"kind": self.flow.kind_text(action.kind), "key": action.natural_key, "contract_no": action.contract_no or "",
                "customer": "", "values": values, "result": result, "reason": reason, "flow": self.flow.name}

    async def _rehearse_flow(self, action: Action, target: LedgerTarget) -> str:
        try:
            found = await target.find(action)
            if found is not None and not action.old_values:
                wrong = differences(self.flow, action.new_values, found)
                reason = "门户中已有该记录" + (f"，但与计划不同：{'；'.join(wrong)}" if wrong else "（不会重复写入）")
                self.rehearsal(self._entry(action, "would_fail" if wrong else "rehearsed", reason))
                state = "failed" if wrong else "rehearsed"
            else:
                await target.submit(action, True)
                self.rehearsal(self._entry(action, "rehearsed"))
                state = "rehearsed"
        except RecordRejected as rej:
            self.log.warning("dry run: {} {} would fail: {}", action.kind, action.natural_key, rej.reason)
            self.rehearsal(self._entry(action, "would_fail", rej.reason))
            state = "failed"
        self.bump(state)
        self.bump("done")
        self.progress()
        return state

    async def _write(self, action: Action, target: LedgerTarget) -> str:
        key = action.natural_key
        found = await target.find(action)  # search first, on every attempt
        if action.state == "written":
            return await self._check(action, target, found)
        if found is not None:
            wrong = differences(self.flow, action.new_values, found)
            if not wrong:  # ours from an attempt that died before recording it, or keyed by a person
                self.store.record_written(action, self.run_id, action.contract_no or key, self.actor, found=True,
                                          old_values=action.old_values)
                self.bump("found")
                return await self._check(action, target, found)
            if not action.old_values:
                return await self._fail_flow(action, target, "target_differs",
                                             "门户中已有该记录且与计划不同，未重复新建：" + "；".join(wrong))
            moved = [f for f in action.new_values
                     if _text(found.get(f)) != _text(action.new_values[f]) and _text(found.get(f)) != _text(action.old_values.get(f))]
            if moved:
                return await self._fail_flow(action, target, "target_changed",
                                             "门户中的记录在计划之后被修改过，未覆盖：" + "；".join(differences(self.flow, action.old_values, found)))
        elif action.old_values:
            return await self._fail_flow(action, target, "target_missing", f"门户中找不到 {key}，无法更新")
        self.store.mark(action.id, self.run_id, submitted=True)
        self.failpoints.hit("flow.before_submit")
        result = await target.submit(action, False)
        self.failpoints.hit("flow.after_submit")
        outcome, message = str(getattr(result, "result", "unknown")), str(getattr(result, "message", "") or "")
        if outcome == "saved":
            number = str(getattr(result, "key", "") or "") or action.contract_no or key
            self.store.record_written(action, self.run_id, number, self.actor, old_values=action.old_values)
            return await self._check(action, target)
        if outcome == "refused":
            return await self._fail_flow(action, target, "portal_refused", f"门户拒绝保存：{message}")
        found = await target.find(action)  # no clear answer: did it save?
        if found is not None and not differences(self.flow, action.new_values, found):
            self.store.record_written(action, self.run_id, action.contract_no or key, self.actor, found=True,
                                      old_values=action.old_values)
            return await self._check(action, target, found)
        raise UnknownOutcome(f"{self.flow.name}: no clear answer saving {key} ({message}) and it is not there")

    async def _check(self, action: Action, target: LedgerTarget, found: dict[str, str] | None = None) -> str:
        """Read back: the portal holds what was planned -> ``verified``; else ``failed``."""
        self.failpoints.hit("flow.before_read_back")
        found = found if found is not None else await target.find(action)
        if found is None:
            return await self._fail_flow(action, target, "read_back_missing", f"写入后在门户中找不到 {action.natural_key}")
        wrong = differences(self.flow, action.new_values, found)
        if wrong:
            return await self._fail_flow(action, target, "read_back_mismatch", "写入后核对不一致：" + "；".join(wrong))
        self.store.record_verified(action, self.run_id, action.contract_no or action.natural_key)
        self.log.info("{}: {} verified", action.natural_key, self.flow.name)
        return "verified"

    async def _fail_flow(self, action: Action, target: Any, code: str, reason: str) -> str:
        folder = None
        evidence = getattr(target, "evidence", None)
        if evidence is not None:
            try:
                folder = await evidence(f"{action.natural_key}-{code}")
            except Exception as exc:  # noqa: BLE001 - evidence is best effort, never the failure
                self.log.warning("could not save evidence for {}: {}", action.natural_key, exc)
        self.store.record_failed(action, self.run_id, code, reason, folder)
        self.log.info("{}: {} failed: {}", action.natural_key, action.kind, reason)
        return "failed"


def start_ledger_writer(ctx: BotContext, flow_name: str) -> tuple[LedgerWriter, list[tuple[Action, bool]]]:
    """What a flow's writer bot starts from: its :class:`LedgerWriter` and the flow's actions to
    write (resumed ones first, then approved ones of the kinds the settings let it write); the
    source record type's personal values about to be typed are masked in every artifact.

    Raises:
        ConfigError: the bot does not declare ``ledger_writer = True``, or no such flow.
    """
    from dealerbot.flows.registry import flow_policy, get_flow

    if not getattr(ctx.bot, "ledger_writer", False):
        raise ConfigError(f"bot '{ctx.bot.name}' writes the ledger (run_ledger_writer) but does not declare "
                          f"ledger_writer = True: add it to the class, so that planning waits while it writes")
    flow = get_flow(flow_name, ctx.settings)
    policy = flow_policy(flow, ctx.settings)
    dry_run = bool(ctx.options.get("dry_run"))
    rehearsal = None
    if dry_run:
        folder = private_dir(ctx.evidence.folder)
        masker = ctx.evidence.masker

        def rehearsal(entry: dict[str, Any]) -> None:  # masked as every artifact of the run
            with private_file(folder / REHEARSAL_FILE).open("a", encoding="utf-8") as fh:
                fh.write(masker(json.dumps(entry, ensure_ascii=False)) + "\n")

    writer = LedgerWriter(ctx.store, ctx.run_id, ctx.bot.name, ctx.counts, ctx.log, dry_run=dry_run,
                          failpoints=Failpoints.from_env(), progress=ctx.progress, rehearsal=rehearsal).with_flow(flow)
    todo = pending_actions(ctx.store, policy.enabled, include_resumed=not dry_run, log=ctx.log, flow=flow.name)
    if not todo:
        ctx.log.info("flow {}: nothing approved to write", flow.name)
    personal = set(flow.source.personal_fields) | set(flow.target.personal_fields if flow.target else ())
    for action, _ in todo:
        ctx.personal(*(v for k, v in action.new_values.items() if k in personal))
    return writer, todo


async def run_ledger_writer(
    ctx: BotContext, flow_name: str, open_targets: Callable[[int], AbstractAsyncContextManager[Sequence[Any]]],
) -> None:
    """The whole run of a flow's writer bot: :func:`start_ledger_writer`; with actions to write,
    ``open_targets(n)`` opens the portal's :class:`LedgerTarget` (s) and they are written through
    :func:`dealerbot.rekey.writer.write_actions` (the run's retries, backoff, requeue rounds,
    stop check; a run of failures in a row stops it). Nothing to write: nothing is opened.

    Raises:
        as :func:`start_ledger_writer`, ``open_targets`` and ``write_actions``.
    """
    writer, todo = start_ledger_writer(ctx, flow_name)
    if not todo:
        return
    async with open_targets(len(todo)) as targets:
        await write_actions(
            ctx.store, writer, targets, todo, ctx.settings.run.retries,
            ctx.settings.run.backoff_seconds, ctx.log, check_stop=ctx.check_stop,
            requeue_rounds=ctx.settings.run.requeue_rounds,
        )


__all__ = ["LedgerTarget", "LedgerWriter", "Submitted", "differences", "run_ledger_writer", "start_ledger_writer"]

"""``dealerbot sync``: the whole daily chain, for the CLI, the timetable and the console.

For every flow switched on (``[flows] enabled``; ``--flow NAME``: that one, :mod:`dealerbot.flows`)::

    read each read bot the flows need, once (orders: the OEM portal's orders and customers, the
      DMS's customers and contracts) -> plan each flow -> write each flow's approved actions
      (its writer bot: dms-rekey for orders) -> plan each again (what is left) -> the review workbook

A reading step that fails stops the chain before anything is planned or written from
incomplete data; the workbook is still written so staff see the failure.

Each reconcile waits while a re-key run writes for the store (the ledger lock,
:class:`dealerbot.store.LedgerLock`: a sync firing while the operator writes from the console
plans only once that re-key has finished). The steps take the lock one after the other, never
nested, so a sync never waits for itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dealerbot.config import Settings
from dealerbot.data.dictionary import load_dictionary
from dealerbot.errors import DealerbotError
from dealerbot.flows.orders import READ_BOTS, WRITE_BOTS
from dealerbot.rekey.ledger import ORDERS_FLOW
from dealerbot.rekey.reconcile import ReconcileReport
from dealerbot.running.login_help import LoginHelp
from dealerbot.running.notify import Notifier, attention_message, review_message
from dealerbot.running.runner import RunResult, run_bot
from dealerbot.store import RunRecord, Store

SYNC_RECORD = "sync"  # the bot name of a sync firing that never became runs (skipped, could not start)
MANUAL_JOB = "sync"  # the job name of a sync's runs not started by the timetable (`dealerbot sync`)
CONSOLE_JOB = "console-sync"  # ... started from the console's 一键同步 (a group's: queued under it too)
__all__ = ["CONSOLE_JOB", "MANUAL_JOB", "READ_BOTS", "SYNC_RECORD", "WRITE_BOTS", "SyncResult", "last_sync", "sync"]

RunStep = Callable[[str], Any]  # bot name -> an async callable running it (the CLI adds a progress bar)


@dataclass
class SyncResult:
    """What one sync did."""

    runs: list[RunResult] = field(default_factory=list)
    plan: ReconcileReport | None = None  # before writing (the orders flow's; else the first flow's)
    left: ReconcileReport | None = None  # after writing (likewise)
    plans: dict[str, ReconcileReport] = field(default_factory=dict)  # each flow's, by flow name, before writing
    lefts: dict[str, ReconcileReport] = field(default_factory=dict)  # ... after writing
    titles: dict[str, str] = field(default_factory=dict)  # each flow's Chinese title, by name
    attention: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # each flow's (key, why) for a person
    waiting: dict[str, list[str]] = field(default_factory=dict)  # each flow's own list of what waits (Flow.waiting)
    workbook_path: Path | None = None
    stopped: str | None = None  # why the chain stopped early

    @property
    def ok(self) -> bool:
        return self.stopped is None and all(r.ok for r in self.runs)


async def sync(
    settings: Settings,
    *,
    full: bool = False,
    dry_run: bool = False,
    headed: bool = False,
    trigger: str = "manual",
    passwords: Mapping[str, str] | None = None,
    progress: Callable[[str], Callable[[dict[str, int]], None] | None] | None = None,
    on_step: Callable[[str], None] | None = None,
    job: str | None = None,
    stop: asyncio.Event | None = None,
    engine_job: int | None = None,
    workbook: bool = False,
    on_start: Callable[[str, Path], None] | None = None,
    login_help: LoginHelp | None = None,
    flow: str | None = None,
) -> SyncResult:
    """Run the chain (see the module docstring) for every enabled flow (``flow``: that one). Run failures are in the result, not raised.
    ``on_start`` is told each step's run id as it starts (as :func:`run_bot`'s); ``login_help``
    answers a login's code for each step's run (as :func:`run_bot`'s: the console's box).
    A ``stop`` set between steps ends the chain there; approvals left waiting for a person are
    notified (``[notify] on`` review; the message names the workbook when one was written).
    With ``workbook`` (the timetable's and a group's workers' syncs) the review workbook is written into ``out/`` however the chain ended; a
    workbook that cannot be written is logged, not raised (the CLI writes its own).

    Every run of the chain is recorded under ``job`` (the timetable's job; :data:`MANUAL_JOB`
    when none is given), so that the chain can be found again (:func:`last_sync`).

    Raises:
        ConfigError: the dictionary, the flows, a policy or the store is unusable (before any run).
    """
    job = job or MANUAL_JOB
    result = await _chain(settings, full=full, dry_run=dry_run, headed=headed, trigger=trigger, passwords=passwords,
                          progress=progress, on_step=on_step, job=job, stop=stop, engine_job=engine_job,
                          on_start=on_start, login_help=login_help, flow=flow)
    if workbook:
        from loguru import logger

        try:
            result.workbook_path = write_review_workbook(settings)
        except (DealerbotError, OSError, ValueError) as exc:
            logger.error("the review workbook could not be written: {}", exc)
    if result.lefts:
        dropped = [d for name in result.lefts for d in (result.plans[name].dropped + result.lefts[name].dropped)]
        waiting = sum(r.awaiting_approval for r in result.lefts.values())
        attention = {n: rows for n, rows in result.attention.items() if rows}  # for a person besides approvals
        listed = {n: lines for n, lines in result.waiting.items() if lines}  # a flow's own list of what waits
        if waiting or dropped or attention or listed:  # after the workbook: the message names it
            name = result.workbook_path.name if result.workbook_path else None
            message = review_message(waiting, name, dropped, settings.console.public_url)
            if attention:
                message = attention_message(message, {result.titles.get(n, n): rows for n, rows in attention.items()},
                                            bool(waiting or dropped))
            if len(result.lefts) > 1 or ORDERS_FLOW not in result.lefts:  # say which flow waits for what
                per_flow = "；".join(f"{result.titles.get(n, n)} {r.awaiting_approval} 条"
                                     for n, r in result.lefts.items() if r.awaiting_approval)
                if per_flow:
                    message = replace(message, body=f"按流程：{per_flow}\n{message.body}".rstrip())
            if not waiting and not dropped and not attention:
                message = replace(message, title="dealerbot：" + "、".join(result.titles.get(n, n) for n in listed) + " 有待处理项")
            for n, lines in listed.items():  # a flow's own list (deliveries: by deadline, the late ones first)
                body = "\n".join(f"- {line}" for line in lines)
                message = replace(message, body=f"{message.body}\n{result.titles.get(n, n)}待处理：\n{body}".strip())
            await Notifier(settings.notify).send([message])
    return result


def write_review_workbook(settings: Settings) -> Path:
    """Write the review workbook of the latest runs into the settings' ``out/`` folder (what
    ``dealerbot export`` writes), its sheets those of the bots the registry knows. Returns its path.

    Raises:
        ConfigError: the store cannot be opened. OSError: the file cannot be written.
    """
    from dealerbot.review.export import default_workbook_path, export_runs, latest_runs
    from dealerbot.running.registry import entity_of_bots

    with Store.open(settings.store_url, settings.store_code) as store:
        runs = latest_runs(store)
        path = default_workbook_path(settings.path("out"), runs)
        from dealerbot.flows.registry import discover_flows

        return export_runs(store, runs, path, entity_of_bots(settings.home), flows=discover_flows(settings.home)).path


async def _chain(
    settings: Settings, *, full: bool, dry_run: bool, headed: bool, trigger: str,
    passwords: Mapping[str, str] | None, progress: Callable[[str], Callable[[dict[str, int]], None] | None] | None,
    on_step: Callable[[str], None] | None, job: str | None, stop: asyncio.Event | None, engine_job: int | None,
    on_start: Callable[[str, Path], None] | None = None, login_help: LoginHelp | None = None, flow: str | None = None,
) -> SyncResult:
    from dealerbot.flows.plan import reconcile_flow
    from dealerbot.flows.registry import enabled_flows, flow_policy

    flows = enabled_flows(settings, only=flow)
    policies = {f.name: flow_policy(f, settings) for f in flows}
    needs_dictionary = any(f.name == ORDERS_FLOW for f in flows)
    dictionary = (load_dictionary(settings.dictionary_path, settings.dictionary_overlay)
                  if needs_dictionary or settings.dictionary_path.is_file() else None)
    result = SyncResult(titles={f.name: f.title for f in flows})
    say = on_step or (lambda _msg: None)

    async def run(bot: str, **options: Any) -> RunResult:
        r = await run_bot(
            bot, settings, full=full and bot == "oem-orders", headed=headed, trigger=trigger, passwords=passwords,
            on_progress=progress(bot) if progress else None, options=options, job=job, stop=stop,
            engine_job=engine_job, on_start=on_start, login_help=login_help,
        )
        result.runs.append(r)
        return r

    for bot in dict.fromkeys(b for f in flows for b in f.read_bots):  # each read bot once, in the flows' order
        if stop is not None and stop.is_set():
            result.stopped = "调度程序正在停止：同步未完成 (stopping: the chain ended early)"
            return result
        r = await run(bot)
        if not r.ok:
            from dealerbot.status_text import STATUS_TEXT

            verb = STATUS_TEXT.get(r.status, "失败")
            result.stopped = f"{bot} {verb}：未做对账和写入（{bot} {r.status}: nothing planned or written）"
            return result
    def waiting(who: str) -> None:
        say(f"等待 {who} 结束后再对账 (waiting for {who} to finish)")

    many = len(flows) > 1 or flows[0].name != ORDERS_FLOW
    for f in flows:
        say(f"对账 (reconcile){f'：{f.title}（{f.name}）' if many else ''}")
        with Store.open(settings.store_url, settings.store_code) as store:
            result.plans[f.name] = await reconcile_flow(store, f, dictionary, policies[f.name], on_wait=waiting)
    for f in flows:
        plan = result.plans[f.name]
        if plan.ready or plan.in_progress:
            writer = WRITE_BOTS[settings.rekey.client] if f.name == ORDERS_FLOW else f.writer_bot
            target = "DMS" if f.name == ORDERS_FLOW else f.title
            say(f"写入{target} ({writer}{' --dry-run' if dry_run else ''})")
            await run(writer, dry_run=dry_run)
    for f in flows:
        with Store.open(settings.store_url, settings.store_code) as store:
            result.lefts[f.name] = await reconcile_flow(store, f, dictionary, policies[f.name], on_wait=waiting)
            if f.attention is not None:
                result.attention[f.name] = f.attention(store)
            if f.waiting is not None:
                result.waiting[f.name] = f.waiting(store)
    first = ORDERS_FLOW if ORDERS_FLOW in result.plans else flows[0].name
    result.plan, result.left = result.plans[first], result.lefts[first]
    return result


def last_sync(runs: Sequence[RunRecord], jobs: Iterable[str]) -> list[RunRecord]:
    """The runs of the newest sync among ``runs`` (newest first, as :meth:`Store.runs` gives
    them), oldest first: those of the newest run's job in ``jobs`` (the timetable's sync jobs,
    :data:`MANUAL_JOB`, :data:`CONSOLE_JOB`) back to the chain's first step. A firing the
    timetable recorded as skipped or unable to start (one record named ``sync``) is a sync of
    its own; a bot met again starts the sync before (the chain of a flow that does not begin with
    ``oem-orders``). Empty when none of ``runs`` belongs to a sync."""
    names = set(jobs)
    newest = next((r for r in runs if r.job in names), None)
    if newest is None:
        return []
    if newest.bot == SYNC_RECORD:
        return [newest]
    chain: list[RunRecord] = []
    for r in runs:
        if r.job != newest.job:
            continue
        if r.bot == SYNC_RECORD or any(c.bot == r.bot for c in chain):
            break  # a chain runs each bot once: a bot seen again is the sync before (a flow of one's own)
        chain.append(r)
        if r.bot == READ_BOTS[0]:
            break
    return chain[::-1]

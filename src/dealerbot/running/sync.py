"""``dealerbot sync``: the whole daily chain, for the CLI, the timetable and the console.

    read the OEM portal (orders, customers) -> read the DMS (customers, contracts)
      -> reconcile (plan) -> write what is approved or needs no approval (dms-rekey)
      -> reconcile again (what is left) -> the review workbook

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dealerbot.config import Settings
from dealerbot.data.dictionary import load_dictionary
from dealerbot.errors import DealerbotError
from dealerbot.rekey.reconcile import ReconcileReport, reconcile_async
from dealerbot.running.login_help import LoginHelp
from dealerbot.running.notify import Notifier, review_message
from dealerbot.running.runner import RunResult, run_bot
from dealerbot.store import RunRecord, Store

READ_BOTS = ("oem-orders", "oem-customers", "dms-customers", "dms-contracts")
SYNC_RECORD = "sync"  # the bot name of a sync firing that never became runs (skipped, could not start)
MANUAL_JOB = "sync"  # the job name of a sync's runs not started by the timetable (`dealerbot sync`)
CONSOLE_JOB = "console-sync"  # ... started from the console's 一键同步 (a group's: queued under it too)
WRITE_BOTS = {"web": "dms-rekey", "desktop": "dms-desktop-rekey"}  # [rekey] client

RunStep = Callable[[str], Any]  # bot name -> an async callable running it (the CLI adds a progress bar)


@dataclass
class SyncResult:
    """What one sync did."""

    runs: list[RunResult] = field(default_factory=list)
    plan: ReconcileReport | None = None  # before writing
    left: ReconcileReport | None = None  # after writing
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
) -> SyncResult:
    """Run the chain (see the module docstring). Run failures are in the result, not raised.
    ``on_start`` is told each step's run id as it starts (as :func:`run_bot`'s); ``login_help``
    answers a login's code for each step's run (as :func:`run_bot`'s: the console's box).
    A ``stop`` set between steps ends the chain there; approvals left waiting for a person are
    notified (``[notify] on`` review; the message names the workbook when one was written).
    With ``workbook`` (the timetable's and a group's workers' syncs) the review workbook is written into ``out/`` however the chain ended; a
    workbook that cannot be written is logged, not raised (the CLI writes its own).

    Every run of the chain is recorded under ``job`` (the timetable's job; :data:`MANUAL_JOB`
    when none is given), so that the chain can be found again (:func:`last_sync`).

    Raises:
        ConfigError: the dictionary, the policy or the store is unusable (before any run).
    """
    job = job or MANUAL_JOB
    result = await _chain(settings, full=full, dry_run=dry_run, headed=headed, trigger=trigger, passwords=passwords,
                          progress=progress, on_step=on_step, job=job, stop=stop, engine_job=engine_job,
                          on_start=on_start, login_help=login_help)
    if workbook:
        from loguru import logger

        try:
            result.workbook_path = write_review_workbook(settings)
        except (DealerbotError, OSError, ValueError) as exc:
            logger.error("the review workbook could not be written: {}", exc)
    if result.plan is not None and result.left is not None:
        dropped = result.plan.dropped + result.left.dropped
        if result.left.awaiting_approval or dropped:  # after the workbook: the message names it
            name = result.workbook_path.name if result.workbook_path else None
            await Notifier(settings.notify).send([review_message(
                result.left.awaiting_approval, name, dropped, settings.console.public_url)])
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
        return export_runs(store, runs, path, entity_of_bots(settings.home)).path


async def _chain(
    settings: Settings, *, full: bool, dry_run: bool, headed: bool, trigger: str,
    passwords: Mapping[str, str] | None, progress: Callable[[str], Callable[[dict[str, int]], None] | None] | None,
    on_step: Callable[[str], None] | None, job: str | None, stop: asyncio.Event | None, engine_job: int | None,
    on_start: Callable[[str, Path], None] | None = None, login_help: LoginHelp | None = None,
) -> SyncResult:
    dictionary = load_dictionary(settings.dictionary_path, settings.dictionary_overlay)
    policy = settings.rekey.policy()
    result = SyncResult()
    say = on_step or (lambda _msg: None)

    async def run(bot: str, **options: Any) -> RunResult:
        r = await run_bot(
            bot, settings, full=full and bot == "oem-orders", headed=headed, trigger=trigger, passwords=passwords,
            on_progress=progress(bot) if progress else None, options=options, job=job, stop=stop,
            engine_job=engine_job, on_start=on_start, login_help=login_help,
        )
        result.runs.append(r)
        return r

    for bot in READ_BOTS:
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

    say("对账 (reconcile)")
    with Store.open(settings.store_url, settings.store_code) as store:
        result.plan = await reconcile_async(store, dictionary, policy, on_wait=waiting)
    if result.plan.ready or result.plan.in_progress:
        writer = WRITE_BOTS[settings.rekey.client]
        say(f"写入DMS ({writer}{' --dry-run' if dry_run else ''})")
        await run(writer, dry_run=dry_run)
    with Store.open(settings.store_url, settings.store_code) as store:
        result.left = await reconcile_async(store, dictionary, policy, on_wait=waiting)
    return result


def last_sync(runs: Sequence[RunRecord], jobs: Iterable[str]) -> list[RunRecord]:
    """The runs of the newest sync among ``runs`` (newest first, as :meth:`Store.runs` gives
    them), oldest first: those of the newest run's job in ``jobs`` (the timetable's sync jobs,
    :data:`MANUAL_JOB`, :data:`CONSOLE_JOB`) back to the chain's first step. A firing the
    timetable recorded as skipped or unable to start (one record named ``sync``) is a sync of
    its own. Empty when none of ``runs`` belongs to a sync."""
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
        if r.bot == SYNC_RECORD:
            break
        chain.append(r)
        if r.bot == READ_BOTS[0]:
            break
    return chain[::-1]

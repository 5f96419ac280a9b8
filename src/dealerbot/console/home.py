"""The console's home page (今日): where a clerk lands after logging in; 一键同步 and its page.

今日 shows the last sync and its result, how many actions wait for approval (with the current
review workbook to download and 立即写入DMS for what is approved), the failures that need a
person with what to do (:func:`dealerbot.failure_text.explain`), the next timetable runs, each
portal's login in brief, and warnings (:func:`home_warnings`: one place, so more can be added).

一键同步 runs the daily chain (:func:`dealerbot.running.sync.sync`, as the timetable runs it) in
this process, its runs recorded under :data:`~dealerbot.running.sync.CONSOLE_JOB`; its page
(同步, ``/sync``) follows the newest sync, whoever started it, step by step while it runs.
A dealership group's console (no store of its own) lands on 门店 instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from dealerbot.errors import AlreadyRunning, DealerbotError
from dealerbot.failure_text import Advice, explain
from dealerbot.private_files import private_dir
from dealerbot.status_text import STATUS_CSS, STATUS_TEXT

if TYPE_CHECKING:
    from collections.abc import Mapping

    from dealerbot.config import Settings
    from dealerbot.console.app import Console
    from dealerbot.console.names import Names
    from dealerbot.store import RunRecord, Store

SHOWN_COUNTS = ("read", "stored", "rejected", "verified", "found", "failed", "unfinished", "rehearsed")
NEXT_RUNS_SHOWN = 6
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class HomeWarning:
    """A warning on 今日: what is wrong, and the console page that deals with it (if any)."""

    text: str
    link: str = ""
    link_text: str = ""


@dataclass(frozen=True)
class NextRun:
    """A timetable job's next run as 今日 lists it (``at`` None: paused or none computed)."""

    job: str
    what: str
    at: datetime | None
    paused: bool = False
    error: str = ""


@dataclass
class Timetable:
    """What 今日 knows of the timetable: the next runs, a file that could not be read, and
    where the scheduler runs (``here``: in this process; ``elsewhere``: another process of this
    folder; ``none``)."""

    next_runs: list[NextRun] = field(default_factory=list)
    error: str = ""
    scheduler: str = "none"
    sync_jobs: list[str] = field(default_factory=list)


@dataclass
class ConsoleSync:
    """The sync 一键同步 started in this process: its step messages, the step running now."""

    started: datetime
    job: str = ""  # the timetable job its runs are recorded under
    task: asyncio.Task[Any] | None = None
    steps: list[str] = field(default_factory=list)
    current: str = ""  # the run id of the step running now
    stopped: str | None = None
    error: str = ""
    plan: Any = None  # the chain's reconciliation (ReconcileReport) before writing, when it got that far

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


def missing_passwords(settings: Settings, passwords: Mapping[str, str] | None = None) -> list[str]:
    """The portals with no password anywhere this process looks (``passwords`` given at start,
    the environment, the keyring): their first run cannot log in. Never reads one out."""
    from dealerbot.credentials import has_password

    return [name for name in settings.portal_names
            if not (passwords and passwords.get(name))
            and not has_password(name, settings.portal(name).username, settings.own_store)]


def home_warnings(settings: Settings, store: Store, timetable: Timetable, today: date | None = None,
                  names: Names | None = None, passwords: Mapping[str, str] | None = None) -> list[HomeWarning]:
    """Everything 今日 warns about, most urgent first. One place for them all: a new kind of
    warning is added here (and reads what it needs from ``settings``, ``store`` or ``timetable``);
    ``today``: the date the holiday data is judged on (default: the local date); ``names``: what
    portals and jobs are called (default: their keys); ``passwords``: those given at start."""
    from dealerbot.review.sheets import reapprovals
    from dealerbot.schedule.holidays import calendar_warnings

    out: list[HomeWarning] = []
    for name in missing_passwords(settings, passwords):
        title = names.portal(name) if names is not None else name
        out.append(HomeWarning(f"{title}还没有设置密码：同步无法登录{title}。", f"/health#portal-{name}", "设置密码"))
    if timetable.error:
        out.append(HomeWarning(f"定时任务文件有误，定时任务不会运行：{timetable.error}", "/schedules", "定时任务"))
    else:  # a year of holidays nobody entered: the daily sync runs Monday to Friday meanwhile
        out.extend(HomeWarning(text, "/schedules#holidays", "定时任务")
                   for text in calendar_warnings(settings, today, console=True))
    for run in timetable.next_runs:
        if run.error:
            out.append(HomeWarning(f"定时任务“{run.what}”算不出下次运行时间：{run.error}", "/schedules", "定时任务"))
    if timetable.next_runs and timetable.scheduler == "none":
        out.append(HomeWarning("调度程序没有运行：定时任务（如每日同步）不会自动执行。可以点击“一键同步”手动同步；"
                               "请联系管理员启动调度程序。", "/schedules", "定时任务"))
    again = len(reapprovals(store))
    if again:
        out.append(HomeWarning(f"{again} 条原已审核的操作因厂家或DMS的数据变化需要重新审核。", "/review", "审核"))
    return out


def scheduler_state(c: Console) -> str:
    """Where this folder's scheduler runs: ``here`` (in this process), ``elsewhere`` (another
    live process holds the folder's scheduler lock: its pid file names it) or ``none``."""
    import psutil

    if c.scheduler is not None:
        return "here"
    pid_file = c.settings.path("state") / "locks" / "scheduler.pid"
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return "none"
    return "elsewhere" if psutil.pid_exists(pid) else "none"


def read_timetable(c: Console) -> Timetable:
    """The timetable's next runs (the scheduler's own times when it runs in this process)."""
    from dealerbot.schedule.timetable import SYNC, next_fire, timetables_of

    out = Timetable(scheduler=scheduler_state(c))
    try:
        jobs = timetables_of(c.settings)
    except DealerbotError as exc:
        out.error = str(exc)
        return out
    for job in jobs:
        if not job.enabled:
            continue
        what = c.names.job(job.name, job.run)
        if job.run == SYNC:
            out.sync_jobs.append(job.name)
        aps = c.scheduler.aps.get_job(job.name) if c.scheduler is not None else None
        if aps is not None:
            out.next_runs.append(NextRun(job.name, what, aps.next_run_time, paused=aps.next_run_time is None))
            continue
        try:
            times = next_fire(job, c.settings)
        except DealerbotError as exc:
            out.next_runs.append(NextRun(job.name, what, None, error=str(exc)))
            continue
        out.next_runs.append(NextRun(job.name, what, times[0] if times else None))
    out.next_runs.sort(key=lambda r: (r.at is None, r.at.timestamp() if r.at else 0.0))
    return out


def needs_a_person(runs: list[RunRecord]) -> list[tuple[RunRecord, Advice]]:
    """The failures that need a person: each bot's newest finished run, when it failed (a
    postponed run runs again by itself; a run stopped on purpose or by a shutdown is no failure:
    the next run goes on from where it stopped; a later success settles an earlier failure)."""
    newest: dict[str, RunRecord] = {}
    for r in runs:  # newest first
        if r.status not in ("running", "skipped"):
            newest.setdefault(r.bot, r)
    out = []
    for r in sorted(newest.values(), key=lambda r: r.started_at, reverse=True):
        if r.status not in ("failed", "needs_person", "portal_changed", "all_rejected"):
            continue
        advice = explain(r.error_class, r.status, r.resume_after)
        if r.bot == "sync" and r.error_class is None:  # a timetable firing that could not start
            advice = Advice("每日同步无法开始", "原因见详情；若是配置或数据文件的问题，请联系管理员。", "administrator")
        if advice is not None:
            out.append((r, advice))
    return out


def sync_outcome(chain: list[RunRecord], live: ConsoleSync | None) -> tuple[str, str]:
    """The last sync's result in a word and its CSS class: 运行中, 成功, 失败, 已推迟..."""
    if (live is not None and live.running) or any(r.status == "running" for r in chain):
        return "运行中", "warn"
    statuses = [r.status for r in chain]
    for status in ("failed", "portal_changed", "interrupted", "needs_person", "postponed", "skipped", "all_rejected"):
        if status in statuses:  # a step's outcome is the sync's: a failed step, a failed sync
            return STATUS_TEXT[status], STATUS_CSS[status]
    if live is not None and (live.stopped or live.error):
        return "未完成", "bad"
    return "成功", "ok"


class SyncStarter:
    """一键同步: the daily chain (:func:`dealerbot.running.sync.sync`, as the timetable runs it,
    the review workbook included) started in the console's process, its runs recorded under
    :data:`~dealerbot.running.sync.CONSOLE_JOB`, their counts live in ``Console.live``; one at a
    time. ``app.state.sync_starter`` holds the app's."""

    def __init__(self, c: Console) -> None:
        self.c = c
        self.last: ConsoleSync | None = None  # the sync started here most recently

    async def start(self, job: str | None = None, full: bool = False, dry_run: bool = False) -> str:
        """Start the chain (recorded under timetable job ``job``, default
        :data:`~dealerbot.running.sync.CONSOLE_JOB`: 立即运行 of a timetable's sync job names its
        own); return the run id of its first run once recorded ("" when it ended before one, or
        when a sync started here still runs: nothing new starts).

        Raises:
            DealerbotError: it could not start (the console is stopping, the dictionary or the
                store is unusable); AlreadyRunning: a bot of the chain runs already (the
                timetable's sync, another process).
        """
        from dealerbot.running.sync import CONSOLE_JOB, sync

        c = self.c
        if self.last is not None and self.last.running:
            return ""
        if c.stop.is_set():
            raise DealerbotError("控制台正在停止，不再开始新的运行 (the console is stopping)")
        loop = asyncio.get_running_loop()
        started: asyncio.Future[str] = loop.create_future()
        live = ConsoleSync(started=datetime.now(), job=job or CONSOLE_JOB)

        def on_start(run_id: str, _run_dir: Path) -> None:
            c.live.pop(live.current, None)
            live.current = run_id
            c.live[run_id] = {}
            if not started.done():
                started.set_result(run_id)

        def progress(_bot: str) -> Any:
            def counts(values: dict[str, int]) -> None:
                if live.current:
                    c.live[live.current] = dict(values)
            return counts

        async def chain() -> None:
            try:
                result = await sync(c.settings, full=full, dry_run=dry_run, trigger="console", passwords=c.passwords,
                                    job=job or CONSOLE_JOB, stop=c.stop, workbook=True, on_step=live.steps.append,
                                    progress=progress, on_start=on_start, login_help=c.login_help)
                live.stopped, live.plan = result.stopped, result.plan
            except Exception as exc:  # noqa: BLE001 - said on the sync's page, never lost in a task
                live.error = str(exc)
                if not started.done():
                    started.set_exception(exc)
            finally:
                c.live.pop(live.current, None)
                live.current = ""

        task = loop.create_task(chain())
        live.task = task
        self.last = live
        c.tasks.add(task)
        task.add_done_callback(c.tasks.discard)
        either: set[asyncio.Future[Any]] = {task, started}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED, timeout=60)
        if started.done() and started.exception() is not None:
            exc = started.exception()
            raise exc if isinstance(exc, DealerbotError) else DealerbotError(str(exc))
        return started.result() if started.done() else ""


def register(app: FastAPI, c: Console) -> None:
    """Add 今日, 一键同步 and its page, and the current review workbook to ``app``."""
    from dealerbot.running.sync import CONSOLE_JOB, MANUAL_JOB, READ_BOTS, last_sync

    settings = c.settings
    starter = SyncStarter(c)
    app.state.sync_starter = starter  # other pages (a timetable row's 立即运行 of a sync) start it alike

    def console_sync() -> ConsoleSync | None:
        return starter.last

    def the_sync(store: Store, timetable: Timetable) -> list[RunRecord]:
        return last_sync(store.runs(300), [*timetable.sync_jobs, MANUAL_JOB, CONSOLE_JOB])

    def ledger_counts(store: Store) -> dict[str, Any]:
        from dealerbot.flows.registry import discover_flows, flow_counts
        from dealerbot.rekey.ledger import AWAITING_REVIEW, ORDERS_FLOW

        per_flow = flow_counts(store, discover_flows(settings.home))
        if not store.has_plan() and not per_flow:
            return {"planned": False, "waiting": 0, "write_failed": 0, "approved": 0, "flows": []}
        waiting = store.actions(states=AWAITING_REVIEW)
        shown = per_flow if any(f["name"] != ORDERS_FLOW for f in per_flow) else []  # only orders: as before
        return {"planned": True, "waiting": len(waiting), "write_failed": sum(1 for a in waiting if a.state == "failed"),
                "approved": len(store.actions(states=("approved",), flow=ORDERS_FLOW)), "flows": shown}

    def portals(store: Store, runs: list[RunRecord]) -> list[dict[str, Any]]:
        from dealerbot.running.context import account_key

        out = []
        missing = missing_passwords(settings, c.passwords)
        for name in settings.portal_names:
            portal = settings.portal(name)
            saved = settings.path("state") / f"{name}-{portal.username or 'default'}.json"
            out.append({
                "name": name, "title": c.names.portal(name), "no_password": name in missing,
                "refused": store.login_refusal(account_key(name, portal)),
                "login": datetime.fromtimestamp(saved.stat().st_mtime) if saved.is_file() else None,
                "last_ok": next((r for r in runs if r.status == "succeeded" and r.bot.startswith(name)), None),
            })
        return out

    def with_portal(failures: list[tuple[RunRecord, Advice]]) -> list[tuple[RunRecord, Advice, str]]:
        """Each failure with the portal it is about (its 状态 section: ``/health#portal-<name>``),
        titled as the run page titles it."""
        from dealerbot.console.run_page import advice_for

        out = []
        for run, advice in failures:
            titled, portal = advice_for(c, run)
            if titled is not None and run.bot != "sync":
                advice = titled
            out.append((run, advice, portal.name if portal is not None else ""))
        return out

    def page_values(store: Store) -> dict[str, Any]:
        timetable = read_timetable(c)
        runs = store.runs(300)
        chain = the_sync(store, timetable)
        live = console_sync()
        if live is not None and live.running and chain and chain[0].started_at < live.started:
            chain = []  # 一键同步 was pressed a moment ago: its first run is not recorded yet
        if live is not None and not live.running and not (chain and chain[0].job == live.job
                                                           and chain[0].started_at >= live.started):
            live = None  # the newest sync is not the one started here
        result, css = sync_outcome(chain, live) if chain or (live and live.running) else ("", "")
        return {
            "chain": chain, "sync_result": result, "sync_css": css, "live_sync": live,
            "ledger": ledger_counts(store), "failures": with_portal(needs_a_person(runs)[:10]), "timetable": timetable,
            "next_runs": timetable.next_runs[:NEXT_RUNS_SHOWN], "portals": portals(store, runs),
            "warnings": home_warnings(settings, store, timetable, names=c.names, passwords=c.passwords),
            "SHOWN_COUNTS": SHOWN_COUNTS, "now": datetime.now(),
            "own_jobs": (MANUAL_JOB, CONSOLE_JOB),
        }

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        if settings.is_group and not settings.own_store:
            return RedirectResponse("/stores", status_code=303)
        error = request.session.pop("flash", "")  # said once, by the page that sent the clerk here
        with c.store() as store:
            store.close_abandoned_runs()
            values = await asyncio.to_thread(page_values, store)
        return c.page(request, "home.html", error=error, **values)

    @app.post("/sync")
    async def sync_now(request: Request, csrf: str = Form("")) -> Response:
        """一键同步: the daily chain, now, in this process; then its page."""
        c.check_csrf(request, csrf)
        live = console_sync()
        if live is not None and live.running:
            return RedirectResponse("/sync", status_code=303)
        try:
            await starter.start()
        except DealerbotError as exc:
            with c.store() as store:
                values = await asyncio.to_thread(page_values, store)
            if isinstance(exc, AlreadyRunning):
                return c.page(request, "home.html", 409, error="同步的机器人正在运行（可能是定时任务启动的），本次不再启动。",
                              error_link=("/runs", "查看运行记录"), **values)
            return c.page(request, "home.html", 409, error=f"无法开始同步：{exc}", **values)
        return RedirectResponse("/sync", status_code=303)

    @app.get("/sync", response_class=HTMLResponse)
    async def sync_page(request: Request) -> HTMLResponse:
        """The newest sync, step by step (reloading itself while it runs)."""
        with c.store() as store:
            values = await asyncio.to_thread(page_values, store)
        chain = values["chain"]
        values["running"] = values["sync_result"] == "运行中"
        values.update(sync_page_values(values, chain))
        values["live_counts"] = dict(c.live)
        done = {r.bot for r in chain}
        try:
            from dealerbot.flows.registry import enabled_flows

            read_bots = list(dict.fromkeys(b for f in enabled_flows(settings) for b in f.read_bots))
        except DealerbotError:
            read_bots = list(READ_BOTS)
        values["waiting_steps"] = [b for b in read_bots if b not in done]
        values["login_waits"] = [r for r in chain if c.login_help.waiting(r.run_id) is not None]
        return c.page(request, "sync.html", **values)

    def sync_page_values(values: dict[str, Any], chain: list[RunRecord]) -> dict[str, Any]:
        """What the 同步 page shows beyond 今日's values: each step's advice and the portal it
        is about (its 设置密码), why the chain stopped in Chinese, and its reconciliation."""
        from dealerbot.console.run_page import advice_for
        from dealerbot.rekey.reconcile import RECONCILE_CLASS_TEXT

        advice, portals = {}, {}
        for r in chain:
            told, portal = advice_for(c, r)
            if told is not None:
                advice[r.run_id] = told
                if portal is not None:
                    portals[r.run_id] = portal.name
        banner = ""
        live = values["live_sync"]
        if not values["running"]:
            stopped_by = next((r for r in chain if r.bot in READ_BOTS and r.status not in ("running", "succeeded", "all_rejected")),
                              None)
            if stopped_by is not None:
                banner = f"{c.names.bot(stopped_by.bot)}{STATUS_TEXT[stopped_by.status]}，本次没有对账，也没有写入任何数据"
            elif live is not None and live.stopped:
                banner = "同步被中途停止，本次没有对账，也没有写入任何数据"
            elif live is not None and live.error:
                banner = f"同步出错：{live.error}"
        plan = live.plan if live is not None and not values["running"] else None
        reconciled = []
        if plan is not None:
            reconciled = [(text, plan.counts.get(k, 0)) for k, text in RECONCILE_CLASS_TEXT.items()]
        from dealerbot.console.run_page import job_names

        job = job_names(c).get(chain[0].job or "", "") if chain else ""
        return {"advice": advice, "advice_portal": portals, "sync_banner": banner, "reconciled": reconciled,
                "job_title": job}

    @app.get("/workbook", response_model=None)
    async def workbook(request: Request, all: str = "") -> Response:
        """The current review workbook (what `dealerbot export` writes; ``all``: every record
        in the store), made now into the private out folder."""
        from dealerbot.review.export import default_workbook_path, export_runs, latest_runs
        from dealerbot.running.registry import entity_of_bots

        out = private_dir(settings.path("out"))

        def make() -> Path | None:
            from dealerbot.flows.registry import discover_flows

            with c.store() as store:
                runs = latest_runs(store)
                if not runs:
                    return None
                path = default_workbook_path(out, runs)
                return export_runs(store, runs, path, entity_of_bots(settings.home), bool(all), console=True,
                                   flows=discover_flows(settings.home),
                                   titles={r.bot: c.names.bot(r.bot) for r in runs}).path

        try:
            path = await asyncio.to_thread(make)
        except (DealerbotError, ValueError, OSError) as exc:
            request.session["flash"] = f"无法生成审核工作簿：{exc}"
            return RedirectResponse("/", status_code=303)
        if path is None:
            request.session["flash"] = "还没有可导出的运行记录：请先点击“一键同步”。"
            return RedirectResponse("/", status_code=303)
        # The name staff see in their downloads: which workbook it is, and when (the file in out/ keeps its own).
        shown = f"{'全部记录' if all else '审核工作簿'}-{datetime.now():%Y%m%d-%H%M}.xlsx"
        return FileResponse(path, filename=shown, media_type=XLSX)


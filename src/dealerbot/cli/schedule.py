"""``dealerbot schedule check|list|start``: the timetables and the scheduler that runs them."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Coroutine
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dealerbot.cli.common import ConfigOpt, fail, log_to_console, make_console, open_store, say_where, settings_from
from dealerbot.errors import DealerbotError

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.schedule.scheduler import Scheduler
    from dealerbot.schedule.timetable import Job

schedule_app = typer.Typer(help="定时任务：schedules/*.yaml（检查、列出、运行调度程序）(timetables).", no_args_is_help=True)


# -- timetables -------------------------------------------------------------------------------

def load_jobs(settings: Settings) -> list[Job]:
    from dealerbot.schedule.timetable import timetables_of

    folder = settings.path("schedules")
    try:
        jobs = timetables_of(settings)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    if not jobs:
        raise fail(f"{folder} 中没有定时任务：参考 schedules/README.md 写一个 .yaml 文件 (no jobs in {folder})")
    return jobs


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"--from {text}：日期应写成 2026-12-28 (a date like 2026-12-28)") from None


@schedule_app.command("check")
def schedule_check(
    count: Annotated[int, typer.Option("--count", "-n", help="每个任务显示几次运行时间")] = 5,
    start: Annotated[str | None, typer.Option("--from", help="从这一天开始显示（例如 2026-12-28，看元旦前后）")] = None,
    config: ConfigOpt = None,
) -> None:
    """检查所有定时任务文件和节假日文件，并显示每个任务接下来的运行时间（已计入节假日和停用时段）。

    Validate every schedules/*.yaml (unknown bot, bad cron, bad time zone; holidays.yaml: file
    and line) and print each job's next fire times (from now, or from --from's day), China's
    holidays, make-up working days and blackout windows applied, with a warning for a year
    nobody has described (those fire Monday to Friday). Exit 2 when a file is wrong or a job
    with beyond_calendar: stop reaches such a year."""
    from dealerbot.schedule.holidays import warnings_for
    from dealerbot.schedule.timetable import fire_times, scheduler_trigger

    settings = settings_from(config)
    console = make_console()
    failed = False
    day = _day(start)
    jobs = load_jobs(settings)
    for warning in warnings_for(jobs, day or date.today()):
        console.print(f"[yellow]注意：{escape(warning)}[/]")
    for job in jobs:
        trigger = scheduler_trigger(job, settings)  # as the scheduler will fire it
        try:
            now = datetime.combine(day, time(0, 0), job.tz) if day else None
            times = fire_times(job, count, now=now, trigger=trigger)
        except DealerbotError as exc:
            console.print(f"[red]{escape(job.describe())}[/] ({escape(job.source)})：{escape(str(exc))}")
            failed = True
            continue
        console.print(f"[bold]{escape(job.describe())}[/] ({escape(job.source)}, {job.tz})")
        for t in times:
            console.print(f"  {t:%Y-%m-%d %a %H:%M}")
        for note in trigger.moved:
            console.print(f"  [yellow]{escape(note)}[/]")
        for year in sorted(trigger.guessed):
            console.print(f"  [yellow]{year} 年没有节假日数据：按周一至周五运行 (no holiday data for {year}: Monday to Friday)[/]")
    if failed:
        raise typer.Exit(2)


@schedule_app.command("list")
def schedule_list(config: ConfigOpt = None) -> None:
    """列出定时任务：运行时间、下次运行（或已暂停）和上次结果。

    The jobs with their timetable in words, their next fire time (or who paused them and when)
    and the last run each started."""
    from dealerbot.schedule.timetable import next_fire
    from dealerbot.schedule.words import job_in_words
    from dealerbot.status_text import STATUS_TEXT

    settings = settings_from(config)
    jobs = load_jobs(settings)
    table = Table(title="定时任务 (schedules)")
    for col in ("任务", "运行", "时间", "下次", "上次", "上次结果"):
        table.add_column(col, no_wrap=col in ("下次", "上次"))
    if settings.is_group:
        table.add_column("门店")
    with open_store(settings) as store:
        pauses = store.job_pauses()
        for job in jobs:
            pause = pauses.get(job.name)
            try:
                nxt = next_fire(job, settings)
                next_text = f"{nxt[0]:%m-%d %H:%M}" if nxt else "-"
            except DealerbotError:
                next_text = "节假日数据过期"
            if pause is not None:  # kept in the store: the scheduler does not run it until resumed
                next_text = f"已暂停\n{pause['paused_by']}\n{pause['paused_at']:%m-%d %H:%M}"
            # A group's job: a line per store it runs for, with that store's last run.
            for code in (job.stores or list(settings.stores)) if settings.is_group else [None]:
                last = (store.for_code(code) if code else store).last_job_run(job.name)
                table.add_row(
                    escape(job.name) + ("" if job.enabled else "（停用）"), escape(job.run),
                    escape(job_in_words(job)), escape(next_text),
                    f"{last.started_at:%m-%d %H:%M}" if last else "-",
                    STATUS_TEXT.get(last.status, last.status) if last else "-",
                    *([code] if code else []),
                )
    make_console().print(table)


@schedule_app.command("pause")
def schedule_pause(
    name: Annotated[str, typer.Argument(help="任务名（dealerbot schedule list）")],
    config: ConfigOpt = None,
) -> None:
    """暂停一个定时任务，直到 resume（重启后仍然暂停；记入审计记录）。

    Pause a job until `schedule resume`: kept in the store, so it holds after a restart (a
    scheduler running now follows within 30 s); who and when go to the audit trail."""
    _pause_or_resume(name, config, pause=True)


@schedule_app.command("resume")
def schedule_resume(
    name: Annotated[str, typer.Argument(help="任务名（dealerbot schedule list）")],
    config: ConfigOpt = None,
) -> None:
    """恢复一个已暂停的定时任务（运行中的调度程序在 30 秒内跟上）。

    Resume a paused job (a scheduler running now follows within 30 s)."""
    _pause_or_resume(name, config, pause=False)


def _pause_or_resume(name: str, config: Path | None, pause: bool) -> None:
    import getpass

    settings = settings_from(config, store_needed=True)
    if name not in {j.name for j in load_jobs(settings)}:
        raise fail(f"没有定时任务 {name}：dealerbot schedule list 列出所有任务 (no job {name!r})")
    actor = f"终端（{getpass.getuser()}）"
    with open_store(settings) as store:
        changed = store.pause_job(name, actor) if pause else store.resume_job(name, actor)
    word = "暂停" if pause else "恢复"
    make_console().print(f"已{word} {name}" if changed else f"{name} 本来就{'已暂停' if pause else '没有暂停'}")


@schedule_app.command("start")
def schedule_start(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="在终端显示调试日志")] = False,
    config: ConfigOpt = None,
) -> None:
    """在前台运行调度程序（Ctrl-C 或 SIGTERM 停止：正在运行的机器人先完成当前记录）。

    Run the scheduler in the foreground until Ctrl-C or SIGTERM; a running re-key finishes its
    current record first. Exit 0 after a clean stop."""

    settings = settings_from(config)
    say_where(settings)
    log_to_console(settings, verbose)
    jobs = load_jobs(settings)

    async def serve() -> None:
        import asyncio

        async with scheduler_for(settings, jobs) as scheduler:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, AttributeError):  # Windows: Ctrl-C raises instead
                    loop.add_signal_handler(sig, scheduler.request_stop)
            where = f"，为 {len(settings.stores)} 家门店排队 (deferring for the group's stores)" if settings.is_group else ""
            make_console().print(f"调度程序已启动：{len(jobs)} 个任务{where}；按 Ctrl-C 停止 (scheduler running)")
            await scheduler.serve()

    run_service(serve(), "调度程序已停止 (scheduler stopped)")


@contextlib.asynccontextmanager
async def scheduler_for(settings: Settings, jobs: list[Job]) -> AsyncIterator[Scheduler]:
    """The scheduler these settings call for: a single dealership's runs its bots here (one
    per folder); a group's defers them into its task engine (workers run them).

    Raises:
        AlreadyRunning: a scheduler already runs for this dealership's folder.
        ConfigError: a group whose PostgreSQL cannot be reached.
    """
    from dealerbot.schedule.scheduler import Scheduler, one_scheduler

    if not settings.is_group:
        with one_scheduler(settings):  # a second one here would record every firing again, skipped
            yield Scheduler(settings, jobs)
        return
    from dealerbot.group.engine import GroupEngine
    from dealerbot.group.scheduler import GroupScheduler

    async with GroupEngine(settings) as engine:
        yield GroupScheduler(settings, jobs, engine)


def run_service(main: Coroutine[Any, Any, None], stopped: str) -> None:
    """Run a long-lived service (the scheduler, the console) until it stops; say so.

    Raises:
        typer.Exit: 2 when it could not run (the store, the timetable), with the reason.
    """
    import asyncio

    try:
        asyncio.run(main)
    except KeyboardInterrupt:
        pass
    except DealerbotError as exc:
        raise fail(f"调度程序无法运行 (the scheduler stopped): {exc}") from None
    make_console().print(stopped)

"""The scheduler: runs the timetable jobs (:mod:`dealerbot.schedule.timetable`) with APScheduler 3.

Of the three scheduling modules, :mod:`~dealerbot.schedule.timetable` says what runs when and
starts nothing; this one runs the jobs, each firing a run in this process (one dealership:
``dealerbot schedule start`` and ``serve``); :mod:`dealerbot.group.scheduler` is this scheduler for
a dealership group (:class:`~dealerbot.group.scheduler.GroupScheduler`, a subclass): the same
firings, each deferred to the group's task engine, once per store, instead of run here.

* A job runs its bot (or ``sync``) through :func:`~dealerbot.running.runner.run_bot`, recorded with
  why it started (``schedule``, ``catch-up``, ``postponed``) and the job's name.
* One instance at a time: a firing while the job still runs here (APScheduler's
  ``max_instances=1``) or while the same bot runs for the same account in another process
  (the manual runs' file lock) is **skipped and recorded** (status ``skipped``, with why).
* Misfires: a firing later than the job's ``misfire_grace_seconds`` (the machine was busy or
  asleep) is recorded as skipped, never silently dropped; ``coalesce`` runs several missed
  firings once.
* After the machine was off: on start, a job whose last run is older than a firing it should
  have had runs once at once (``on_start: run_once``, recorded ``catch-up``) or waits.
* A run that ended ``postponed`` (the portal's maintenance notice) runs again at the end of the
  announced window.
* One scheduler per dealership folder (:func:`one_scheduler`, a file lock under ``state/``): a
  second ``schedule start`` (or ``serve``) there is refused, naming the first one's process; a
  group's schedulers may be several (they claim each firing in PostgreSQL).
* A store that cannot be opened (a damaged SQLite file, a folder it may not write, a database
  server down) is said once, notified once, and tried again after growing pauses (5 s, doubling,
  at most 5 minutes); firings meanwhile do not start (nothing could record them). When it opens
  again the scheduler says so, catches up what was missed as after the PC was off, and goes on.
* A year nobody has described in the holiday data (``schedules/holidays.yaml``, the package):
  working-day jobs run Monday to Friday there; the scheduler logs it at its start and when a
  trigger first reaches that year, and from 1 November on sends a message once a day at most
  (``calendar`` event; the day of the last one kept in ``state/calendar-notice``, so restarts
  do not repeat it).
* While a portal's login waits for a person (the newest finished run of its bots ended
  ``needs_person``: an SMS code, a captcha), a job that writes through it is skipped and recorded
  with why (:mod:`dealerbot.schedule.login_wait`) until a person completes the login.
* A job a person paused (the console's 定时任务 page) stays paused across restarts: pauses are
  kept in the store (:class:`~dealerbot.store.pauses.PausesPart`), applied when the scheduler
  starts (and when its store opens again), read again every 30 s and checked at each firing, so
  a pause or resume made in another process (a console, ``schedule pause``) holds too. A paused
  job is not caught up either.
* An exception in a run never stops the scheduler. :meth:`Scheduler.request_stop` (SIGTERM,
  Ctrl-C) lets running bots stop at their next safe point (a re-key finishes its current
  record), waits up to ``grace`` seconds, then cancels what is left (recorded ``interrupted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from loguru import logger

from dealerbot.config import Settings
from dealerbot.errors import AlreadyRunning, ConfigError, DataFileError, DealerbotError
from dealerbot.running.notify import Message, Notifier, firing_message
from dealerbot.running.runner import RunResult, new_run_id, run_bot
from dealerbot.schedule.holidays import warnings_for
from dealerbot.schedule.timetable import SYNC, Job, JobTrigger
from dealerbot.store import Store

if TYPE_CHECKING:
    from loguru import Logger

STOP_GRACE_SECONDS = 120.0
PAUSE_POLL_SECONDS = 30.0  # how often the store's pauses are read again (a console in another process)
STORE_RETRY_LONGEST_SECONDS = 300.0  # a store that cannot be opened: longest pause ([store] retry_first_seconds: the first)
CALENDAR_CHECK_SECONDS = 3600.0  # how often the holiday data's warning is looked at (sent once a day at most)


@contextlib.contextmanager
def one_scheduler(settings: Settings) -> Iterator[None]:
    """Be the only scheduler of this dealership's folder for the block: a file lock under
    ``state/locks`` (released by the system when the process ends, even by ``kill -9``), and
    the process id beside it for the message a second one gets.

    Raises:
        AlreadyRunning: another scheduler (``schedule start`` or ``serve``) runs for this folder.
        ConfigError: the lock cannot be made there (the folder's permissions).
    """
    from filelock import FileLock, Timeout

    from dealerbot.private_files import private_dir, write_private_text

    locks = settings.path("state") / "locks"
    lock = FileLock(locks / "scheduler.lock", timeout=0)
    pid_file = locks / "scheduler.pid"
    try:
        private_dir(locks)
        lock.acquire()
    except Timeout:
        try:
            pid: int | None = int(pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            pid = None
        raise AlreadyRunning(
            f"此文件夹的调度程序已在运行{f'（进程 {pid}）' if pid else ''}：{settings.home}；同一门店文件夹只能运行一个"
            f"调度程序（dealerbot schedule start 或 dealerbot serve），否则每个任务会多出一条“已跳过”的运行。"
            f"请先停止那一个 (a scheduler already runs for {settings.home}{f', pid {pid}' if pid else ''})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"无法在 {locks} 建立调度程序的锁文件：{exc.strerror or exc}（请检查该文件夹的权限） "
                          f"(cannot lock {locks})") from None
    try:
        write_private_text(pid_file, str(os.getpid()))
        yield
    finally:
        with contextlib.suppress(OSError):
            pid_file.unlink()
        lock.release()


class Scheduler:
    """Runs ``jobs`` until :meth:`request_stop`. Build it inside the event loop that serves it."""

    anchor: datetime | None = None  # the phase of ``every:`` jobs (None: counted from the start)

    def __init__(
        self, settings: Settings, jobs: list[Job], *, passwords: Mapping[str, str] | None = None,
        grace: float = STOP_GRACE_SECONDS, log: Logger = logger,
        store_retry: tuple[float, float] | None = None, today: Callable[[], date] = date.today,
    ) -> None:
        self.settings = settings
        self.today = today  # the local date (the holiday data's warnings)
        self.store_retry = store_retry or (settings.store.retry_first_seconds, STORE_RETRY_LONGEST_SECONDS)
        self._store_probe: asyncio.Task[Any] | None = None  # while the store cannot be opened
        self.jobs = {j.name: j for j in jobs if j.enabled}
        self.passwords = passwords
        self.grace = grace
        self.log = log
        self.stop = asyncio.Event()  # handed to every run: stop at the next safe point
        self._stopping = asyncio.Event()
        self._active: set[asyncio.Task[Any]] = set()
        self._paused: set[str] = set()  # jobs this scheduler paused because the store says so
        self.aps = AsyncIOScheduler(job_defaults={"max_instances": 1})
        self.notifier = Notifier(settings.notify, log)

    # -- life cycle -------------------------------------------------------------------------
    async def serve(self) -> None:
        """Schedule every job, catch up what was missed while the machine was off, and run until
        :meth:`request_stop`; then stop cleanly (see the module docstring)."""
        self.aps.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)
        for job in self.jobs.values():
            self.aps.add_job(
                self._fire, self._trigger(job), args=[job.name, "schedule"], id=job.name, name=job.describe(),
                misfire_grace_time=job.misfire_grace_seconds, coalesce=job.coalesce, max_instances=1,
            )
        self.aps.start()
        self.log.info("scheduler started: {} job(s)", len(self.jobs))
        for line in self.describe():
            self.log.info("  {}", line)
        for warning in warnings_for(list(self.jobs.values()), self.today()):
            self.log.warning("holiday data: {}", warning)
        self._spawn(self._calendar_notices())
        self._catch_up()  # follows the pauses kept in the store first
        self._spawn(self._watch_pauses())
        await self._stopping.wait()
        await self._shut_down()

    def request_stop(self) -> None:
        """Stop (from a signal handler or another task): no new runs; running ones stop at
        their next safe point."""
        if not self._stopping.is_set():
            self.log.warning("scheduler stopping: running bots finish their current record (up to {:.0f}s)", self.grace)
        self.stop.set()
        self._stopping.set()

    async def _shut_down(self) -> None:
        self.aps.pause()
        running = [t for t in self._active if not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=self.grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=30)
        self.aps.shutdown(wait=False)
        self.log.info("scheduler stopped")

    def describe(self) -> list[str]:
        """A line per job with its next fire time."""
        out = []
        for aps_job in self.aps.get_jobs():
            when = f"{aps_job.next_run_time:%Y-%m-%d %H:%M %Z}" if aps_job.next_run_time else "不再运行 (no next run)"
            out.append(f"{aps_job.id}: 下次 {when}")
        return out

    # -- triggers -------------------------------------------------------------------------
    def _trigger(self, job: Job) -> JobTrigger:
        trigger = job.trigger(anchor=self.anchor)
        inner = trigger.get_next_fire_time
        reported: list[bool] = []
        guessed: set[int] = set()

        def safe(previous_fire_time: datetime | None, now: datetime) -> datetime | None:
            try:
                return inner(previous_fire_time, now)
            except DataFileError as exc:  # never let it reach APScheduler's loop: the job ends, said so
                if not reported:
                    reported.append(True)
                    self.log.error("job {} stops: {}", job.name, exc)
                    self._spawn(self.notifier.send([firing_message(
                        "failed", f"dealerbot 定时任务 {job.name} 已停止", str(exc), console=self.settings.console.public_url)]))
                return None
            finally:
                for year in sorted(trigger.guessed - guessed):
                    guessed.add(year)
                    self.log.warning("job {}: no holiday data for {} (schedules/holidays.yaml, chinesecalendar): "
                                     "it runs Monday to Friday there", job.name, year)

        # This one trigger object's method is wrapped (APScheduler calls it): mypy refuses any assignment to a method.
        trigger.get_next_fire_time = safe  # type: ignore[method-assign]
        return trigger

    def follow_pauses(self, pauses: Mapping[str, Mapping[str, Any]]) -> set[str]:
        """Make APScheduler's pauses those of ``pauses`` (the store's: job -> who and when):
        pause what was paused, resume what this scheduler paused and a person resumed since.
        Returns the names of this timetable's jobs that are paused."""
        for name, pause in pauses.items():
            if name in self.jobs and name not in self._paused and self.aps.get_job(name) is not None:
                self.aps.pause_job(name)
                self._paused.add(name)
                self.log.warning("job {} is paused (by {} at {:%Y-%m-%d %H:%M}): it does not run until resumed",
                                 name, pause["paused_by"], pause["paused_at"])
        for name in sorted(self._paused - set(pauses)):
            self._paused.discard(name)
            if self.aps.get_job(name) is not None:
                self.aps.resume_job(name)
                self.log.warning("job {} resumed", name)
        return set(pauses) & set(self.jobs)

    async def _watch_pauses(self) -> None:
        """Follow the store's pauses every :data:`PAUSE_POLL_SECONDS` (a pause or resume made by a
        console or ``schedule pause`` in another process)."""
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), PAUSE_POLL_SECONDS)
                return
            except TimeoutError:
                pass
            if self._store_probe is not None:
                continue  # the store cannot be opened: its probe catches up when it can
            try:
                pauses = await asyncio.to_thread(self._read_pauses)
            except Exception as exc:  # noqa: BLE001 - a database blink: tried again next time
                self.log.debug("paused jobs not read: {}", exc)
                continue
            self.follow_pauses(pauses)

    def _read_pauses(self) -> dict[str, dict[str, Any]]:
        with Store.open(self.settings.store_url, self.settings.store_code) as store:
            return store.job_pauses()

    def paused_by(self, name: str) -> dict[str, Any] | None:
        """Who paused job ``name`` and when, as the store has it (None: not paused, or the store
        cannot be opened now: a firing then goes on and meets the store's error itself)."""
        try:
            return self._read_pauses().get(name)
        except Exception:  # noqa: BLE001 - the store's errors are dealt with where a run opens it
            return None

    def _catch_up(self) -> None:
        now = datetime.now().astimezone()
        try:
            with Store.open(self.settings.store_url, self.settings.store_code) as store:
                paused = self.follow_pauses(store.job_pauses())
                last_runs = {name: store.last_job_run(name) for name in self.jobs}
        except Exception as exc:  # noqa: BLE001 - a store not reachable yet (PostgreSQL still starting), damaged...
            self._store_unusable(exc)  # caught up once it opens
            return
        for name, job in self.jobs.items():
            last = last_runs[name]
            if job.on_start != "run_once" or last is None or name in paused:
                continue
            started = last.started_at.astimezone(job.tz)  # stored naive, local time: astimezone reads it so
            due = self._trigger(job).get_next_fire_time(started, started)
            if due is not None and due < now - timedelta(seconds=60):
                self.log.warning("job {} missed {:%Y-%m-%d %H:%M} while dealerbot was not running: running it once now",
                                 name, due)
                self.aps.add_job(self._fire, DateTrigger(now, job.tz), args=[name, "catch-up"], id=f"{name}@catch-up",
                                 replace_existing=True, misfire_grace_time=job.misfire_grace_seconds)

    # -- running -------------------------------------------------------------------------
    async def _fire(self, name: str, why: str) -> None:
        """Run one job now; never raises (the scheduler outlives any run)."""
        job = self.jobs[name]
        if self.stop.is_set():
            return
        if self._store_probe is not None:  # said once already; it is tried again meanwhile
            self.log.debug("job {} not started: the store cannot be opened", name)
            return
        pause = await asyncio.to_thread(self.paused_by, name)  # paused meanwhile by a console elsewhere
        if pause is not None:
            self.log.warning("job {} not run: paused by {} at {:%Y-%m-%d %H:%M}", name, pause["paused_by"], pause["paused_at"])
            return
        waits = await asyncio.to_thread(self.login_waits, job)
        if waits is not None:  # a write while a portal's login waits for a person: recorded, not run
            await self._skipped(job, why, waits)
            return
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            options = dict(job.options)
            full = bool(options.pop("full", False))
            if job.run == SYNC:
                from dealerbot.running.sync import sync

                done = await sync(self.settings, full=full, dry_run=bool(options.get("dry_run")), trigger=why,
                                  passwords=self.passwords, job=name, stop=self.stop, workbook=True,
                                  flow=str(options["flow"]) if options.get("flow") else None)
                results: list[RunResult] = done.runs
            else:
                results = [await run_bot(job.run, self.settings, full=full, trigger=why, passwords=self.passwords,
                                         options=options, job=name, stop=self.stop)]
        except AlreadyRunning as exc:
            await self._skipped(job, why, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a failing run never stops the scheduler
            broken = await self._store_error()
            if broken is not None:  # the store is why: say it once, not at every firing
                self._store_unusable(broken)
                return
            if isinstance(exc, DealerbotError):  # a known cause, said in its message
                self.log.error("job {} failed to run: {}", name, exc)
            else:
                self.log.opt(exception=exc).error("job {} failed to run: {}", name, exc)
            await self._skipped(job, why, f"无法开始：{exc}", status="failed")
            return
        finally:
            if task is not None:
                self._active.discard(task)
        for r in results:
            if r.status == "postponed" and r.resume_after is not None and not self.stop.is_set():
                at = r.resume_after.astimezone()  # stored naive, in local time
                self.log.warning("job {} postponed by the portal's maintenance: runs again at {:%m-%d %H:%M}", name, at)
                self.aps.add_job(self._fire, DateTrigger(at), args=[name, "postponed"], id=f"{name}@postponed",
                                 replace_existing=True, misfire_grace_time=job.misfire_grace_seconds)
                break

    def login_waits(self, job: Job) -> str | None:
        """Why ``job`` must not fire now because a login of one of its portals waits for a
        person (:func:`dealerbot.schedule.login_wait.job_waits`); None when it may."""
        from dealerbot.schedule.login_wait import job_waits

        try:
            store = Store.open(self.settings.store_url, self.settings.store_code)
        except Exception:  # noqa: BLE001 - the run itself then says what is wrong with the store
            return None
        with store:
            return job_waits(store, self.settings.home, job.run, job.portals)

    async def _skipped(self, job: Job, why: str, reason: str, status: str = "skipped") -> None:
        """Record (and notify) a firing that did not become a run: ``skipped``, or ``failed``
        when it could not start at all (a broken dictionary, an unusable store)."""
        bot = job.run
        run_id = new_run_id(bot)
        self.log.warning("job {} {}: {}", job.name, status, reason)
        try:
            store = Store.open(self.settings.store_url, self.settings.store_code)
        except Exception as exc:  # noqa: BLE001 - the store itself may be what is broken
            self._store_unusable(exc)
        else:
            try:
                store.record_skipped_run(run_id, bot, why, reason, job=job.name, status=status)
            except Exception as exc:  # noqa: BLE001
                self.log.error("could not record it: {}", exc)
            finally:
                store.close()
        title = f"dealerbot {bot} {'未运行' if status == 'skipped' else '无法开始'}（定时任务 {job.name}）"
        await self.notifier.send([firing_message(status, title, reason, run_id, self.settings.console.public_url)])

    def _on_event(self, event: JobEvent) -> None:
        name = event.job_id.split("@")[0]
        job = self.jobs.get(name)
        if job is None:
            return
        if event.code == EVENT_JOB_MAX_INSTANCES:
            reason = "上一次运行尚未结束，本次跳过 (the previous run of this job is still running)"
        elif event.code == EVENT_JOB_MISSED:
            when = getattr(event, "scheduled_run_time", None)
            reason = (f"错过了 {when:%m-%d %H:%M} 的运行（超过 {job.misfire_grace_seconds} 秒的宽限），"
                      f"等下次 (missed its time by more than the grace period)") if when else "missed"
        else:
            exc = getattr(event, "exception", None)
            self.log.error("job {} raised: {}", name, exc)
            return
        self._spawn(self._skipped(job, "schedule", reason))

    # -- the holiday data -------------------------------------------------------------------
    async def _calendar_notices(self) -> None:
        """Look at the holiday data's warnings now and every hour until the scheduler stops."""
        while True:
            await self.calendar_notice(self.today())
            try:
                await asyncio.wait_for(self._stopping.wait(), CALENDAR_CHECK_SECONDS)
                return
            except TimeoutError:
                pass

    async def calendar_notice(self, today: date) -> bool:
        """Log and send the holiday data's warnings of ``today`` (a year nobody has described,
        from 1 November on) unless that was done already today, in this process or an earlier
        one (``state/calendar-notice`` holds the day). Whether it was done now; never raises."""
        from dealerbot.private_files import write_private_text

        warnings = warnings_for(list(self.jobs.values()), today)
        if not warnings:
            return False
        mark = self.settings.path("state") / "calendar-notice"
        with contextlib.suppress(OSError):
            if mark.read_text(encoding="utf-8").strip() == today.isoformat():
                return False
        for warning in warnings:
            self.log.warning("holiday data: {}", warning)
        try:
            write_private_text(mark, today.isoformat())
        except OSError as exc:  # said; the message still goes out
            self.log.error("could not keep the day of the holiday data's message in {}: {}", mark, exc)
        await self.notifier.send([Message("calendar", "dealerbot：节假日安排尚未录入", "\n".join(warnings))])
        return True

    # -- a store that cannot be opened ------------------------------------------------------
    def _open_and_close_store(self) -> None:
        Store.open(self.settings.store_url, self.settings.store_code).close()

    async def _store_error(self) -> Exception | None:
        """Why the store cannot be opened now, or None when it can."""
        try:
            await asyncio.to_thread(self._open_and_close_store)
        except Exception as exc:  # noqa: BLE001 - whatever the backend raises
            return exc
        return None

    def _store_unusable(self, exc: BaseException) -> None:
        """The store cannot be opened: say so once (no traceback), notify once, and try it again
        after growing pauses until it opens (firings meanwhile do not start)."""
        if self._store_probe is not None or self._stopping.is_set():
            return
        first, longest = self.store_retry
        self.log.error(
            "调度程序无法打开数据库，定时任务暂停，数据库可用后自动继续（{:.0f} 秒后重试，间隔逐次加长，最长 {:.0f} 分钟）："
            "{} (the store cannot be opened: jobs wait until it can)", first, longest / 60, exc)
        self._store_probe = self._spawn(self._until_store_opens())
        self._spawn(self.notifier.send([firing_message(
            "failed", "dealerbot 定时任务暂停：无法打开数据库",
            f"{exc}；调度程序会自动重试（最长每 {longest / 60:.0f} 分钟一次），数据库可用后定时任务自动继续。",
        )]))

    async def _until_store_opens(self) -> None:
        """Try the store after ``store_retry[0]`` seconds, then twice as long each time (at most
        ``store_retry[1]``); when it opens, say so and catch up what was missed."""
        pause, longest = self.store_retry
        attempt = 0
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), pause)
                return  # stopping
            except TimeoutError:
                pass
            attempt += 1
            exc = await self._store_error()
            if exc is None:
                break
            pause = min(pause * 2, longest)
            self.log.debug("the store still cannot be opened (try {}; next in {:.0f}s): {}", attempt, pause, exc)
        self._store_probe = None
        self.log.warning("数据库已恢复可用，定时任务继续运行 (the store can be opened again: jobs go on)")
        self._catch_up()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._active.add(task)
        task.add_done_callback(self._active.discard)
        return task

"""A dealership group's task engine: procrastinate, on the group's PostgreSQL store.

    group scheduler ──defer──▶ procrastinate_jobs (PostgreSQL) ◀──fetch── dealerbot worker (store S01)
                                 queue store.S01 / store.S02 / shared     dealerbot worker (store S02) ...

* **One job = one run** of a bot (or ``sync``) for one store, executed by
  :func:`dealerbot.running.runner.run_bot` / :func:`dealerbot.running.sync.sync` exactly as a single
  dealership runs it: the same ledger, store, evidence and notifications.
* **Queues.** A job whose bot uses a portal reachable only inside the store's network
  (``[group] store_portals``, default the DMS) goes to the store's queue (``store.<code>``),
  served by the worker at that store; the rest go to ``[group] shared_queue``.
* **Locks.** procrastinate's ``lock`` lets one job per key run at a time, across machines:
  ``store:<code>`` for store jobs, ``account:<digest>`` (the portal account) for shared ones.
  Its ``queueing_lock`` (``<store>:<job>``) keeps at most one waiting job per store and
  timetable job: a firing while the last one still waits is recorded ``skipped``.
* **Crashes.** Workers send heartbeats. Every worker also sweeps: a job left ``doing`` by a
  worker without a heartbeat for ``[group] stalled_seconds`` (killed, power cut) has its runs
  marked ``interrupted`` and goes back to ``todo``; the next worker resumes from the ledger
  (search before create, never a blind re-submit), so nothing is lost or written twice.
* **Stopping.** SIGTERM/Ctrl-C: running bots stop at their next safe point; a job cut short
  this way is retried later (``WorkerStopping``).

Celery was the alternative; procrastinate was chosen because the group's store is PostgreSQL
already (no broker to run), it is async like the bots, and its per-key locks, queueing locks and
worker heartbeats are the three guarantees above (docs/groups.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from dealerbot.config import Settings
from dealerbot.errors import AlreadyRunning, ConfigError, DealerbotError, SystemFailure
from dealerbot.schedule.timetable import SYNC

if TYPE_CHECKING:
    from loguru import Logger
    from procrastinate import JobContext

TASK_NAME = "dealerbot.run"
LATER_TASK = "dealerbot.later"  # defers a dealerbot.run when its time comes (a postponed run)
MAX_ATTEMPTS = 5  # a job cut short by stopping workers is tried this many times
SCHEMA_LOCK = 7301002  # advisory lock while procrastinate's schema is applied


class WorkerStopping(Exception):
    """A run was cut short because its worker is stopping: the job is tried again later."""


@dataclass(frozen=True)
class Route:
    """Where a job of one store goes."""

    queue: str
    lock: str


def require_group(settings: Settings) -> None:
    """Raises:
        ConfigError: no ``[stores.*]`` are configured, or the store is not PostgreSQL."""
    if not settings.is_group:
        raise ConfigError(f"没有配置集团门店：请在 {settings.source or 'dealerbot.toml'} 中加入 [stores.<代码>] "
                          f"(no [stores.*] configured; see docs/groups.md)")
    if not settings.store_url.startswith("postgresql"):
        raise ConfigError("集团模式需要 PostgreSQL：请设置 [store] url = \"postgresql+psycopg://...\" "
                          "(a group's store and task queue live in PostgreSQL)")


def conninfo(url: str) -> str:
    """A libpq connection string for the SQLAlchemy URL ``url``."""
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "dbname": u.database, "user": u.username, "password": u.password,
             **{k: v for k, v in u.query.items() if isinstance(v, str)}}
    return make_conninfo(**{k: str(v) for k, v in parts.items() if v is not None})


def route(settings: Settings, store: str, run: str) -> Route:
    """The queue and lock of a job running ``run`` (a bot or ``sync``) for store ``store``.

    Raises:
        ConfigError: no such store. UnknownBot: no such bot.
    """
    from dealerbot.running.bot import bot_portals
    from dealerbot.running.context import account_key
    from dealerbot.running.registry import get_bot

    local = settings.for_store(store)
    portals = ("oem", "dms") if run == SYNC else tuple(bot_portals(get_bot(run, home=settings.home)))
    if set(portals) & set(settings.group.store_portals):
        return Route(settings.store_queue(store), f"store:{store}")
    account = account_key(portals[0], local.portal(portals[0])) if portals else f"{store}:{run}"
    return Route(settings.group.shared_queue, "account:" + hashlib.sha256(account.encode()).hexdigest()[:24])


def default_queues(settings: Settings) -> list[str] | None:
    """The queues a worker serves when none are named: this machine's store and the shared
    queue (``--store`` / ``DEALERBOT_STORE_CODE``), else every queue."""
    if settings.store_code in settings.stores:
        return [settings.store_queue(settings.store_code), settings.group.shared_queue]
    return None


class GroupEngine:
    """The group's procrastinate app with dealerbot's one task. Use as ``async with``.

    Raises (on entry):
        ConfigError: not a group, or PostgreSQL cannot be reached.
    """

    def __init__(self, settings: Settings, log: Logger = logger, report: Callable[[str], None] | None = None) -> None:
        require_group(settings)
        import procrastinate
        from procrastinate import RetryStrategy

        self.settings = settings
        self.log = log
        self.report = report or (lambda _line: None)  # one line per job for the operator's terminal
        self.stop = asyncio.Event()  # set: running bots stop at their next safe point
        # (kept typed: App.connector is any connector to mypy, this one has the connection pool)
        self.connector = procrastinate.PsycopgConnector(conninfo=conninfo(settings.store_url), min_size=1, max_size=4)
        self.app = procrastinate.App(connector=self.connector)
        self.task = self.app.task(
            name=TASK_NAME, pass_context=True,
            retry=RetryStrategy(max_attempts=MAX_ATTEMPTS, wait=5, retry_exceptions={WorkerStopping}),
        )(self._run)
        # A run postponed for hours must not hold its store's lock meanwhile (procrastinate lets no
        # job with the same lock run before a waiting one, however late it is scheduled): the
        # lock-free "later" job defers the real one when its time comes.
        self.later = self.app.task(name=LATER_TASK, retry=RetryStrategy(max_attempts=MAX_ATTEMPTS, wait=30))(
            self._later)
        self._opened: Any = None

    async def __aenter__(self) -> GroupEngine:
        try:
            self._opened = self.app.open_async()
            await self._opened.__aenter__()
            await self.ensure_schema()
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - connection errors vary
            raise ConfigError(f"无法连接集团数据库 (cannot reach the group's PostgreSQL): {str(exc).splitlines()[0]}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._opened is not None:
            await self._opened.__aexit__(None, None, None)

    async def ensure_schema(self) -> None:
        """Create procrastinate's tables in the group's database if they are missing (once,
        under an advisory lock: several workers may start at once)."""
        async with self.connector.pool.connection() as conn:  # one transaction
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))  # held until the commit
            cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            row = await cur.fetchone()
            if not (row and row[0]):
                await conn.execute(self.app.schema_manager.get_schema())
                self.log.info("created the task engine's tables (procrastinate)")

    # -- deferring --------------------------------------------------------------------------
    async def defer(
        self, store: str, run: str, *, job: str | None = None, trigger: str = "manual",
        options: dict[str, Any] | None = None, schedule_at: datetime | None = None,
    ) -> int | None:
        """Queue a run of ``run`` for ``store``. Returns the engine's job id, or None when a job
        with the same queueing lock (same store and timetable job) is still waiting.

        Raises:
            ConfigError: no such store. UnknownBot: no such bot.
        """
        from procrastinate.exceptions import AlreadyEnqueued

        r = route(self.settings, store, run)
        try:
            return int(await self.task.configure(
                queue=r.queue, lock=r.lock, queueing_lock=f"{store}:{job or run}", schedule_at=schedule_at,
            ).defer_async(store=store, run=run, job=job, trigger=trigger, options=dict(options or {})))
        except AlreadyEnqueued:
            return None

    # -- the task ---------------------------------------------------------------------------
    async def _run(
        self, context: JobContext, store: str, run: str, job: str | None = None, trigger: str = "manual",
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One job: the run (or sync) for the store, as a single dealership runs it."""
        from dealerbot.running.runner import RunResult, new_run_id, run_bot
        from dealerbot.store import Store

        settings = self.settings.for_store(store)
        options = dict(options or {})
        full = bool(options.pop("full", False))
        assert context.job.id is not None  # a job the worker runs was saved: it has its id
        engine_job = int(context.job.id)
        attempt = int(getattr(context.job, "attempts", 0) or 0)
        why = trigger if attempt == 0 else "retry"
        self.log.info("job {} (attempt {}): {} for store {} ({})", engine_job, attempt + 1, run, store, why)
        again = f"（第 {attempt + 1} 次）" if attempt else ""
        self.report(f"任务 {engine_job}：门店 {store} 开始 {run}{again}")
        stopped_early = False
        try:
            if run == SYNC:
                from dealerbot.running.sync import sync

                done = await sync(settings, full=full, dry_run=bool(options.get("dry_run")), trigger=why, job=job,
                                  stop=self.stop, engine_job=engine_job, workbook=True,
                                  flow=str(options["flow"]) if options.get("flow") else None)
                results: list[RunResult] = done.runs
                stopped_early = done.stopped is not None and self.stop.is_set()
            else:
                results = [await run_bot(run, settings, full=full, trigger=why, options=options, job=job,
                                         stop=self.stop, engine_job=engine_job)]
        except AlreadyRunning as exc:
            with Store.open(settings.store_url, store) as dealership:
                dealership.record_skipped_run(new_run_id(run), run, why, str(exc), job=job)
            return {"skipped": str(exc)}
        except DealerbotError as exc:  # it could not start (a broken dictionary...): shown in the store's runs
            self.log.error("job {}: {} for store {} could not start: {}", engine_job, run, store, exc)
            self.report(f"任务 {engine_job}：门店 {store} {run} 无法开始：{exc}")
            with Store.open(settings.store_url, store) as dealership:
                dealership.record_skipped_run(new_run_id(run), run, why, f"无法开始：{exc}", job=job, status="failed")
            return {"failed": str(exc)}
        except asyncio.CancelledError:  # the worker's stop grace ran out: the run is recorded interrupted
            if self.stop.is_set():
                raise WorkerStopping(f"{run} for store {store} was cut off by its worker stopping") from None
            raise
        if self.stop.is_set() and (stopped_early or any(r.status == "interrupted" for r in results)):
            raise WorkerStopping(f"{run} for store {store} was stopped with its worker; it runs again later")
        for r in results:
            if r.status == "postponed" and r.resume_after is not None:
                at = r.resume_after.astimezone()
                later = await self.later.configure(
                    queue=route(self.settings, store, run).queue, schedule_at=at,
                ).defer_async(store=store, run=run, job=job, options={**options, "full": full})
                self.log.warning("job {}: {} postponed by the portal's maintenance; job {} queues it at {:%m-%d %H:%M}",
                                 engine_job, run, later, at)
                break
        from dealerbot.status_text import STATUS_TEXT

        outcome = {r.bot: r.status for r in results}
        self.report(f"任务 {engine_job}：门店 {store} {run} 结束："
                    + "，".join(f"{bot} {STATUS_TEXT.get(st, st)}" for bot, st in outcome.items()))
        return outcome

    async def _later(self, store: str, run: str, job: str | None = None, options: dict[str, Any] | None = None) -> None:
        """A postponed run's time has come: queue it (with its store's lock, as any run)."""
        await self.defer(store, run, job=job, trigger="postponed", options=options)

    # -- crashes ----------------------------------------------------------------------------
    async def sweep_stalled(self) -> list[int]:
        """Take over the jobs of workers without a heartbeat for ``[group] stalled_seconds``:
        their runs marked ``interrupted`` and the job back in the queue, in one transaction that
        applies only while the job is still ``doing`` for that silent worker (several workers
        sweep at once: each job is taken over once, and never from a worker that has it now).
        Returns the job ids taken over."""
        from dealerbot.store import Store

        stalled = await self.app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=self.settings.group.stalled_seconds)
        taken: list[int] = []
        for job in stalled:
            if job.task_name != TASK_NAME or job.id is None:
                continue
            store = str(job.task_kwargs.get("store", "")) or "main"

            def take_over(job_id: int = job.id, worker: int | None = job.worker_id, code: str = store
                          ) -> tuple[str, list[str]]:
                with Store.open(self.settings.store_url, code) as st:
                    return st.take_over_engine_job(job_id, worker)

            how, runs = await asyncio.to_thread(take_over)
            if not how:
                continue  # another worker took it over first, or it finished meanwhile
            what = {"requeued": ("back in the queue", "任务重新排队"),
                    "replaced": ("the store's waiting job of the same kind takes over", "由同一门店排队中的同类任务接手")}[how]
            self.log.warning("job {} ({} for store {}) lost its worker; {} (runs {} interrupted)",
                             job.id, job.task_kwargs.get("run"), store, what[0], ", ".join(runs) or "none")
            self.report(f"任务 {job.id}：门店 {store} 的工作进程已失联，{what[1]} (taken over)")
            taken.append(job.id)
        return taken

    async def prune(self, keep_days: int = 30) -> None:
        """Forget finished jobs and claimed firings older than ``keep_days`` (the runs table
        keeps the history)."""
        from datetime import timedelta

        from dealerbot.store import Store

        await self.app.job_manager.delete_old_jobs(nb_hours=keep_days * 24, include_failed=True,
                                                   include_cancelled=True, include_aborted=True)

        def fires() -> int:
            with Store.open(self.settings.store_url) as st:
                return st.prune_fires(timedelta(days=keep_days))

        await asyncio.to_thread(fires)

    # -- serving ----------------------------------------------------------------------------
    async def serve(self, queues: Iterable[str] | None, concurrency: int = 1, shutdown_grace: float = 120.0,
                    stopping: asyncio.Event | None = None) -> None:
        """Work on ``queues`` (None: every queue) until ``stopping`` is set; then let running bots
        stop at their next safe point (up to ``shutdown_grace`` seconds)."""
        from procrastinate.worker import Worker

        g = self.settings.group
        worker = Worker(
            self.app, queues=list(queues) if queues else None, concurrency=concurrency,
            name=f"{socket.gethostname()}:{os.getpid()}", install_signal_handlers=False,
            update_heartbeat_interval=g.heartbeat_seconds, stalled_worker_timeout=g.stalled_seconds,
            shutdown_graceful_timeout=shutdown_grace, fetch_job_polling_interval=2.0,
            listen_notify=True, delete_jobs="never",
        )
        stopping = stopping or asyncio.Event()

        async def sweeper() -> None:
            pruned = 0.0
            loop = asyncio.get_running_loop()
            while not stopping.is_set():
                try:
                    await self.sweep_stalled()
                    if loop.time() - pruned > 3600:
                        await self.prune()
                        pruned = loop.time()
                except Exception as exc:  # noqa: BLE001 - the database may blink; the worker goes on
                    self.log.error("could not look for stalled jobs: {}", exc)
                try:
                    await asyncio.wait_for(stopping.wait(), timeout=max(1.0, g.stalled_seconds / 3))
                except TimeoutError:
                    pass

        async def stopper() -> None:
            await stopping.wait()
            self.stop.set()  # bots: stop at the next safe point
            worker.stop()

        sweep = asyncio.create_task(sweeper())
        stop_task = asyncio.create_task(stopper())
        self.log.info("worker started on {} ({} at a time)", ", ".join(queues) if queues else "every queue", concurrency)
        try:
            await worker.run()
        finally:
            for t in (sweep, stop_task):
                t.cancel()
            await asyncio.gather(sweep, stop_task, return_exceptions=True)
        if not stopping.is_set():  # procrastinate stopped on its own (the database went away)
            raise SystemFailure("工作进程意外停止（与集团数据库的连接中断？），请检查后重新启动 "
                                "(the worker stopped by itself: the group's database connection failed)")
        self.log.info("worker stopped")

    # -- status -----------------------------------------------------------------------------
    async def queue_depths(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and status (todo, doing, succeeded, failed...)."""
        rows = await self.app.job_manager.list_queues_async()
        return {r["name"]: {k: int(v) for k, v in r.items() if k not in ("name", "jobs_count")} for r in rows}

    async def store_depths(self) -> dict[str, dict[str, int]]:
        """Each store's jobs waiting (todo) and running (doing), whichever queue they are in."""
        async with self.connector.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT args->>'store', status::text, count(*) FROM procrastinate_jobs "
                "WHERE status IN ('todo', 'doing') AND task_name = %s GROUP BY 1, 2", (TASK_NAME,))
            out: dict[str, dict[str, int]] = {}
            for store, status, n in await cur.fetchall():
                out.setdefault(str(store), {})[status] = int(n)
            return out

    async def workers(self) -> list[dict[str, Any]]:
        """The workers alive (a heartbeat within ``[group] stalled_seconds``) and how many jobs
        each is running."""
        async with self.connector.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT w.id, w.last_heartbeat, count(j.id) FROM procrastinate_workers w "
                "LEFT JOIN procrastinate_jobs j ON j.worker_id = w.id AND j.status = 'doing' "
                "WHERE w.last_heartbeat > now() - make_interval(secs => %s) GROUP BY w.id ORDER BY w.id",
                (self.settings.group.stalled_seconds,))
            return [{"id": r[0], "last_heartbeat": r[1], "running": int(r[2])} for r in await cur.fetchall()]


def utc_slot(moment: datetime) -> str:
    """A fire time as the claim key: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""The group's timetable: the same jobs, calendars and blackouts as a single dealership's
(:mod:`dealerbot.scheduler`), but a firing *defers* one engine job per store instead of running
the bot here.

No double fire, however many schedulers run (two machines for safety, or one started twice):
each firing has a deterministic key, (store, job, scheduled time in UTC), computed from the
trigger alone (``every:`` jobs are phased from a fixed anchor, so every scheduler computes the
same times). A scheduler first inserts that key into the ``fires`` table (unique; the others'
inserts find it taken) and only the one that inserted it defers the job. The engine's queueing
lock then keeps at most one waiting job per store and timetable job.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.date import DateTrigger
from loguru import logger

from dealerbot.config import Settings
from dealerbot.errors import DealerbotError
from dealerbot.group.engine import GroupEngine, utc_slot
from dealerbot.notify import Message
from dealerbot.runner import new_run_id
from dealerbot.scheduler import Scheduler
from dealerbot.store import Store
from dealerbot.timetable import GROUP_ANCHOR, Job


class GroupScheduler(Scheduler):
    """Defers each firing of ``jobs`` into ``engine`` once per store (see the module docstring)."""

    anchor = GROUP_ANCHOR  # every scheduler phases ``every:`` jobs from here

    def __init__(self, settings: Settings, jobs: list[Job], engine: GroupEngine, *, log: Any = logger,
                 passwords: Mapping[str, str] | None = None) -> None:
        super().__init__(settings, jobs, passwords=passwords, log=log)
        self.engine = engine
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def stores_of(self, job: Job) -> list[str]:
        """The stores a job runs for (its ``stores:``, else every store)."""
        return list(job.stores) or list(self.settings.stores)

    def slot(self, job: Job, now: datetime | None = None) -> datetime | None:
        """The job's latest scheduled time at or before ``now`` (within its misfire grace), the
        same on every scheduler."""
        now = now or datetime.now(UTC)
        trigger = self._trigger(job)
        t = trigger.get_next_fire_time(None, now - timedelta(seconds=job.misfire_grace_seconds))
        last = None
        while t is not None and t <= now + timedelta(seconds=1):  # APScheduler may fire a hair early
            last = t
            t = trigger.get_next_fire_time(last, last + timedelta(seconds=1))
        return last

    async def _fire(self, name: str, why: str, slots: dict[str, str] | None = None) -> None:
        """Defer the job for each of its stores whose firing this scheduler claims; never raises."""
        job = self.jobs[name]
        if self.stop.is_set():
            return
        task = asyncio.current_task()
        if task is not None:  # a stop waits for it: a firing claimed is deferred or recorded, not cut off
            self._active.add(task)
        try:
            await self._defer_firing(job, why, slots)
        finally:
            if task is not None:
                self._active.discard(task)

    async def _defer_firing(self, job: Job, why: str, slots: dict[str, str] | None) -> None:
        name = job.name
        if slots is None:
            at = self.slot(job)
            if at is None:
                self.log.warning("job {} fired outside its timetable ({}): ignored", name, why)
                return
            slots = dict.fromkeys(self.stores_of(job), utc_slot(at))
        options = dict(job.options)
        try:
            with Store.open(self.settings.store_url) as base:
                for store, key in slots.items():
                    st = base.for_code(store)
                    if not st.claim_fire(name, key, self.name):
                        self.log.debug("job {} for store {} at {}: deferred by another scheduler", name, store, key)
                        continue
                    engine_job = await self.engine.defer(store, job.run, job=name, trigger=why, options=options)
                    if engine_job is None:
                        reason = ("上一次的任务仍在排队，本次跳过 (the previous job of this store is still waiting "
                                  "for a worker)")
                        st.record_skipped_run(new_run_id(job.run), job.run, why, reason, job=name)
                        await self.notifier.send([Message("skipped", f"dealerbot {job.run} 未运行（门店 {store}，定时任务 {name}）",
                                                          reason)])
                        continue
                    st.note_fire_job(name, key, engine_job)
                    self.log.info("job {} for store {} ({}): deferred as engine job {}", name, store, key, engine_job)
        except Exception as exc:  # noqa: BLE001 - the scheduler outlives a database blink
            self.log.opt(exception=exc).error("job {} could not be deferred: {}", name, exc)

    def _catch_up(self) -> None:
        """After the schedulers were all off: a store whose last run of a job is older than a
        firing it should have had gets that firing now (claimed like any other)."""
        now = datetime.now().astimezone()
        try:
            base = Store.open(self.settings.store_url)
        except DealerbotError as exc:
            self.log.error("no catch-up of missed runs: {}", exc)
            return
        with base:
            for name, job in self.jobs.items():
                if job.on_start != "run_once":
                    continue
                due: dict[str, str] = {}
                for store in self.stores_of(job):
                    last = base.for_code(store).last_job_run(name)
                    if last is None:
                        continue
                    started = last.started_at.astimezone(job.tz)
                    missed = self._trigger(job).get_next_fire_time(started, started)
                    if missed is not None and missed < now - timedelta(seconds=60):
                        due[store] = utc_slot(missed)
                if due:
                    self.log.warning("job {} missed firings while no scheduler ran (stores {}): deferring them once now",
                                     name, ", ".join(due))
                    self.aps.add_job(self._fire, DateTrigger(now, job.tz), args=[name, "catch-up", due],
                                     id=f"{name}@catch-up", replace_existing=True,
                                     misfire_grace_time=job.misfire_grace_seconds)

    async def _skipped(self, job: Job, why: str, reason: str, status: str = "skipped") -> None:
        """A firing that deferred nothing (missed, or could not start): recorded for each store."""
        self.log.warning("job {} {}: {}", job.name, status, reason)
        try:
            with Store.open(self.settings.store_url) as base:
                for store in self.stores_of(job):
                    base.for_code(store).record_skipped_run(new_run_id(job.run), job.run, why, reason, job=job.name,
                                                            status=status)
        except Exception as exc:  # noqa: BLE001 - the store itself may be what is broken
            self.log.error("could not record it: {}", exc)
        title = f"dealerbot {job.run} {'未运行' if status == 'skipped' else '无法开始'}（定时任务 {job.name}，全部门店）"
        await self.notifier.send([Message(status, title, f"原因：{reason}")])

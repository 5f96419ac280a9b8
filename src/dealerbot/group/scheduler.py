"""The group's scheduler: the same timetable jobs, calendars and blackouts
(:mod:`dealerbot.schedule.timetable`) and the same firing rules as a single dealership's scheduler
(:mod:`dealerbot.schedule.scheduler`, which :class:`GroupScheduler` extends), but a firing *defers*
one engine job per store (:mod:`dealerbot.group.engine`; a worker runs it) instead of running the
bot here.

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
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.date import DateTrigger
from loguru import logger

from dealerbot.config import Settings
from dealerbot.errors import DealerbotError
from dealerbot.group.engine import GroupEngine, utc_slot
from dealerbot.running.notify import firing_message
from dealerbot.running.runner import new_run_id
from dealerbot.schedule.scheduler import Scheduler
from dealerbot.schedule.timetable import GROUP_ANCHOR, Job
from dealerbot.store import Store

if TYPE_CHECKING:
    from loguru import Logger


class GroupScheduler(Scheduler):
    """Defers each firing of ``jobs`` into ``engine`` once per store (see the module docstring)."""

    anchor = GROUP_ANCHOR  # every scheduler phases ``every:`` jobs from here

    def __init__(self, settings: Settings, jobs: list[Job], engine: GroupEngine, *, log: Logger = logger,
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
        pause = await asyncio.to_thread(self.paused_by, name)
        if pause is not None:
            self.log.warning("job {} not deferred: paused by {} at {:%Y-%m-%d %H:%M}", name, pause["paused_by"], pause["paused_at"])
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
        try:
            base = await asyncio.to_thread(Store.open, self.settings.store_url)
        except Exception as exc:  # noqa: BLE001 - the scheduler outlives a database blink
            self.log.error("job {} could not be deferred (the store cannot be opened): {}", name, exc)
            return
        with base:
            for store, key in slots.items():  # each store on its own: one failing store stops no other
                await self._defer_for(base.for_code(store), job, why, key)

    async def _defer_for(self, dealership: Store, job: Job, why: str, key: str) -> None:
        """Claim the firing ``key`` of ``job`` for the store ``dealership`` and defer it; a claimed firing is
        either in the queue, or recorded (skipped: the last one still waits; failed: it could not
        be queued, and the claim is given up)."""
        name, store = job.name, dealership.code
        try:
            if not await asyncio.to_thread(dealership.claim_fire, name, key, self.name):
                self.log.debug("job {} for store {} at {}: deferred by another scheduler", name, store, key)
                return
        except Exception as exc:  # noqa: BLE001 - not claimed: another scheduler may still take it
            self.log.error("job {} for store {} at {}: could not claim the firing: {}", name, store, key, exc)
            return
        from dealerbot.schedule.login_wait import job_waits

        waits = await asyncio.to_thread(job_waits, dealership, self.settings.home, job.run, job.portals)
        if waits is not None:  # a write while this store's login waits for a person: recorded, not queued
            await self._record(dealership, job, why, waits, "skipped")
            return
        try:
            engine_job = await self.engine.defer(store, job.run, job=name, trigger=why, options=dict(job.options))
        except Exception as exc:  # noqa: BLE001 - recorded and notified below
            self.log.opt(exception=exc).error("job {} for store {} could not be queued: {}", name, store, exc)
            await self._record(dealership, job, why, f"无法加入队列：{exc}", "failed", release=key)
            return
        if engine_job is None:
            await self._record(dealership, job, why, "上一次的任务仍在排队，本次跳过 (the previous job of this store is still "
                                             "waiting for a worker)", "skipped")
            return
        await asyncio.to_thread(dealership.note_fire_job, name, key, engine_job)
        self.log.info("job {} for store {} ({}): deferred as engine job {}", name, store, key, engine_job)

    async def _record(self, dealership: Store, job: Job, why: str, reason: str, status: str, release: str | None = None) -> None:
        """Record (and notify) a claimed firing that queued nothing."""
        self.log.warning("job {} for store {} {}: {}", job.name, dealership.code, status, reason)
        try:
            await asyncio.to_thread(dealership.record_skipped_run, new_run_id(job.run), job.run, why, reason, job.name, status)
            if release is not None:
                await asyncio.to_thread(dealership.release_fire, job.name, release)
        except Exception as exc:  # noqa: BLE001 - the store itself may be what is broken
            self.log.error("could not record it: {}", exc)
        title = f"dealerbot {job.run} {'未运行' if status == 'skipped' else '无法开始'}（门店 {dealership.code}，定时任务 {job.name}）"
        await self.notifier.send([firing_message(status, title, reason)])

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
            try:
                paused = self.follow_pauses(base.for_code(self.settings.store_code).job_pauses())
            except Exception as exc:  # noqa: BLE001 - a database blink: pauses are checked again at each firing
                self.log.error("paused jobs not read: {}", exc)
                paused = set()
            for name, job in self.jobs.items():
                if job.on_start != "run_once" or name in paused:
                    continue
                due: dict[str, str] = {}
                for store in self.stores_of(job):
                    try:
                        last = base.for_code(store).last_job_run(name)
                    except Exception as exc:  # noqa: BLE001 - a database blink costs a catch-up, not the scheduler
                        self.log.error("no catch-up of job {} for store {}: {}", name, store, exc)
                        continue
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

    async def _skipped(self, job: Job, why: str, reason: str, status: str = "skipped",
                       when: datetime | None = None) -> None:
        """A firing that queued nothing (missed by this scheduler, or the last one still
        deferring): recorded for each store whose firing this scheduler claims, so that with two
        schedulers the one that did defer it is not contradicted."""
        at = when or self.slot(self.jobs[job.name]) or datetime.now(UTC)
        try:
            base = await asyncio.to_thread(Store.open, self.settings.store_url)
        except Exception as exc:  # noqa: BLE001 - the store itself may be what is broken
            self.log.error("job {} {}: {} (not recorded: {})", job.name, status, reason, exc)
            return
        with base:
            for store in self.stores_of(job):
                dealership = base.for_code(store)
                try:
                    claimed = await asyncio.to_thread(dealership.claim_fire, job.name, utc_slot(at), self.name)
                except Exception as exc:  # noqa: BLE001
                    self.log.error("could not record it: {}", exc)
                    return
                if claimed:
                    await self._record(dealership, job, why, reason, status)

    def _on_event(self, event: Any) -> None:
        """APScheduler's missed or overlapping firings, with the time they were due."""
        from apscheduler.events import EVENT_JOB_MISSED

        name = event.job_id.split("@")[0]
        job = self.jobs.get(name)
        if job is None or event.code != EVENT_JOB_MISSED:
            super()._on_event(event)
            return
        when = getattr(event, "scheduled_run_time", None)
        reason = (f"错过了 {when:%m-%d %H:%M} 的运行（超过 {job.misfire_grace_seconds} 秒的宽限），等下次 "
                  f"(missed its time by more than the grace period)") if when else "missed"
        self._spawn(self._skipped(job, "schedule", reason, when=when))

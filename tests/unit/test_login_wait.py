"""The timetable while a login waits for a person (#23): the real Scheduler over a real SQLite
store. A writing job through a portal whose newest finished run ended needs_person is recorded
as skipped with why (the 运行记录/状态 shows it), a reading job is not held back, and a run
that got past the login frees the writes again."""

from __future__ import annotations

from pathlib import Path

import pytest

from dealerbot.config import load_settings
from dealerbot.running.registry import discover
from dealerbot.schedule.scheduler import Scheduler
from dealerbot.schedule.timetable import load_timetables
from dealerbot.store import Store

JOBS = """timezone: Asia/Shanghai
jobs:
  - {name: rekey, run: dms-rekey, cron: "0 9 * * *"}
  - {name: sync, run: sync, cron: "0 7 * * *"}
  - {name: orders, run: oem-orders, cron: "0 8 * * *"}
"""


def _run(store: Store, run_id: str, bot: str, status: str) -> None:
    store.start_run(run_id, bot, "schedule")
    store.finish_run(run_id, status, {}, "门户登录需要人工" if status == "needs_person" else None, None, [])


@pytest.fixture
def scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scheduler:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "jobs.yaml").write_text(JOBS, encoding="utf-8")
    settings = load_settings(None)
    return Scheduler(settings, load_timetables(tmp_path / "schedules", discover()))


async def test_writes_wait_while_a_login_waits_for_a_person(scheduler: Scheduler) -> None:
    settings = scheduler.settings
    jobs = scheduler.jobs
    with Store.open(settings.store_url) as store:
        _run(store, "20261208-070000-oem-orders-aaaa", "oem-orders", "succeeded")
        _run(store, "20261208-080000-dms-customers-bbbb", "dms-customers", "needs_person")  # the DMS login waits
    assert scheduler.login_waits(jobs["orders"]) is None  # reading the OEM goes on
    assert "等待人工登录" in (scheduler.login_waits(jobs["sync"]) or "")  # the sync writes into the DMS
    await scheduler._fire("rekey", "schedule")  # the real firing: recorded, not run
    with Store.open(settings.store_url) as store:
        [skipped] = [r for r in store.runs(10) if r.job == "rekey"]
    assert skipped.status == "skipped" and "等待人工登录" in (skipped.error or "")
    assert "20261208-080000-dms-customers-bbbb" in (skipped.error or "")
    # the skip itself does not end the wait; a run that got past the DMS login does
    assert scheduler.login_waits(jobs["rekey"]) is not None
    with Store.open(settings.store_url) as store:
        _run(store, "20261208-090000-dms-contracts-cccc", "dms-contracts", "succeeded")
    assert scheduler.login_waits(jobs["rekey"]) is None and scheduler.login_waits(jobs["sync"]) is None

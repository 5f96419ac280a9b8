"""Which runs make the newest sync (the console's 今日 and 同步 pages show it step by step)."""

from __future__ import annotations

from datetime import datetime, timedelta

from dealerbot.running.sync import CONSOLE_JOB, MANUAL_JOB, last_sync
from dealerbot.store import RunRecord

T0 = datetime(2026, 12, 7, 7, 30)


def _run(minute: int, bot: str, job: str | None, status: str = "succeeded") -> RunRecord:
    return RunRecord(run_id=f"{minute:02d}-{bot}", bot=bot, trigger="schedule", started_at=T0 + timedelta(minutes=minute),
                     ended_at=None, status=status, counts={}, error=None, evidence_dir=None, evidence=[], options={},
                     job=job)


def _newest_first(*runs: RunRecord) -> list[RunRecord]:
    return sorted(runs, key=lambda r: r.started_at, reverse=True)


JOBS = ["daily-sync", MANUAL_JOB, CONSOLE_JOB]


def test_the_newest_chain_of_a_sync_job_from_its_first_step_with_other_jobs_runs_left_out():
    runs = _newest_first(
        _run(0, "oem-orders", "daily-sync"), _run(1, "oem-customers", "daily-sync"),  # yesterday's, say
        _run(10, "oem-orders", "daily-sync"), _run(11, "oem-customers", "daily-sync"),
        _run(12, "oem-orders", "orders-daytime"),  # the hourly job, meanwhile
        _run(13, "dms-customers", "daily-sync"), _run(14, "dms-contracts", "daily-sync", "failed"),
        _run(15, "dms-contracts", None),  # started by hand
    )
    assert [r.run_id for r in last_sync(runs, JOBS)] == ["10-oem-orders", "11-oem-customers", "13-dms-customers",
                                                          "14-dms-contracts"]


def test_a_console_sync_after_a_timetable_one_is_the_newest_and_a_skipped_firing_is_a_sync_of_its_own():
    runs = _newest_first(_run(0, "oem-orders", "daily-sync"), _run(5, "oem-orders", CONSOLE_JOB),
                         _run(6, "oem-customers", CONSOLE_JOB))
    assert [r.bot for r in last_sync(runs, JOBS)] == ["oem-orders", "oem-customers"]
    skipped = _run(9, "sync", "daily-sync", "skipped")
    assert last_sync(_newest_first(*runs, skipped), JOBS) == [skipped]
    assert last_sync(_newest_first(_run(0, "oem-orders", None), _run(1, "oem-orders", "orders-daytime")), JOBS) == []


def test_only_a_failure_needs_a_person_not_a_run_stopped_on_purpose_or_settled_by_a_later_success():
    from dealerbot.console.home import needs_a_person

    runs = _newest_first(
        _run(0, "dms-customers", None, "failed"), _run(5, "dms-customers", None),  # settled by a success
        _run(6, "dms-rekey", None, "interrupted"),  # 停止 pressed: the next run goes on
        _run(7, "oem-orders", None, "postponed"),  # runs again by itself
        _run(8, "oem-customers", None, "failed"),
    )
    assert [(r.bot, advice.fix) for r, advice in needs_a_person(runs)] == [("oem-customers", "rerun")]


def test_the_chain_of_a_flow_of_ones_own_ends_where_its_first_bot_ran_before():
    """A sync of the used-car flow alone (issue #24) starts with trade-ins, not oem-orders: the
    sync before it is not part of the newest chain."""
    runs = _newest_first(_run(0, "trade-ins", MANUAL_JOB), _run(1, "usedcars-stock", MANUAL_JOB),
                         _run(10, "trade-ins", MANUAL_JOB), _run(11, "usedcars-stock", MANUAL_JOB),
                         _run(12, "usedcars-flow-write", MANUAL_JOB))
    assert [r.run_id for r in last_sync(runs, JOBS)] == ["10-trade-ins", "11-usedcars-stock", "12-usedcars-flow-write"]

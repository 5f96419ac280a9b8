"""The timetable's calendar and blackouts at their edges, and the notes ``schedule check`` prints
(docs/testing.md, "Mutation testing")."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from dealerbot.running.registry import discover
from dealerbot.schedule.timetable import Blackout, JobTrigger, fire_times, load_timetables

TZ = ZoneInfo("Asia/Shanghai")


def _jobs(tmp_path: Path, text: str):
    folder = tmp_path / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "t.yaml").write_text(text, encoding="utf-8")
    return load_timetables(folder, discover())


def test_a_window_is_parsed_to_its_minutes_and_midnight_is_the_end_of_the_day() -> None:
    assert Blackout.parse("01:05-02:07") == Blackout(time(1, 5), time(2, 7), "all", until_midnight=False)
    assert Blackout.parse("22:30-24:00", "month_end") == Blackout(time(22, 30), time(0, 0), "month_end", until_midnight=True)
    assert Blackout.parse("00:00-24:00").until_midnight


@pytest.mark.parametrize(("window", "message"), [
    ("2:00-04:00", "window must look like 02:00-04:00 (24h), got '2:00-04:00'"),
    ("24:00-02:00", "window '24:00-02:00' is not a span of time"),
    ("22:00-24:30", "window '22:00-24:30' is not a span of time"),
    ("02:00-02:00", "window '02:00-02:00' is not a span of time"),
])
def test_a_window_that_is_no_span_of_time_is_refused_saying_so(window: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        Blackout.parse(window)
    assert str(exc.value) == message


def test_a_window_holds_from_its_first_minute_to_before_its_last() -> None:
    b = Blackout.parse("02:00-04:00")
    day = datetime(2026, 11, 25, tzinfo=TZ)
    assert b.end_of(day.replace(hour=2)) == day.replace(hour=4)
    assert b.end_of(day.replace(hour=3, minute=59)) == day.replace(hour=4)
    assert b.end_of(day.replace(hour=4)) is None and b.end_of(day.replace(hour=1, minute=59)) is None


def test_a_month_end_window_across_midnight_still_holds_on_the_first_of_the_next_month() -> None:
    b = Blackout.parse("22:00-02:00", "month_end")
    assert b.end_of(datetime(2026, 12, 1, 1, 0, tzinfo=TZ)) == datetime(2026, 12, 1, 2, 0, tzinfo=TZ)
    assert b.end_of(datetime(2026, 11, 30, 23, 0, tzinfo=TZ)) == datetime(2026, 12, 1, 2, 0, tzinfo=TZ)
    assert b.end_of(datetime(2026, 11, 29, 23, 0, tzinfo=TZ)) is None  # not the month's last day


def test_a_run_postponed_into_a_holiday_waits_for_the_next_working_day_and_schedule_check_says_why(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, """
blackouts:
  oem:
    - window: "22:00-24:00"
jobs:
  - {name: late, run: oem-orders, cron: "0 23 * * *", days: workdays}
""")
    trigger = job.trigger()
    times = fire_times(job, 3, datetime(2026, 9, 30, 12, 0, tzinfo=TZ), trigger)
    # 09-30 23:00 moves to 10-01 00:00, a holiday (10-01..10-07); 10-10 is a 调休 Saturday, 10-11 a Sunday.
    assert times == [datetime(2026, 10, 9, tzinfo=TZ), datetime(2026, 10, 10, tzinfo=TZ), datetime(2026, 10, 13, tzinfo=TZ)]
    assert list(trigger.moved) == [
        "2026-09-30 23:00 在停用时段内，推迟到 00:00",
        "2026-10-02 Fri 法定节假日，不运行",
        "2026-10-05 Mon 法定节假日，不运行",
        "2026-10-06 Tue 法定节假日，不运行",
        "2026-10-07 Wed 法定节假日，不运行",
        "2026-10-08 23:00 在停用时段内，推迟到 00:00",
        "2026-10-09 23:00 在停用时段内，推迟到 00:00",
        "2026-10-10 Sat 调休工作日，照常运行",
        "2026-10-10 23:00 在停用时段内，推迟到 00:00",
        "2026-10-12 23:00 在停用时段内，推迟到 00:00",
    ]


def test_beyond_the_holiday_data_a_weekdays_job_also_moves_a_postponed_run_off_the_weekend(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, """
blackouts:
  oem:
    - window: "22:00-24:00"
jobs:
  - {name: late, run: oem-orders, cron: "0 23 * * *", days: workdays, beyond_calendar: weekdays}
""")
    friday = datetime(2099, 1, 2, 12, 0, tzinfo=TZ)  # a year chinesecalendar does not know
    assert friday.weekday() == 4
    # Friday 23:00 moves to Saturday 00:00: no working day, so Monday 23:00 moves to Tuesday 00:00.
    assert fire_times(job, 1, friday) == [datetime(2099, 1, 6, tzinfo=TZ)]


def test_a_job_on_every_day_runs_through_weekends_and_holidays_without_notes(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, "jobs:\n  - {name: daily, run: sync, cron: '30 7 * * *'}\n")
    trigger = job.trigger()
    times = fire_times(job, now=datetime(2026, 10, 1, 9, 0, tzinfo=TZ), trigger=trigger)
    assert [t.day for t in times] == [2, 3, 4, 5, 6] and not trigger.moved  # five by default


def test_an_every_job_fires_in_its_own_time_zone(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, "jobs:\n  - {name: poll, run: sync, every: 30m}\n")
    times = fire_times(job, 2, datetime(2026, 11, 25, 9, 0, tzinfo=TZ))
    assert all(t.tzinfo == TZ for t in times) and times[1] - times[0] == timedelta(minutes=30)


def test_fire_times_stop_when_the_trigger_ends(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, "jobs:\n  - {name: poll, run: sync, every: 1h}\n")
    start = datetime(2026, 11, 25, 9, 0, tzinfo=TZ)
    base = IntervalTrigger(hours=1, start_date=start, end_date=start + timedelta(hours=2), timezone=TZ)
    assert fire_times(job, 5, start, JobTrigger(base, TZ)) == [start, start + timedelta(hours=1), start + timedelta(hours=2)]

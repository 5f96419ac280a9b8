"""Timetables: China's working days (holidays, 调休 make-up days), blackout windows, validation."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dealerbot.errors import DataFileError
from dealerbot.running.registry import discover
from dealerbot.schedule.timetable import Blackout, CalendarUnknown, fire_times, is_workday, load_timetables

TZ = ZoneInfo("Asia/Shanghai")


def _jobs(tmp_path: Path, text: str):
    folder = tmp_path / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "t.yaml").write_text(text, encoding="utf-8")
    return load_timetables(folder, discover())


def _days(times) -> list[str]:
    return [f"{t:%m-%d %H:%M}" for t in times]


DAILY = """
jobs:
  - name: daily
    run: sync
    cron: "30 7 * * *"
    days: workdays
"""


def test_working_days_skip_national_day_and_run_on_its_make_up_saturday(tmp_path):
    (job,) = _jobs(tmp_path, DAILY)
    times = fire_times(job, 6, datetime(2026, 9, 28, 9, 0, tzinfo=TZ))
    # 10-01..10-07 are the holiday; Saturday 10-10 is a 调休 working day.
    assert _days(times) == ["09-29 07:30", "09-30 07:30", "10-08 07:30", "10-09 07:30", "10-10 07:30", "10-12 07:30"]
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 8 * 3600 for t in times)


def test_working_days_around_spring_festival_2026(tmp_path):
    (job,) = _jobs(tmp_path, DAILY)
    times = fire_times(job, 5, datetime(2026, 2, 12, 9, 0, tzinfo=TZ))
    # Saturday 02-14 is worked; the holiday runs 02-15..02-23.
    assert _days(times) == ["02-13 07:30", "02-14 07:30", "02-24 07:30", "02-25 07:30", "02-26 07:30"]
    assert is_workday(datetime(2026, 2, 28).date()) and not is_workday(datetime(2026, 2, 17).date())


def test_a_run_inside_a_blackout_is_postponed_to_its_end_not_dropped(tmp_path):
    jobs = _jobs(tmp_path, """
blackouts:
  oem:
    - window: "02:00-04:00"
    - window: "16:00-24:00"
      days: month_end
  dms:
    - window: "23:00-01:00"
jobs:
  - {name: night, run: oem-orders, cron: "30 2 * * *"}
  - {name: closing, run: oem-customers, cron: "0 17 * * *"}
  - {name: dms-late, run: dms-contracts, cron: "30 23 * * *"}
  - {name: both, run: sync, cron: "30 0 * * *"}
""")
    night, closing, dms_late, both = jobs
    assert _days(fire_times(night, 2, datetime(2026, 11, 25, 12, 0, tzinfo=TZ))) == ["11-26 04:00", "11-27 04:00"]
    # Month-end closing: on the 30th the 17:00 run waits for midnight; on other days it runs.
    assert _days(fire_times(closing, 3, datetime(2026, 11, 29, 12, 0, tzinfo=TZ))) == [
        "11-29 17:00", "12-01 00:00", "12-01 17:00"]
    # A window across midnight; sync uses both portals, so the DMS's window applies to it.
    assert _days(fire_times(dms_late, 1, datetime(2026, 11, 25, 12, 0, tzinfo=TZ))) == ["11-26 01:00"]
    assert _days(fire_times(both, 1, datetime(2026, 11, 25, 12, 0, tzinfo=TZ))) == ["11-26 01:00"]
    with pytest.raises(ValueError):
        Blackout.parse("25:00-26:00")


def test_a_date_beyond_the_holiday_data_runs_monday_to_friday_unless_stop_is_asked_for(tmp_path):
    (job,) = _jobs(tmp_path, DAILY)  # beyond_calendar: weekdays by default (a stopped daily sync was the bug)
    trigger = job.trigger()
    times = fire_times(job, 30, datetime(2026, 12, 20, 9, 0, tzinfo=TZ), trigger)
    assert all(t.weekday() < 5 for t in times if t.year == 2027) and trigger.guessed == {2027}
    (stopping,) = _jobs(tmp_path, DAILY + "    beyond_calendar: stop\n")
    with pytest.raises(CalendarUnknown, match="holidays.yaml"):
        fire_times(stopping, 30, datetime(2026, 12, 20, 9, 0, tzinfo=TZ))


@pytest.mark.parametrize(("text", "message"), [
    ("jobs:\n  - {name: a, run: oem-order, cron: '0 7 * * *'}\n", "t.yaml:2: job 'a': no bot 'oem-order' (did you mean 'oem-orders'?)"),
    ("jobs:\n  - name: a\n    run: sync\n    cron: '0 25 * * *'\n", "t.yaml:4: jobs.0.cron"),
    ("timezone: Mars/Olympus\njobs:\n  - {name: a, run: sync, every: 1h}\n", "t.yaml:1: unknown time zone 'Mars/Olympus'"),
    ("jobs:\n  - {name: a, run: sync, every: 1h, cron: '0 7 * * *'}\n", "needs exactly one of cron: or every:"),
    ("jobs:\n  - {name: a, run: sync, every: 1h}\n  - {name: a, run: sync, every: 2h}\n", "job name 'a' is used twice"),
    ("jobs:\n  - {name: a, run: oem-orders, every: 1h, options: {dry_run: true}}\n", "oem-orders has no option dry_run"),
    ("jobs:\n  - {name: a, run: sync, every: 0m}\n", "every must look like"),
    ("jobs:\n  - {name: a, run: sync, every: 1h, misfire_grace_seconds: 1}\n", "misfire_grace_seconds"),
])
def test_a_bad_timetable_names_the_file_and_line(tmp_path, text, message):
    with pytest.raises(DataFileError) as exc:
        _jobs(tmp_path, text)
    assert message in str(exc.value)


def test_a_frequent_working_day_job_survives_weekends_and_long_holidays(tmp_path):
    """Before, a trigger gave up after 2,000 skipped firings: an every-minute job vanished at a
    weekend, an every-5-minutes one at National Day (APScheduler then drops the job silently)."""
    every_minute, every_five = _jobs(tmp_path, """
jobs:
  - {name: a, run: oem-orders, cron: "* * * * *", days: workdays}
  - {name: b, run: oem-orders, cron: "*/5 * * * *", days: workdays}
""")
    assert _days(fire_times(every_minute, 2, datetime(2026, 11, 27, 23, 59, tzinfo=TZ))) == ["11-27 23:59", "11-30 00:00"]
    assert _days(fire_times(every_five, 1, datetime(2026, 9, 30, 23, 58, tzinfo=TZ))) == ["10-08 00:00"]


def test_a_groups_job_names_its_stores_and_schedulers_agree_on_its_times(tmp_path):
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "g.yaml").write_text("jobs:\n  - name: pd\n    run: sync\n    every: 15m\n    stores: [S01, S9]\n",
                                   encoding="utf-8")
    with pytest.raises(DataFileError, match=r"g\.yaml:5: job 'pd': no store 'S9' \(stores: S01, S02\)"):
        load_timetables(folder, discover(), stores=["S01", "S02"])
    with pytest.raises(DataFileError, match=r"no \[stores\.\*\] in dealerbot\.toml"):
        load_timetables(folder, discover())
    (folder / "g.yaml").write_text("jobs:\n  - name: pd\n    run: sync\n    every: 15m\n    stores: [S01]\n",
                                   encoding="utf-8")
    [job] = load_timetables(folder, discover(), stores=["S01", "S02"])
    assert job.stores == ("S01",)
    # An every: job phased from one anchor: two schedulers started at different moments fire together.
    anchor = datetime(2026, 1, 1, tzinfo=TZ)
    a = fire_times(job, 3, datetime(2026, 12, 7, 9, 1, 13, tzinfo=TZ), trigger=job.trigger(anchor=anchor))
    b = fire_times(job, 3, datetime(2026, 12, 7, 9, 7, 40, tzinfo=TZ), trigger=job.trigger(anchor=anchor))
    assert _days(a) == _days(b) == ["12-07 09:15", "12-07 09:30", "12-07 09:45"]

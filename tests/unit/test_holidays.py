"""The holiday data past chinesecalendar's last year: ``schedules/holidays.yaml`` read with file
and line, taking precedence over the package, and Monday to Friday with a warning for a year
nobody has described, all with a fixed clock (late December 2026, and 2027/2028, years the
installed chinesecalendar 1.11 does not know)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dealerbot.config import load_settings
from dealerbot.errors import DataFileError
from dealerbot.running.registry import discover
from dealerbot.schedule.holidays import calendar_warnings, load_holidays, package_years, warnings_for
from dealerbot.schedule.timetable import CalendarUnknown, fire_times, load_timetables

TZ = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
DAILY = "jobs:\n  - {name: daily-sync, run: sync, cron: '30 7 * * *', days: workdays}\n"
# A made-up arrangement for 2027 (NOT the State Council's): New Year 01-01..01-03 off, and
# Saturday 01-09 worked; a 2028 one with the New Year holiday starting on 2027-12-31.
HOLIDAYS = """\
2027:
  - name: 元旦
    days_off: 2027-01-01 ~ 2027-01-03
    work_days: 2027-01-09
  - name: 春节
    days_off: [2027-02-08 ~ 2027-02-12, 2027-02-15]
    work_days: [2027-02-06]
"""


def _jobs(tmp_path: Path, holidays: str | None = None, jobs: str = DAILY):
    folder = tmp_path / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "daily.yaml").write_text(jobs, encoding="utf-8")
    if holidays is not None:
        (folder / "holidays.yaml").write_text(holidays, encoding="utf-8")
    return load_timetables(folder, discover())


def _days(times) -> list[str]:
    return [f"{t:%m-%d %a}" for t in times]


def test_the_installed_package_ends_before_2027_so_these_tests_test_the_gap() -> None:
    assert package_years()[1] < 2027


def test_late_december_2026_without_the_file_fires_into_january_monday_to_friday_and_warns(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path)
    trigger = job.trigger()
    times = fire_times(job, 25, datetime(2026, 12, 20, 9, 0, tzinfo=TZ), trigger)  # `schedule check --count 25`
    assert len(times) == 25 and times[-1].year == 2027
    assert _days(times)[9:15] == ["01-01 Fri", "01-04 Mon", "01-05 Tue", "01-06 Wed", "01-07 Thu", "01-08 Fri"]
    assert trigger.guessed == {2027}
    (warning,) = warnings_for([job], date(2026, 12, 20))
    assert warning.startswith("2027 年的节假日安排尚未录入") and "周一至周五" in warning and "holidays.yaml" in warning
    assert warnings_for([job], date(2026, 10, 31)) == []  # before 1 November: not yet
    (first_day,) = warnings_for([job], date(2026, 11, 1))
    assert "2027" in first_day


def test_late_december_2026_with_the_file_skips_its_holiday_and_fires_on_its_make_up_saturday(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, HOLIDAYS)
    trigger = job.trigger()
    times = fire_times(job, 12, datetime(2026, 12, 28, 9, 0, tzinfo=TZ), trigger)
    assert _days(times) == ["12-29 Tue", "12-30 Wed", "12-31 Thu", "01-04 Mon", "01-05 Tue", "01-06 Wed", "01-07 Thu",
                            "01-08 Fri", "01-09 Sat", "01-11 Mon", "01-12 Tue", "01-13 Wed"]
    assert not trigger.guessed and warnings_for([job], date(2026, 12, 28)) == []
    assert "2027-01-01 Fri 法定节假日，不运行" in trigger.moved and "2027-01-09 Sat 调休工作日，照常运行" in trigger.moved
    spring = fire_times(job, 4, datetime(2027, 2, 4, 9, 0, tzinfo=TZ))
    assert _days(spring) == ["02-05 Fri", "02-06 Sat", "02-16 Tue", "02-17 Wed"]


@pytest.mark.parametrize("holidays", [None, HOLIDAYS], ids=["without the file", "with 2027 only"])
def test_in_2028_a_year_nobody_described_the_sync_runs_monday_to_friday_and_says_so(tmp_path: Path, holidays) -> None:
    (job,) = _jobs(tmp_path, holidays)
    trigger = job.trigger()
    times = fire_times(job, 10, datetime(2028, 4, 27, 9, 0, tzinfo=TZ), trigger)  # around a May Day nobody listed
    assert _days(times)[:4] == ["04-28 Fri", "05-01 Mon", "05-02 Tue", "05-03 Wed"]
    assert all(t.weekday() < 5 for t in times) and trigger.guessed == {2028}
    (warning,) = warnings_for([job], date(2028, 4, 28))
    assert warning.startswith("2028 年")
    late_2027 = warnings_for([job], date(2027, 12, 1))  # 2027 described by the file: only 2028 is said
    assert [w[:4] for w in late_2027] == (["2028"] if holidays else ["2027", "2028"])


def test_with_2028_in_the_file_too_its_new_year_holiday_may_start_in_december(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, HOLIDAYS + "2028:\n  - name: 元旦\n    days_off: 2027-12-31 ~ 2028-01-02\n")
    times = fire_times(job, 3, datetime(2027, 12, 30, 9, 0, tzinfo=TZ))
    assert _days(times) == ["01-03 Mon", "01-04 Tue", "01-05 Wed"]
    assert warnings_for([job], date(2027, 12, 30)) == []


def test_a_year_in_the_file_replaces_the_packages_data_for_that_year(tmp_path: Path) -> None:
    # National Day 2026 (10-01..10-07 off, Saturday 10-10 worked in the package) described otherwise.
    (job,) = _jobs(tmp_path, "2026:\n  - name: 国庆节\n    days_off: 2026-10-01 ~ 2026-10-02\n")
    times = fire_times(job, 5, datetime(2026, 9, 30, 9, 0, tzinfo=TZ))
    assert _days(times) == ["10-05 Mon", "10-06 Tue", "10-07 Wed", "10-08 Thu", "10-09 Fri"]
    # A December day the next year's notice lists wins over the package for that day.
    (job,) = _jobs(tmp_path, "2027:\n  - name: 元旦\n    days_off: 2026-12-31 ~ 2027-01-01\n")
    assert _days(fire_times(job, 2, datetime(2026, 12, 30, 9, 0, tzinfo=TZ))) == ["01-04 Mon", "01-05 Tue"]


def test_a_job_that_asks_to_stop_still_stops_naming_the_file(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, None, DAILY.replace("days: workdays", "days: workdays, beyond_calendar: stop"))
    with pytest.raises(CalendarUnknown, match="schedules/holidays.yaml"):
        fire_times(job, 25, datetime(2026, 12, 20, 9, 0, tzinfo=TZ))
    (warning,) = warnings_for([job], date(2026, 12, 20))
    assert "daily-sync 将在 2027 年停止" in warning
    (job,) = _jobs(tmp_path, HOLIDAYS, DAILY.replace("days: workdays", "days: workdays, beyond_calendar: stop"))
    assert len(fire_times(job, 25, datetime(2026, 12, 20, 9, 0, tzinfo=TZ))) == 25  # 2027 is described now


def test_jobs_on_every_day_need_no_holiday_data_and_get_no_warning(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, None, "jobs:\n  - {name: poll, run: sync, every: 1h}\n")
    assert warnings_for([job], date(2026, 12, 20)) == []


@pytest.mark.parametrize(("text", "where", "message"), [
    ("2027:\n  - name: 元旦\n    days_off: 2027-13-01\n", ":3:", "2027-13-01: 不是有效的值"),
    ("2027:\n  - name: 元旦\n    days_off: 2027-02-30 ~ 2027-03-01\n", ":3:", "'2027-02-30' 不是日期"),
    ("2027:\n  - name: 元旦\n    days_off: 2028-01-01\n", ":3:", "2028-01-01 不在 2027 年"),
    ("2027:\n  - name: 元旦\n    days_off: 2027-01-01\n    work_days: 2027-01-04\n", ":4:", "2027-01-04 是星期一"),
    ("2027:\n  - name: 元旦\n    days_off: 2027-01-01\n  - name: 春节\n    days_off: 2027-01-09\n    work_days: [2027-01-09]\n", ":1:",
     "2027-01-09 既写在 days_off"),
    ("2027:\n  - name: 元旦\n    of: 2027-01-01\n", ":3:", "of: 只能写 name、days_off（放假）、work_days（调休上班）"),
    ("2027:\n  - name: 元旦\n    off: 2027-01-01\n", ":3:", "off: 只能写 name"),  # YAML reads the key off as false
    ("2027:\n  - name: 元旦\n", ":2:", "缺少 days_off"),
    ("27:\n  - {name: 元旦, days_off: 2027-01-01}\n", ":1:", "年份应写成四位数字"),
    ("2027:\n  - {name: 元旦, days_off: 2027-01-03 ~ 2027-01-01}\n", ":2:", "不是一段假期"),
    ("2027:\n  - {name: 元旦, days_off: 2027-01-01}\n2027:\n  - {name: 元旦, days_off: 2027-01-02}\n", ":3:", "'2027' appears twice"),
    ("2027: {name: 元旦}\n", ":1:", "应列出该年每个节日"),
    ("2027:\n  - name: 元旦\n    days_off: [2027-01-01, yes]\n", ":3:", "YAML 把 yes 读作真假值"),
    ("- 2027\n", ":1:", "节假日文件应按年份书写"),
    ("2027:\n\t- name: 元旦\n", ":2:", "not valid YAML"),
])
def test_a_bad_holiday_file_names_the_file_and_line_and_no_job_is_loaded(tmp_path: Path, text, where, message) -> None:
    with pytest.raises(DataFileError) as exc:
        _jobs(tmp_path, text)
    assert f"holidays.yaml{where}" in str(exc.value) and message in str(exc.value), str(exc.value)


def test_the_shipped_file_is_comments_only_and_its_example_is_valid_once_uncommented(tmp_path: Path) -> None:
    shipped = ROOT / "schedules" / "holidays.yaml"
    calendar = load_holidays(shipped)
    assert calendar.years == {}  # nothing invented: the example is commented out
    example = [line for line in shipped.read_text(encoding="utf-8").splitlines() if line.startswith("# ")]
    body = "\n".join(line[2:] for line in example[example.index("# 2027:"):])
    (tmp_path / "holidays.yaml").write_text(body + "\n", encoding="utf-8")
    assert set(load_holidays(tmp_path / "holidays.yaml").years) == {2027}
    jobs = load_timetables(ROOT / "schedules", discover())  # the shipped timetable still loads beside it
    assert {j.name for j in jobs} >= {"daily-sync"}


def test_calendar_warnings_reads_the_projects_schedules_and_never_raises(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEALERBOT_CONFIG", raising=False)
    _jobs(tmp_path)
    settings = load_settings(None)
    (warning,) = calendar_warnings(settings, date(2026, 12, 20))
    assert warning.startswith("2027 年的节假日安排尚未录入")
    (tmp_path / "schedules" / "holidays.yaml").write_text(HOLIDAYS, encoding="utf-8")
    assert calendar_warnings(settings, date(2026, 12, 20)) == []
    (tmp_path / "schedules" / "holidays.yaml").write_text("2027:\n  - {name: x, days_off: 2027-02-30}\n", encoding="utf-8")
    (broken,) = calendar_warnings(settings, date(2026, 12, 20))
    assert "holidays.yaml:2" in broken and "定时任务文件有误" in broken

"""The holiday data as staff and the scheduler meet it: ``dealerbot schedule check`` over New
Year 2027 (a year the installed chinesecalendar does not know) with and without
``schedules/holidays.yaml``, a bad file refused with exit 2 before anything is scheduled, and the
scheduler's warning in its log and as a message at a local webhook receiver, once a day."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from loguru import logger

from dealerbot.running.registry import discover
from dealerbot.schedule.scheduler import Scheduler
from dealerbot.schedule.timetable import load_timetables

from .conftest import PASSWORDS
from .test_cli import ROOT, dealerbot
from .test_scheduler import Receiver, _until, receiver  # noqa: F401 - the fixture

HOLIDAYS = """\
2027:   # made up for the test, not the State Council's arrangement
  - name: 元旦
    days_off: 2027-01-01 ~ 2027-01-03
    work_days: 2027-01-09
"""


def _folder(tmp_path: Path) -> Path:
    """A dealership folder with the shipped timetable and holiday file (comments only)."""
    shutil.copytree(ROOT / "schedules", tmp_path / "schedules")
    (tmp_path / "dealerbot.toml").write_text('[oem]\nurl = "http://127.0.0.1:1"\n[dms]\nurl = "http://127.0.0.1:2"\n',
                                             encoding="utf-8")
    return tmp_path


def _daily_sync(stdout: str) -> list[str]:
    """The fire times ``schedule check`` printed for daily-sync."""
    block = stdout.split("daily-sync:")[1].split("orders-daytime:")[0]
    return [line.strip()[:14] for line in block.splitlines() if re.fullmatch(r"  \d{4}-\d\d-\d\d \w{3} \d\d:\d\d", line)]


def test_schedule_check_over_new_year_2027_without_and_with_the_holiday_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    before = dealerbot(["schedule", "check", "--from", "2026-12-28", "--count", "25"], folder)
    assert before.returncode == 0, before.stdout + before.stderr  # it stopped with CalendarUnknown before
    assert "注意：2027 年的节假日安排尚未录入" in before.stdout and "周一至周五" in before.stdout
    assert "2027 年没有节假日数据：按周一至周五运行" in before.stdout
    times = _daily_sync(before.stdout)
    assert len(times) == 25 and "2027-01-01 Fri" in times and "2027-01-09 Sat" not in times

    (folder / "schedules" / "holidays.yaml").write_text(HOLIDAYS, encoding="utf-8")
    after = dealerbot(["schedule", "check", "--from", "2026-12-28", "--count", "25"], folder)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "尚未录入" not in after.stdout and "没有节假日数据" not in after.stdout
    times = _daily_sync(after.stdout)
    assert "2027-01-01 Fri" not in times and "2027-01-09 Sat" in times and "2026-12-31 Thu" in times
    assert "2027-01-01 Fri 法定节假日，不运行" in after.stdout and "2027-01-09 Sat 调休工作日，照常运行" in after.stdout

    late_2027 = dealerbot(["schedule", "check", "--from", "2027-11-02"], folder)  # 2028: nobody's yet
    assert late_2027.returncode == 0 and "注意：2028 年的节假日安排尚未录入" in late_2027.stdout
    assert "2027 年的节假日" not in late_2027.stdout


def test_a_bad_holiday_file_exits_2_naming_file_and_line_and_nothing_is_scheduled(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "schedules" / "holidays.yaml").write_text(HOLIDAYS.replace("2027-01-09", "2027-01-11"), encoding="utf-8")
    where = f"{folder / 'schedules' / 'holidays.yaml'}:4"
    for command in (["schedule", "check"], ["schedule", "list"], ["schedule", "start"]):
        result = dealerbot(command, folder)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"{where}: work_days: 2027-01-11 是星期一" in result.stderr.replace("\n", ""), result.stderr
    assert not (folder / "var").exists() and not (folder / "state").exists()  # no store, no scheduler lock: nothing ran
    wrong_day = dealerbot(["schedule", "check", "--from", "28.12.2026"], folder)
    assert wrong_day.returncode == 2


async def test_the_scheduler_logs_the_warning_and_sends_it_once_a_day(settings, receiver: Receiver) -> None:  # noqa: F811
    settings.notify.urls = [receiver.url]
    folder = settings.home / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "jobs.yaml").write_text("jobs:\n  - {name: daily-sync, run: sync, cron: '30 7 * * *', days: workdays, "
                                      "on_start: wait}\n", encoding="utf-8")
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")

    def scheduler_on(day: date) -> Scheduler:  # a scheduler as after a restart, its clock fixed on ``day``
        return Scheduler(settings, load_timetables(folder, discover()), passwords=PASSWORDS, today=lambda: day)

    try:
        scheduler = scheduler_on(date(2026, 12, 20))
        serving = asyncio.create_task(scheduler.serve())
        try:
            await _until(lambda: len(receiver.messages) == 1)  # sent when it starts
        finally:
            scheduler.request_stop()
            await asyncio.wait_for(serving, 60)
        (message,) = receiver.messages
        assert message["title"] == "dealerbot：节假日安排尚未录入"
        assert message["message"].startswith("2027 年的节假日安排尚未录入") and "周一至周五" in message["message"]
        assert any("holiday data: 2027 年的节假日安排尚未录入" in line for line in lines)
        # The trigger the scheduler fires by, on New Year's Eve: 2027-01-01 (a Friday), said in the log once.
        trigger = scheduler._trigger(scheduler.jobs["daily-sync"])
        new_years_eve = datetime(2026, 12, 31, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
        assert f"{trigger.get_next_fire_time(None, new_years_eve):%Y-%m-%d %H:%M}" == "2027-01-01 07:30"
        assert f"{trigger.get_next_fire_time(None, new_years_eve):%Y-%m-%d %H:%M}" == "2027-01-01 07:30"
        assert len([line for line in lines if "job daily-sync: no holiday data for 2027" in line]) == 1

        assert not await scheduler_on(date(2026, 12, 20)).calendar_notice(date(2026, 12, 20))  # restarted: not again
        assert await scheduler_on(date(2026, 12, 21)).calendar_notice(date(2026, 12, 21))  # the next day: once more
        assert len(receiver.messages) == 2
        assert not await scheduler_on(date(2026, 10, 20)).calendar_notice(date(2026, 10, 20))  # before 1 November
        (folder / "holidays.yaml").write_text(HOLIDAYS, encoding="utf-8")
        assert not await scheduler_on(date(2026, 12, 22)).calendar_notice(date(2026, 12, 22))  # 2027 entered
        assert len(receiver.messages) == 2
    finally:
        logger.remove(sink)

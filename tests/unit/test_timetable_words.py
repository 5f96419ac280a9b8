"""Each timetable job's times in the words a clerk reads (schedule/words.py), one case per kind
of trigger definition in schedules/*.yaml; the words checked against the times the job fires."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dealerbot.running.registry import discover
from dealerbot.schedule.timetable import fire_times, load_timetables
from dealerbot.schedule.words import job_in_words

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 3, 2, 0, 0, tzinfo=TZ)  # a working Monday


def _job(tmp_path: Path, trigger: str, extra: str = ""):
    folder = tmp_path / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "t.yaml").write_text(f"jobs:\n  - {{name: j, run: oem-orders, {trigger}{extra}}}\n", encoding="utf-8")
    [job] = load_timetables(folder, discover())
    return job


@pytest.mark.parametrize(("trigger", "words", "first_fires"), [
    # cron: one time a day, every day or on working days
    ("cron: '0 8 * * *'", "每天 08:00", ["03-02 08:00", "03-03 08:00"]),
    ("cron: '30 7 * * *', days: workdays", "工作日 07:30", ["03-02 07:30", "03-03 07:30"]),
    # cron: several times a day
    ("cron: '0 8,12,17 * * *'", "每天 08:00、12:00、17:00", ["03-02 08:00", "03-02 12:00", "03-02 17:00"]),
    # cron: hourly within office hours
    ("cron: '0 9-18 * * *', days: workdays", "工作日 每小时 09:00-18:00", ["03-02 09:00", "03-02 10:00"]),
    ("cron: '30 9-18 * * *'", "每小时 09:30-18:30", ["03-02 09:30", "03-02 10:30"]),
    ("cron: '0 * * * *'", "每小时", ["03-02 00:00", "03-02 01:00"]),
    # cron: every n minutes, all day or within hours
    ("cron: '*/15 * * * *'", "每 15 分钟", ["03-02 00:00", "03-02 00:15"]),
    ("cron: '*/20 9-17 * * *'", "每 20 分钟 09:00-17:40", ["03-02 09:00", "03-02 09:20"]),
    # cron: every n hours
    ("cron: '0 */2 * * *'", "每 2 小时（00:00 起）", ["03-02 00:00", "03-02 02:00"]),
    # cron: weekdays named or numbered, a span or a list
    ("cron: '0 8 * * 1-5'", "周一至周五 08:00", ["03-02 08:00", "03-03 08:00"]),
    ("cron: '0 8 * * mon,wed'", "每周一、周三 08:00", ["03-02 08:00", "03-04 08:00"]),
    ("cron: '0 8 * * 0'", "每周日 08:00", ["03-08 08:00", "03-15 08:00"]),
    # cron: days of the month
    ("cron: '0 8 1,15 * *'", "每月 1、15 日 08:00", ["03-15 08:00", "04-01 08:00"]),
    # cron beyond the common shapes: shown as written, not guessed at
    ("cron: '0 8 1-7 * 1'", "cron 0 8 1-7 * 1", None),
    # every:
    ("every: 15m", "每 15 分钟", None),
    ("every: 2h, days: workdays", "工作日 每 2 小时", None),
    ("every: 1h", "每小时", None),
    ("every: 1d", "每天一次", None),
    ("every: 30s", "每 30 秒", None),
])
def test_a_jobs_times_in_words(tmp_path, trigger, words, first_fires):
    job = _job(tmp_path, trigger)
    assert job_in_words(job) == words
    if first_fires is not None:  # the words say what the trigger does
        assert [f"{t:%m-%d %H:%M}" for t in fire_times(job, len(first_fires), now=MONDAY)] == first_fires


def test_a_job_in_another_time_zone_says_which(tmp_path):
    assert job_in_words(_job(tmp_path, "cron: '0 8 * * *'", ", timezone: Europe/Berlin")) == "每天 08:00（Europe/Berlin 时间）"


def test_the_shipped_timetable_reads_as_a_clerk_says_it():
    jobs = {j.name: job_in_words(j) for j in load_timetables(ROOT / "schedules", discover())}
    assert jobs == {"daily-sync": "工作日 07:30", "orders-daytime": "工作日 每小时 09:00-18:00"}

"""A timetable job's times as a clerk reads them: ``工作日 07:30``, ``每天 08:00``,
``每小时 09:00-18:00``, ``每 15 分钟`` (the console's 定时任务 page, ``dealerbot schedule list``).

Read from the job's definition in ``schedules/*.yaml`` (:class:`~dealerbot.schedule.timetable.Job`:
its ``cron:`` or ``every:`` and its ``days:``); a cron expression beyond the common shapes is
shown as it is written (``cron 0 8 1-7 * 1``), never guessed at. Pure: nothing runs here.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from dealerbot.schedule.timetable import DEFAULT_TZ

if TYPE_CHECKING:
    from dealerbot.schedule.timetable import Job

WEEKDAYS = ("周日", "周一", "周二", "周三", "周四", "周五", "周六", "周日")  # cron: 0 and 7 are Sunday
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MONTH_NAMES = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                                 "nov", "dec"))}
_NUMBER = re.compile(r"^\d+$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_STEP = re.compile(r"^(\*|\d+-\d+)/(\d+)$")


def job_in_words(job: Job) -> str:
    """``job``'s times in plain Chinese (see the module docstring), its time zone added when it
    is not the default one."""
    text = every_in_words(job.every, job.days) if job.every is not None else cron_in_words(job.cron or "", job.days)
    zone = str(job.tz)
    return text if zone == DEFAULT_TZ else f"{text}（{zone} 时间）"


def every_in_words(every: timedelta, days: str = "all") -> str:
    """``every: 15m`` -> ``每 15 分钟`` (``工作日 每 15 分钟`` for ``days: workdays``)."""
    seconds = int(every.total_seconds())
    for unit, size in (("天", 86400), ("小时", 3600), ("分钟", 60), ("秒", 1)):
        if seconds % size == 0:
            n = seconds // size
            text = ("每天一次" if unit == "天" else f"每{unit}") if n == 1 else f"每 {n} {unit}"
            break
    return f"工作日 {text}" if days == "workdays" else text


def _names(field: str, names: dict[str, int]) -> str:
    return re.sub(r"[a-z]{3}", lambda m: str(names.get(m.group(0), m.group(0))), field.lower())


def _values(field: str, low: int, high: int) -> list[int] | None:
    """The values of a cron field made of numbers, ranges and lists (``1,3-5``); None for
    anything else (steps, ``*``, ``L``...)."""
    out: list[int] = []
    for part in field.split(","):
        if _NUMBER.match(part):
            out.append(int(part))
        elif m := _RANGE.match(part):
            out.extend(range(int(m.group(1)), int(m.group(2)) + 1))
        else:
            return None
    return out if out and all(low <= v <= high for v in out) else None


def _join(items: list[str]) -> str:
    return "、".join(items)


def _span(values: list[int]) -> tuple[int, int] | None:
    """(first, last) when ``values`` are consecutive, else None."""
    ordered = sorted(set(values))
    return (ordered[0], ordered[-1]) if ordered == list(range(ordered[0], ordered[-1] + 1)) else None


def _weekdays(field: str) -> str | None:
    """``1-5`` -> ``周一至周五``; ``1,3`` -> ``周一、周三``; None when not understood."""
    values = _values(_names(field, _DAY_NAMES), 0, 7)
    if values is None:
        return None
    days = sorted({v % 7 for v in values}, key=lambda d: (d == 0, d))  # Monday first, Sunday last
    if len(days) == 7:
        return ""
    ordered = [d or 7 for d in days]
    span = _span(ordered)
    if span is not None and span[1] - span[0] >= 2:
        return f"{WEEKDAYS[span[0]]}至{WEEKDAYS[span[1]]}"
    return _join([WEEKDAYS[d] for d in days])


def _clock(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def _times(minute: str, hour: str) -> str | None:
    """The time-of-day part: ``08:00``, ``08:00、12:00``, ``每小时 09:00-18:00``,
    ``每 15 分钟``, ``每 15 分钟 09:00-17:45``; None when not understood."""
    minutes = _values(minute, 0, 59)
    hours = _values(hour, 0, 23) if hour != "*" else list(range(24))
    step = _STEP.match(minute)
    if step and hours is not None:  # every n minutes (within some hours)
        n = int(step.group(2))
        start, end = (0, 59) if step.group(1) == "*" else (int(x) for x in step.group(1).split("-"))
        within = list(range(start, end + 1, n))
        if hour == "*" and start == 0 and 60 % n == 0:
            return f"每 {n} 分钟"
        span = _span(hours)
        if span is None or (hour != "*" and not within):
            return None
        return f"每 {n} 分钟 {_clock(span[0], within[0])}-{_clock(span[1], within[-1])}"
    if minutes is None or hours is None:
        return None
    if len(minutes) == 1 and len(hours) > 2:  # hourly at one minute, within a span of hours
        span = _span(hours)
        if span is not None:
            every = "每小时" if hour == "*" else f"每小时 {_clock(span[0], minutes[0])}-{_clock(span[1], minutes[0])}"
            return every if hour != "*" or minutes[0] == 0 else f"每小时的第 {minutes[0]} 分"
        if hour == "*":
            return None
    if hour.startswith("*/"):
        return None
    return _join([_clock(h, m) for h in sorted(hours) for m in sorted(minutes)])


def cron_in_words(expression: str, days: str = "all") -> str:
    """A cron expression (minute hour day month weekday) in words, see the module docstring:
    ``30 7 * * *`` with ``days: workdays`` -> ``工作日 07:30``; ``0 9-18 * * *`` ->
    ``每小时 09:00-18:00``; one not understood -> ``cron <expression>``."""
    fields = expression.split()
    raw = f"cron {expression}"
    if len(fields) != 5:
        return raw
    minute, hour, dom, month, dow = fields
    if hour.startswith("*/") and minute.isdigit():
        try:
            n = int(hour[2:])
        except ValueError:
            return raw
        times: str | None = f"每 {n} 小时（{_clock(0, int(minute))} 起）"
    else:
        times = _times(minute, hour)
    if times is None:
        return raw
    parts: list[str] = []
    if month != "*":
        months = _values(_names(month, _MONTH_NAMES), 1, 12)
        if months is None:
            return raw
        parts.append(f"每年 {_join([str(m) for m in months])} 月")
    if dom != "*":
        doms = _values(dom, 1, 31)
        if doms is None or dow != "*":
            return raw
        parts.append(f"{'' if parts else '每月 '}{_join([str(d) for d in doms])} 日")
    elif dow != "*":
        week = _weekdays(dow)
        if week is None:
            return raw
        if week:
            parts.append(week if "至" in week else f"每{week}")
    if days == "workdays":
        parts.insert(0, "工作日")
    elif not parts and not times.startswith("每"):
        parts.append("每天")
    return " ".join([*parts, times])

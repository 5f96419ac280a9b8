"""China's working days for the timetable: ``schedules/holidays.yaml`` first, then the
``chinesecalendar`` package, then Monday to Friday with a warning.

The State Council publishes a year's holidays and make-up working days (调休) late in the
year before, and the ``chinesecalendar`` package follows some time later. Staff copy the
notice into ``schedules/holidays.yaml``::

    2027:                              # the year whose notice this is
      - name: 元旦
        days_off: 2027-01-01 ~ 2027-01-03   # days off: a date, "first ~ last", or a list of those
      - name: 春节
        days_off: 2027-02-06 ~ 2027-02-12
        work_days: [2027-02-14, 2027-02-20]  # make-up working days (Saturdays or Sundays)

How a day is decided (:meth:`WorkCalendar.is_workday`):

1. a date the file lists (``days_off`` or ``work_days``) is what the file says;
2. a day of a year the file describes is otherwise Monday to Friday: **a year in the file
   replaces the package's data for that year entirely** (list every holiday of the notice);
3. a year the package knows is what the package says;
4. a year nobody has described is unknown (``None``): the timetable then runs Monday to Friday
   and says so (:func:`calendar_warnings`, ``schedule check``, the scheduler's log and a
   message), unless a job asks to stop (``beyond_calendar: stop``).

A year's dates lie in that year, or in the December before it (a New Year holiday that starts
on 30 December belongs to the next year's notice). Nothing here runs at import time; the file
is read by :func:`load_holidays` (through :func:`dealerbot.schedule.timetable.load_timetables`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dealerbot.errors import DataFileError
from dealerbot.yamlfile import Lines, Path_, as_text, load_yaml

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.schedule.timetable import Job

HOLIDAYS_FILE = "holidays.yaml"  # in schedules/: not a timetable
NOTICE_FROM = (11, 1)  # from 1 November on, a next year nobody has described is warned about
MAX_SPAN_DAYS = 31  # a longer "first ~ last" is a typo
_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_RANGE = re.compile(r"\s*(?:~|～|至|\.\.)\s*")
_WEEKDAYS = "一二三四五六日"
KEYS = ("name", "days_off", "work_days")  # of a holiday in the file


@dataclass(frozen=True)
class YearArrangement:
    """One year's notice as the file gives it: its days off and make-up working days."""

    year: int
    off: frozenset[date]
    work: frozenset[date]
    source: str  # file:line, for messages


@cache
def package_years() -> tuple[int, int]:
    """The first and last year the installed ``chinesecalendar`` knows."""
    import chinese_calendar

    years = [d.year for d in chinese_calendar.constants.holidays]
    return min(years), max(years)


def package_version() -> str:
    """``chinesecalendar 1.11.0``: the installed package, for messages."""
    from importlib.metadata import version

    return f"chinesecalendar {version('chinesecalendar')}"


@dataclass(frozen=True)
class WorkCalendar:
    """China's working days: the years ``schedules/holidays.yaml`` describes over the package's.
    The default (no file) is the package alone."""

    years: Mapping[int, YearArrangement] = field(default_factory=dict)
    file: Path | None = None

    def described_by(self, year: int) -> str | None:
        """Who describes ``year``: ``"file"``, ``"package"`` or None (nobody)."""
        if year in self.years:
            return "file"
        first, last = package_years()
        return "package" if first <= year <= last else None

    def is_workday(self, day: date) -> bool | None:
        """Whether ``day`` is a working day; None for a year nobody has described (see the
        module docstring for the order)."""
        for arrangement in self._listing(day):
            if day in arrangement.work:
                return True
            if day in arrangement.off:
                return False
        if day.year in self.years:
            return day.weekday() < 5
        if self.described_by(day.year) == "package":
            import chinese_calendar

            return bool(chinese_calendar.is_workday(day))
        return None

    def _listing(self, day: date) -> Iterable[YearArrangement]:
        """The arrangements that may list ``day``: its year's, and the next year's in December."""
        for year in (day.year, day.year + 1):
            if year in self.years:
                yield self.years[year]


def undescribed_years(calendar: WorkCalendar, today: date) -> list[int]:
    """The years to warn about on ``today``: this year when nobody has described it, and from 1
    November on also next year."""
    years = [today.year]
    if (today.month, today.day) >= NOTICE_FROM:
        years.append(today.year + 1)
    return [y for y in years if calendar.described_by(y) is None]


def warnings_for(jobs: Sequence[Job], today: date, console: bool = False) -> list[str]:
    """The warnings (Simplified Chinese, one per year) about the holiday data of ``jobs`` on
    ``today``: a year nobody has described that working-day jobs reach. Empty when no enabled
    job runs on working days only. ``console``: worded for the console's clerk (who to ask,
    not which file to edit)."""
    workday_jobs = [j for j in jobs if j.enabled and j.days == "workdays"]
    if not workday_jobs:
        return []
    calendar = workday_jobs[0].calendar
    stopping = [j.name for j in workday_jobs if j.beyond_calendar == "stop"]
    where = f"schedules/{HOLIDAYS_FILE}"
    out = []
    for year in undescribed_years(calendar, today):
        effect = "按工作日运行的定时任务暂按周一至周五运行（节假日照常运行，调休周末不运行）"
        if stopping:
            which = f"{len(stopping)} 个定时任务" if console else f"定时任务 {'、'.join(stopping)}"
            effect += f"；{which} 将在 {year} 年停止"
        ask = f"请联系 dealerbot 管理员录入 {year} 年节假日安排" if console else f"请在 {where} 中录入国务院公布的安排"
        out.append(f"{year} 年的节假日安排尚未录入：{effect}。{ask}。")
    return out


def calendar_warnings(settings: Settings, today: date | None = None, console: bool = False) -> list[str]:
    """The warnings about the holiday data of this project's timetable on ``today`` (default:
    the local date), for the console's home page and ``schedule check``: one short Chinese
    line per year nobody has described (from 1 November on, next year too); ``console``: worded
    for the console (ask the administrator; the CLI's names the file). Never raises: a
    timetable or holiday file that cannot be read is itself the warning."""
    from dealerbot.errors import DealerbotError
    from dealerbot.schedule.timetable import timetables_of

    try:
        jobs = timetables_of(settings)
    except DealerbotError as exc:
        return [f"定时任务文件有误，调度程序无法启动：{exc}"]
    return warnings_for(jobs, today or date.today(), console)


# -- the file -------------------------------------------------------------------------------

def load_holidays(path: Path) -> WorkCalendar:
    """The calendar with the years ``path`` describes (the package alone when it does not
    exist or holds only comments).

    Raises:
        DataFileError: the file is not valid YAML, or an entry is wrong (the message names the
            file, line and key): a year that is not a year, a date that is no date or lies
            outside its year, a make-up working day on a weekday, a day both off and worked.
    """
    if not path.is_file():
        return WorkCalendar()
    data, lines = load_yaml(path)
    if data is None:
        return WorkCalendar(file=path)
    if not isinstance(data, dict):
        raise DataFileError(f"{lines.where(())}: 节假日文件应按年份书写，例如 2027: [...] "
                            f"(the holiday file is a mapping of years)")
    years: dict[int, YearArrangement] = {}
    for key, entries in data.items():
        year = _year(key, lines)
        years[year] = _arrangement(year, entries, (key,), lines)
    _no_conflicts(years, lines)
    return WorkCalendar(years=years, file=path)


def _year(key: Any, lines: Lines) -> int:
    text = str(key).strip()
    if not text.isdigit() or not 2000 <= int(text) <= 2099:
        raise DataFileError(f"{lines.where((key,))}: {key}: 年份应写成四位数字，例如 2027 "
                            f"(a year like 2027)")
    return int(text)


def _arrangement(year: int, entries: Any, path: Path_, lines: Lines) -> YearArrangement:
    where = lines.where(path)
    if not isinstance(entries, list) or not entries:
        raise DataFileError(f"{where}: {year}: 应列出该年每个节日，例如 - {{name: 元旦, days_off: {year}-01-01}} "
                            f"(a year holds a list of holidays)")
    off: set[date] = set()
    work: set[date] = set()
    for i, entry in enumerate(entries):
        at = (*path, i)
        if not isinstance(entry, dict):
            raise DataFileError(f"{lines.where(at)}: {year}: 每个节日写成 name/days_off/work_days，例如 "
                                f"- {{name: 元旦, days_off: {year}-01-01}} (each holiday is a mapping)")
        unknown = [k for k in entry if k not in KEYS]
        if unknown:
            written = lines.keys_written.get((*at, unknown[0]), str(unknown[0]))  # off: is read as false
            raise DataFileError(f"{lines.where((*at, unknown[0]))}: {written}: 只能写 name、days_off（放假）、"
                                f"work_days（调休上班） (unknown key {written!r}: {', '.join(KEYS)})")
        if "name" not in entry or "days_off" not in entry:
            missing = "name" if "name" not in entry else "days_off"
            raise DataFileError(f"{lines.where(at)}: {year}: 缺少 {missing} (a holiday needs name and days_off)")
        as_text(entry["name"], (*at, "name"), lines, "name")
        off |= _days(entry["days_off"], year, (*at, "days_off"), lines)
        for day in (made_up := _days(entry.get("work_days", []), year, (*at, "work_days"), lines)):
            if day.weekday() < 5:
                raise DataFileError(f"{lines.where((*at, 'work_days'))}: work_days: {day} 是星期{_WEEKDAYS[day.weekday()]}，"
                                    f"调休上班日应是周六或周日 (a make-up working day is a Saturday or Sunday)")
        work |= made_up
    both = sorted(off & work)
    if both:
        raise DataFileError(f"{where}: {year}: {both[0]} 既写在 days_off（放假）又写在 work_days（上班）中 "
                            f"({both[0]} is both off and worked)")
    return YearArrangement(year, frozenset(off), frozenset(work), where)


def _days(value: Any, year: int, path: Path_, lines: Lines) -> set[date]:
    """The dates of a ``days_off``/``work_days`` value: a date, ``first ~ last``, or a list of those."""
    items = value if isinstance(value, list) else [value]
    out: set[date] = set()
    for k, item in enumerate(items):
        at = (*path, k) if isinstance(value, list) else path
        key = str(path[-1])
        if isinstance(item, date):
            first = last = item
        else:
            text = as_text(item, at, lines, key)
            parts = _RANGE.split(text.strip())
            if len(parts) > 2:
                raise DataFileError(f"{lines.where(at)}: {key}: {text!r} 应写成一个日期或“开始 ~ 结束” (a date or first ~ last)")
            first = _date(parts[0], at, lines, key)
            last = _date(parts[-1], at, lines, key)
            if last < first or (last - first).days >= MAX_SPAN_DAYS:
                raise DataFileError(f"{lines.where(at)}: {key}: {text!r} 不是一段假期（结束应在开始之后，不超过 "
                                    f"{MAX_SPAN_DAYS} 天）(not a span of at most {MAX_SPAN_DAYS} days)")
        for day in (first, last):
            if not date(year - 1, 12, 1) <= day <= date(year, 12, 31):
                raise DataFileError(f"{lines.where(at)}: {key}: {day} 不在 {year} 年（可含上一年 12 月）"
                                    f"(a date of {year}, or of the December before)")
        out |= {first + timedelta(days=n) for n in range((last - first).days + 1)}
    return out


def _date(text: str, at: Path_, lines: Lines, key: str) -> date:
    m = _DATE.match(text)
    try:
        if not m:
            raise ValueError
        return date(*(int(g) for g in m.groups()))
    except ValueError:
        raise DataFileError(f"{lines.where(at)}: {key}: {text!r} 不是日期，应写成 2027-01-01 "
                            f"(not a date like 2027-01-01)") from None


def _no_conflicts(years: Mapping[int, YearArrangement], lines: Lines) -> None:
    """A December day may be listed by two years' notices: they must agree."""
    for year, arrangement in years.items():
        later = years.get(year + 1)
        if later is None:
            continue
        clash = sorted((arrangement.off & later.work) | (arrangement.work & later.off))
        if clash:
            raise DataFileError(f"{later.source}: {year + 1}: {clash[0]} 与 {year} 年的安排矛盾（{arrangement.source}）"
                                f"({clash[0]} contradicts {year}'s arrangement)")

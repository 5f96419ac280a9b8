"""Timetables: ``schedules/*.yaml``, the source of truth for when bots run by themselves.

A file holds jobs and, per portal, blackout windows::

    timezone: Asia/Shanghai            # the default of this file's jobs
    blackouts:                         # runs that would start inside are postponed to the end
      oem:
        - window: "02:00-04:00"        # the OEM portal's nightly maintenance
        - window: "16:00-24:00"
          days: month_end              # month-end closing: the last day of each month
    jobs:
      - name: daily-sync
        run: sync                      # a bot name, or sync (the whole chain)
        cron: "30 7 * * *"             # minute hour day month weekday, or  every: 30m
        days: workdays                 # China working days (holidays off, 调休 Saturdays on)
        options: {dry_run: false}
        misfire_grace_seconds: 3600    # how late a run may still start (machine busy, asleep)
        coalesce: true                 # several missed firings run once
        on_start: run_once             # after the machine was off: run_once | wait

China's working days (statutory holidays off, make-up working days 调休 on) come from
``schedules/holidays.yaml`` (the notices staff copied in; see :mod:`dealerbot.schedule.holidays`),
then from the ``chinesecalendar`` package for the years it knows. In a year nobody has described
yet a working-day job runs Monday to Friday (``beyond_calendar: weekdays``, the default) and
``schedule check``, the scheduler's log, a daily message from 1 November on and the console say
so; ``beyond_calendar: stop`` stops the job there instead.

Everything here is pure (no scheduler running): :class:`JobTrigger` is the APScheduler trigger
the scheduler (:mod:`dealerbot.schedule.scheduler`) uses, and :func:`fire_times` what ``schedule check``
prints.

Of the three scheduling modules, this one says *what runs when* (the files, their jobs,
blackouts and working days, the triggers) and starts nothing; :mod:`dealerbot.schedule.scheduler`
*runs* those jobs in this process for one dealership; :mod:`dealerbot.group.scheduler` fires the
same jobs for a dealership group, handing each firing to the group's task engine instead.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dealerbot.errors import CalendarUnknown, DataFileError
from dealerbot.schedule.holidays import HOLIDAYS_FILE, WorkCalendar, load_holidays, package_version
from dealerbot.yamlfile import load_yaml

if TYPE_CHECKING:
    from dealerbot.config import Settings

DEFAULT_TZ = "Asia/Shanghai"
SYNC = "sync"
_EVERY = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_WINDOW = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
MAX_SKIPS = 1000  # days skipped (holidays) or windows waited out in a row before a trigger gives up


def is_workday(day: date, beyond: str = "stop", calendar: WorkCalendar | None = None) -> bool:
    """Whether ``day`` is a working day in mainland China (holidays off, 调休 days on), from
    ``calendar`` (default: the ``chinesecalendar`` package alone); in a year nobody has
    described, Monday to Friday when ``beyond`` is ``weekdays``.

    Raises:
        CalendarUnknown: nobody has described the year and ``beyond`` is ``stop``.
    """
    known = (calendar or WorkCalendar()).is_workday(day)
    if known is not None:
        return known
    if beyond == "weekdays":
        return day.weekday() < 5
    raise CalendarUnknown(
        f"节假日数据不含 {day.year} 年（{package_version()} 和 schedules/{HOLIDAYS_FILE} 都没有）："
        f"请在 schedules/{HOLIDAYS_FILE} 中录入该年的安排，或更新 chinesecalendar，"
        f"或在任务中设置 beyond_calendar: weekdays 按周一至周五运行 "
        f"(no holiday data for {day.year} in {package_version()} or schedules/{HOLIDAYS_FILE})"
    )


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # cron's weekday numbers: 0 and 7 are Sunday
_CRON_DAY_PART = re.compile(r"^(\*|\d+|\d+-\d+)(?:/(\d+))?$")


def cron_trigger(expression: str, tz: tzinfo) -> CronTrigger:
    """The APScheduler trigger of a crontab line, its weekday numbers read as cron reads them
    (0 or 7 Sunday, 1 Monday ... 6 Saturday: APScheduler 3 alone counts 0 as Monday, so
    ``1-5`` would run Tuesday to Saturday); weekday names are taken as they are.

    Raises:
        ValueError: not a cron expression (minute hour day month weekday).
    """
    fields = expression.split()
    if len(fields) == 5 and any(ch.isdigit() for ch in fields[4]):
        names: list[str] = []
        for part in fields[4].split(","):
            m = _CRON_DAY_PART.match(part)
            if m is None:
                names.append(part)  # names (mon-fri): APScheduler reads them right
                continue
            first, _, last = m.group(1).partition("-")
            low, high = (0, 6) if first == "*" else (int(first), int(last or (first if m.group(2) is None else 6)))
            if high > 7 or low > high:
                raise ValueError(f"weekday {part!r}: use 0-7 (0 and 7 are Sunday) or mon-sun")
            names += [_CRON_DAYS[v] for v in range(low, high + 1, int(m.group(2) or 1))]
        fields[4] = ",".join(dict.fromkeys(names))
    return CronTrigger.from_crontab(" ".join(fields), timezone=tz)


def parse_every(text: str) -> timedelta:
    """``30m`` -> 30 minutes (units s, m, h, d).

    Raises:
        ValueError: not of that form, or zero.
    """
    m = _EVERY.match(str(text))
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"every must look like 30s, 15m, 2h or 1d, got {text!r}")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


@dataclass(frozen=True)
class Blackout:
    """A window (local time of the job) when a portal must not be used; ``days``: ``all`` or
    ``month_end`` (the last day of the month)."""

    start: time
    end: time  # 24:00 is midnight at the end of the day
    days: str = "all"
    until_midnight: bool = False

    @classmethod
    def parse(cls, window: str, days: str = "all") -> Blackout:
        """Raises ValueError for a window not like ``02:00-04:00``."""
        m = _WINDOW.match(window.strip())
        if not m:
            raise ValueError(f"window must look like 02:00-04:00 (24h), got {window!r}")
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        if h1 == 24 or (h2 == 24 and m2) or (h1, m1) == (h2, m2):
            raise ValueError(f"window {window!r} is not a span of time")
        return cls(time(h1, m1), time(0, 0) if h2 == 24 else time(h2, m2), days, until_midnight=h2 == 24)

    def applies(self, day: date) -> bool:
        return self.days == "all" or (self.days == "month_end" and (day + timedelta(days=1)).month != day.month)

    def end_of(self, moment: datetime) -> datetime | None:
        """The end of this window when ``moment`` lies inside it, else None."""
        day = moment.date()
        for start_day in (day, day - timedelta(days=1)):  # a window may run past midnight
            if not self.applies(start_day):
                continue
            start = datetime.combine(start_day, self.start, moment.tzinfo)
            end_day = start_day + timedelta(days=1) if self.until_midnight or self.end <= self.start else start_day
            end = datetime.combine(end_day, self.end, moment.tzinfo)
            if start <= moment < end:
                return end
        return None


class _BlackoutSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: str
    days: Literal["all", "month_end"] = "all"

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        Blackout.parse(v)
        return v


class _JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    run: str
    cron: str | None = None
    every: str | None = None
    timezone: str | None = None
    days: Literal["all", "workdays"] = "all"
    options: dict[str, bool | str] = Field(default_factory=dict)
    misfire_grace_seconds: int = Field(default=3600, ge=30, le=7 * 86400)
    coalesce: bool = True
    on_start: Literal["run_once", "wait"] = "run_once"
    beyond_calendar: Literal["stop", "weekdays"] = "weekdays"
    enabled: bool = True
    stores: list[str] = Field(default_factory=list)  # a group's stores this job runs for (empty: all)

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, v: Any) -> Any:
        """Every option is a yes/no except a sync's ``flow`` (a flow's name)."""
        if not isinstance(v, dict):
            return v
        from pydantic import TypeAdapter

        yes_no = TypeAdapter(bool)
        return {k: (val if k == "flow" and isinstance(val, str) else yes_no.validate_python(val)) for k, val in v.items()}

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                cron_trigger(v, ZoneInfo("UTC"))
            except ValueError as exc:
                raise ValueError(f"not a cron expression (minute hour day month weekday): {exc}") from None
        return v

    @field_validator("every")
    @classmethod
    def _every(cls, v: str | None) -> str | None:
        if v is not None:
            parse_every(v)
        return v


class _FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = DEFAULT_TZ
    blackouts: dict[str, list[_BlackoutSpec]] = Field(default_factory=dict)
    jobs: list[_JobSpec] = Field(default_factory=list)


GROUP_ANCHOR = datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))  # a group's schedulers phase every: jobs from here


@dataclass(frozen=True)
class Job:
    """One timetable job, validated."""

    name: str
    run: str  # a bot name or "sync"
    portals: tuple[str, ...]  # whose blackouts apply
    tz: tzinfo
    cron: str | None
    every: timedelta | None
    days: str
    options: dict[str, bool | str]
    misfire_grace_seconds: int
    coalesce: bool
    on_start: str
    beyond_calendar: str
    blackouts: tuple[Blackout, ...]
    source: str  # file:line, for messages
    enabled: bool = True
    stores: tuple[str, ...] = ()  # a group's stores it runs for (empty: every store)
    calendar: WorkCalendar = field(default_factory=WorkCalendar, repr=False)  # schedules/holidays.yaml over the package

    def trigger(self, anchor: datetime | None = None) -> JobTrigger:
        """The APScheduler trigger of this job (calendar and blackouts applied). ``anchor``
        fixes an ``every:`` job's phase (default: counted from now), so that schedulers on
        several machines compute the same fire times."""
        if self.cron:
            base: BaseTrigger = cron_trigger(self.cron, self.tz)
        else:
            assert self.every is not None
            base = IntervalTrigger(seconds=int(self.every.total_seconds()), timezone=self.tz, start_date=anchor)
        return JobTrigger(base, self.tz, self.days == "workdays", self.blackouts, self.beyond_calendar, self.calendar)

    def describe(self) -> str:
        when = f"cron {self.cron}" if self.cron else f"every {self.every}"
        return f"{self.name}: {self.run}, {when}{'，仅工作日' if self.days == 'workdays' else ''}"


@dataclass
class JobTrigger(BaseTrigger):
    """A cron or interval trigger that skips non-working days (when asked) and moves a firing
    inside a blackout window of the job's portals to the window's end (postponed, not dropped).

    In a year nobody has described it fires Monday to Friday and adds the year to ``guessed``
    (``beyond_calendar: weekdays``), or ``get_next_fire_time`` raises :class:`CalendarUnknown`
    (``stop``; the scheduler turns that into the job's end with a message).
    """

    base: BaseTrigger
    tz: tzinfo
    workdays: bool = False
    blackouts: tuple[Blackout, ...] = ()
    beyond: str = "weekdays"
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    moved: deque[str] = field(default_factory=lambda: deque(maxlen=20))  # firings moved (`schedule check`)
    guessed: set[int] = field(default_factory=set)  # years fired Monday to Friday for want of data

    def _workday(self, day: date) -> bool:
        if self.beyond == "weekdays" and self.calendar.is_workday(day) is None:
            self.guessed.add(day.year)
        return is_workday(day, self.beyond, self.calendar)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        prev = previous_fire_time
        for _ in range(MAX_SKIPS):
            t = self.base.get_next_fire_time(prev, now)
            if t is None:
                return None  # the base trigger has ended
            if self.workdays and not self._workday(t.date()):
                if t.weekday() < 5:
                    self.moved.append(f"{t:%Y-%m-%d %a} 法定节假日，不运行")
                prev, now = None, self._next_midnight(t)  # skip the whole day, not firing by firing
                continue
            if self.workdays and t.weekday() >= 5:
                self.moved.append(f"{t:%Y-%m-%d %a} 调休工作日，照常运行")
            end = self._blackout_end(t)
            if end is not None:
                self.moved.append(f"{t:%Y-%m-%d %H:%M} 在停用时段内，推迟到 {end:%H:%M}")
                if self.workdays and not self._workday(end.date()):
                    prev, now = None, self._next_midnight(end)
                    continue
                return end
            return t
        raise DataFileError(f"no working day without a blackout in the next {MAX_SKIPS} days: check days and blackouts")

    def _next_midnight(self, moment: datetime) -> datetime:
        return datetime.combine(moment.date() + timedelta(days=1), time(0, 0), moment.tzinfo)

    def _blackout_end(self, moment: datetime) -> datetime | None:
        end = None
        for _ in range(len(self.blackouts) + 1):  # windows may follow one another
            later = next((e for b in self.blackouts if (e := b.end_of(end or moment)) is not None), None)
            if later is None:
                return end
            end = later
        return end

    def __str__(self) -> str:
        return f"dealerbot[{self.base}]"


def fire_times(job: Job, n: int = 5, now: datetime | None = None, trigger: JobTrigger | None = None) -> list[datetime]:
    """The next ``n`` times ``job`` fires after ``now``, holidays and blackouts applied (pass
    ``trigger`` to read its ``moved`` notes afterwards).

    Raises:
        CalendarUnknown: one of them lies in a year without holiday data (``beyond_calendar: stop``).
    """
    trigger = trigger or job.trigger()
    now = (now or datetime.now(job.tz)).astimezone(job.tz)
    out: list[datetime] = []
    prev = None
    while len(out) < n:
        t = trigger.get_next_fire_time(prev, now if prev is None else prev)
        if t is None:
            break
        out.append(t)
        prev = t
    return out


def load_timetables(
    folder: Path, bots: dict[str, Any], portals: Sequence[str] = ("oem", "dms"), stores: Sequence[str] | None = None,
    flows: dict[str, Any] | None = None,
) -> list[Job]:
    """Every job of every ``*.yaml`` in ``folder`` (sorted by file name; ``holidays.yaml`` is
    the holiday data, :mod:`dealerbot.schedule.holidays`, which every job's calendar uses), validated.

    ``bots`` maps bot names to their classes (to check ``run`` and find the portals whose
    blackouts apply); ``portals`` names the configured portals (blackouts may name those too);
    ``stores``, a group's store codes (a job's ``stores:`` must name those); ``flows``, the
    declared flows by name (a sync job's ``options: {flow: NAME}`` must name one; its bots'
    portals' blackouts apply).

    Raises:
        DataFileError: a file is not valid YAML or a job is invalid (the message names the file
            and line: an unknown bot, a bad cron expression or time zone, a repeated job name),
            or ``holidays.yaml`` is wrong (as :func:`~dealerbot.schedule.holidays.load_holidays`).
    """
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    calendar = load_holidays(folder / HOLIDAYS_FILE)
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if path.name.lower() == HOLIDAYS_FILE:
            continue
        for job in _load_file(path, bots, portals, stores, calendar, flows):
            if job.name in seen:
                raise DataFileError(f"{job.source}: job name '{job.name}' is used twice (also at {seen[job.name]})")
            seen[job.name] = job.source
            jobs.append(job)
    return jobs


def timetables_of(settings: Settings) -> list[Job]:
    """The timetable of a project's settings: its ``schedules/`` folder, its bots and portals,
    and for a group its stores.

    Raises:
        DataFileError: as :func:`load_timetables`.
    """
    from dealerbot.running.bot_list import project_summaries

    bots, flows = project_summaries(settings.home)  # what a timetable checks of them: no bot imported while none changed
    return load_timetables(settings.path("schedules"), dict(bots), settings.portal_names,
                           list(settings.stores) if settings.is_group else None, dict(flows))


def scheduler_trigger(job: Job, settings: Settings) -> JobTrigger:
    """The job's trigger as this project's scheduler builds it (a group's schedulers phase
    ``every:`` jobs from :data:`GROUP_ANCHOR`)."""
    return job.trigger(anchor=GROUP_ANCHOR if settings.is_group else None)


def next_fire(job: Job, settings: Settings, n: int = 1) -> list[datetime]:
    """A job's next ``n`` fire times as this project's scheduler computes them.

    Raises:
        CalendarUnknown: a date in a year nobody has described (``beyond_calendar: stop``).
    """
    return fire_times(job, n, trigger=scheduler_trigger(job, settings))


def _tz(name: str, where: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataFileError(f"{where}: unknown time zone {name!r} (e.g. Asia/Shanghai)") from None


def _load_file(path: Path, bots: dict[str, Any], portals: Sequence[str], stores: Sequence[str] | None = None,
               calendar: WorkCalendar | None = None, flows: dict[str, Any] | None = None) -> list[Job]:
    data, lines = load_yaml(path)
    if data is None:
        return []
    if not isinstance(data, dict):
        raise DataFileError(f"{lines.where(())}: a timetable is a mapping with jobs: [...]")
    try:
        spec = _FileSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise DataFileError(f"{lines.where(loc)}: {'.'.join(str(p) for p in loc)}: {err['msg']}") from None
    file_tz = _tz(spec.timezone, lines.where(("timezone",)))
    used = {p for b in bots.values() for p in (getattr(b, "portal", ""), *getattr(b, "also_uses", ()))}
    unknown_portals = sorted(set(spec.blackouts) - {"oem", "dms"} - set(portals) - used)
    if unknown_portals:
        raise DataFileError(f"{lines.where(('blackouts', unknown_portals[0]))}: blackouts: no portal '{unknown_portals[0]}'")
    jobs = []
    for i, j in enumerate(spec.jobs):
        where = lines.where(("jobs", i))
        if (j.cron is None) == (j.every is None):
            raise DataFileError(f"{where}: job '{j.name}' needs exactly one of cron: or every:")
        if j.run == SYNC:
            job_portals: tuple[str, ...] = ("oem", "dms")
            allowed = {"full", "dry_run", "flow"}
            if "flow" in j.options:
                name = j.options["flow"]
                if not isinstance(name, str) or (flows is not None and name not in flows):
                    known = f"flows: {', '.join(flows)}" if flows else "a flow's name"
                    raise DataFileError(f"{lines.where(('jobs', i, 'options', 'flow'))}: job '{j.name}': no flow "
                                        f"{name!r} ({known})")
                if flows is not None:
                    flow = flows[name]
                    named = [b for b in (*flow.read_bots, flow.writer_bot) if b in bots]
                    job_portals = tuple(dict.fromkeys(
                        p for b in named for p in (bots[b].portal, *getattr(bots[b], "also_uses", ())))) or job_portals
        elif j.run in bots:
            job_portals = (bots[j.run].portal, *getattr(bots[j.run], "also_uses", ()))
            allowed = {"full", *bots[j.run].options}
        else:
            import difflib

            close = difflib.get_close_matches(j.run, [*bots, SYNC], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (bots: {', '.join(sorted(bots))}, or sync)"
            raise DataFileError(f"{lines.where(('jobs', i, 'run'))}: job '{j.name}': no bot '{j.run}'{hint}")
        bad = sorted(set(j.options) - allowed)
        if bad:
            raise DataFileError(f"{lines.where(('jobs', i, 'options'))}: job '{j.name}': {j.run} has no option {bad[0]}")
        for k, code in enumerate(j.stores):
            if stores is None or code not in stores:
                known = f"stores: {', '.join(stores)}" if stores else "no [stores.*] in dealerbot.toml"
                raise DataFileError(f"{lines.where(('jobs', i, 'stores', k))}: job '{j.name}': no store '{code}' ({known})")
        tz = _tz(j.timezone, lines.where(("jobs", i, "timezone"))) if j.timezone else file_tz
        blackouts = tuple(
            Blackout.parse(b.window, b.days) for p in job_portals for b in spec.blackouts.get(p, [])
        )
        jobs.append(Job(
            name=j.name, run=j.run, portals=job_portals, tz=tz, cron=j.cron,
            every=parse_every(j.every) if j.every else None, days=j.days, options=dict(j.options),
            misfire_grace_seconds=j.misfire_grace_seconds, coalesce=j.coalesce, on_start=j.on_start,
            beyond_calendar=j.beyond_calendar, blackouts=blackouts, source=where, enabled=j.enabled,
            stores=tuple(j.stores), calendar=calendar or WorkCalendar(),
        ))
    return jobs


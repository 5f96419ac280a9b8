"""The timetable and logins that wait for a person: while the newest finished run of a portal's
bots ended ``needs_person`` (its login asks for an SMS code, a captcha or a new password and
nobody was there), jobs that write through that portal are not fired; they are recorded as
skipped, saying why, until a person completes the login (a run of a bot on that portal that
gets past its login: 登录并继续 on the run's console page, or a run in a terminal)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dealerbot.running.bot import bot_portals

if TYPE_CHECKING:
    from pathlib import Path

    from dealerbot.store import Store
    from dealerbot.store.runs import RunRecord

SYNC = "sync"
NOT_A_RUN = ("running", "skipped")  # neither says whether the login works


def logins_waiting(runs: Iterable[RunRecord], bots: Mapping[str, Any]) -> dict[str, RunRecord]:
    """Portal -> its ``needs_person`` run, for each portal whose bots' newest finished run
    (``runs`` newest first) ended so."""
    seen: set[str] = set()
    waiting: dict[str, RunRecord] = {}
    for run in runs:
        cls = bots.get(run.bot)
        if cls is None or run.status in NOT_A_RUN:
            continue
        for portal in bot_portals(cls):
            if portal in seen:
                continue
            seen.add(portal)
            if run.status == "needs_person":
                waiting[portal] = run
    return waiting


def writes(run: str, bots: Mapping[str, Any]) -> bool:
    """Whether a job running ``run`` (a bot name or ``sync``) writes into a portal: a bot that
    declares the portals it writes to (``Bot.writes_to``), or one with no record type it reads
    (the shipped re-key bots); the daily sync ends with the re-key."""
    if run == SYNC:
        return True
    cls = bots.get(run)
    return cls is not None and (bool(getattr(cls, "writes_to", ())) or getattr(cls, "entity", None) is None)


def skip_reason(job_run: str, portals: Iterable[str], waiting: Mapping[str, RunRecord], bots: Mapping[str, Any],
                titles: Mapping[str, str]) -> str | None:
    """Why a job running ``job_run`` through ``portals`` is not fired now (None: it may run)."""
    if not writes(job_run, bots):
        return None
    for portal in portals:
        run = waiting.get(portal)
        if run is not None:
            title = titles.get(portal, portal)
            return (f"等待人工登录：{title}的登录在等待有人输入验证码（运行 {run.run_id}），完成登录前不运行写入任务；"
                    f"请在控制台打开该运行页面，点击“登录并继续” ({portal}: a login waits for a person since run "
                    f"{run.run_id}; writing jobs are not fired until it is done)")
    return None


def job_waits(store: Store, home: Path, job_run: str, portals: Iterable[str]) -> str | None:
    """Why a job running ``job_run`` through ``portals`` must not fire now for the dealership
    of ``store`` (its newest runs), the bots and selector titles found in ``home``; None when it
    may. The one check a dealership's timetable and a group's scheduler both make. A bots folder
    or a store that cannot be read says nothing here (the run itself then says it)."""
    from dealerbot.running.registry import discover
    from dealerbot.web.locators import load_portal_selectors

    try:
        bots = discover(home=home)
        waiting = logins_waiting(store.runs(200), bots)
    except Exception:  # noqa: BLE001 - see the docstring
        return None
    if not waiting:
        return None
    titles: dict[str, str] = {}
    for portal in waiting:
        try:
            titles[portal] = load_portal_selectors(portal, None, home).title
        except Exception:  # noqa: BLE001 - a name is enough
            titles[portal] = portal
    return skip_reason(job_run, portals, waiting, bots, titles)

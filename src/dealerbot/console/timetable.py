"""The console's 定时任务 page: each job's timetable in words, next and last run; pause and
resume (kept in the store: a pause survives a restart of ``dealerbot serve``, who paused it and
when in the audit trail); 立即运行 starts the job's bot (or the daily sync) now in this process
and opens its run page."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dealerbot.errors import DealerbotError

if TYPE_CHECKING:
    from dealerbot.console.app import Console
    from dealerbot.console.home import SyncStarter
    from dealerbot.schedule.timetable import Job


def actor_of(request: Request) -> str:
    """Who did it, for the audit trail: the console's operator and the address they came from."""
    return f"控制台操作员（{request.client.host if request.client else '?'}）"


async def start_job(c: Console, starter: SyncStarter, job: Job) -> str:
    """Start timetable job ``job`` now in this process (its bot with the job's options, through
    :meth:`Console.start`; the whole sync, through 一键同步's ``starter``), recorded as started
    from the console and as that job's run: the run id of its (first) run once recorded.

    Raises:
        DealerbotError: it could not start (already running, configuration, the console stopping).
    """
    from dealerbot.schedule.timetable import SYNC

    options = dict(job.options)
    full = bool(options.pop("full", False))
    dry_run = bool(options.pop("dry_run", False))
    if job.run != SYNC:
        return await c.start(job.run, dry_run, options=options, full=full, job=job.name)
    run_id = await starter.start(job=job.name, full=full, dry_run=dry_run)
    if not run_id:
        raise DealerbotError("同步正在运行，或没有开始任何运行，请在“今日”查看 (a sync runs already, or none started)")
    return run_id


def register(app: FastAPI, c: Console) -> None:
    """Add the timetable page to ``app``."""
    settings = c.settings
    check_csrf = c.check_csrf

    def jobs_or_error() -> tuple[list[Job], str]:
        from dealerbot.schedule.timetable import timetables_of

        try:
            return timetables_of(settings), ""
        except DealerbotError as exc:
            return [], str(exc)

    def page(request: Request, code: int = 200, error: str = "") -> HTMLResponse:
        from dealerbot.console.home import scheduler_state, sync_outcome
        from dealerbot.running.sync import CONSOLE_JOB, MANUAL_JOB, last_sync
        from dealerbot.schedule.holidays import calendar_warnings
        from dealerbot.schedule.timetable import SYNC, next_fire
        from dealerbot.schedule.words import job_in_words

        rows = []
        jobs, problem = jobs_or_error()
        with c.store() as store:
            pauses = store.job_pauses()
            # The daily sync's last run is the newest sync, whoever started it (一键同步 too).
            chain = last_sync(store.runs(300), [*(j.name for j in jobs if j.run == SYNC), MANUAL_JOB, CONSOLE_JOB])
            for job in jobs:
                aps = c.scheduler.aps.get_job(job.name) if c.scheduler is not None else None
                pause = pauses.get(job.name)
                nxt = None
                if pause is None:
                    if aps is not None:
                        nxt = aps.next_run_time
                    else:
                        try:
                            times = next_fire(job, settings)
                            nxt = times[0] if times else None
                        except DealerbotError:
                            nxt = None
                last, result, by = store.last_job_run(job.name), "", ""
                if job.run == SYNC and chain:
                    last, by = chain[0], ("" if chain[0].job == job.name else
                                          "控制台" if chain[0].job == CONSOLE_JOB else "手动")
                    result = sync_outcome(chain, None)[0]
                elif last is not None:
                    from dealerbot.status_text import STATUS_TEXT

                    result = STATUS_TEXT.get(last.status, last.status)
                rows.append({"job": job, "title": c.names.job(job.name, job.run), "runs": c.names.bot(job.run),
                             "words": job_in_words(job), "next": nxt, "last": last, "result": result, "by": by,
                             "pause": pause})
        holidays = [] if problem else calendar_warnings(settings, console=True)
        workdays = any(j.enabled and j.days == "workdays" for j in jobs)
        return c.page(request, "schedules.html", code, rows=rows, scheduler=scheduler_state(c),
                      holidays=holidays, workdays=workdays, error=error or problem)

    @app.get("/schedules", response_class=HTMLResponse)
    async def schedules(request: Request) -> HTMLResponse:
        return page(request)

    def job_or_404(name: str) -> Job:
        jobs, _ = jobs_or_error()
        job = next((j for j in jobs if j.name == name and j.enabled), None)
        if job is None:
            raise HTTPException(404, "没有这个定时任务")
        return job

    @app.post("/schedules/{name}/{action}")
    async def job_action(request: Request, name: str, action: str, csrf: str = Form("")) -> Response:
        check_csrf(request, csrf)
        if action not in ("pause", "resume", "run"):
            raise HTTPException(404, "没有这个操作")
        job = job_or_404(name)
        if action == "run":
            try:
                run_id = await start_job(c, app.state.sync_starter, job)
            except DealerbotError as exc:
                return page(request, 409, error=f"{c.names.job(job.name, job.run)}没有开始：{exc}")
            return RedirectResponse(f"/runs/{run_id}", status_code=303)
        with c.store() as store:  # kept in the store: it holds across restarts
            (store.pause_job if action == "pause" else store.resume_job)(name, actor_of(request))
            pauses = store.job_pauses()
        if c.scheduler is not None:  # the scheduler of this process follows at once (others within 30 s)
            c.scheduler.follow_pauses(pauses)
        return RedirectResponse(f"/schedules#job-{name}", status_code=303)

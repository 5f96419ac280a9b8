"""The console's 定时任务 page: each job's next and last run; pause and resume."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dealerbot.errors import DealerbotError

if TYPE_CHECKING:
    from dealerbot.console.app import Console


def register(app: FastAPI, c: Console) -> None:
    """Add the timetable page to ``app``."""
    settings = c.settings
    check_csrf = c.check_csrf

    @app.get("/schedules", response_class=HTMLResponse)
    async def schedules(request: Request) -> HTMLResponse:
        from dealerbot.schedule.timetable import next_fire, timetables_of

        rows, error = [], ""
        try:
            jobs = timetables_of(settings)
        except DealerbotError as exc:
            jobs, error = [], str(exc)
        with c.store() as store:
            for job in jobs:
                aps = c.scheduler.aps.get_job(job.name) if c.scheduler is not None else None
                if aps is not None:
                    nxt = aps.next_run_time
                else:
                    try:
                        times = next_fire(job, settings)
                        nxt = times[0] if times else None
                    except DealerbotError:
                        nxt = None
                rows.append({"job": job, "next": nxt, "last": store.last_job_run(job.name),
                             "paused": aps is not None and aps.next_run_time is None})
        return c.page(request, "schedules.html", rows=rows, serving=c.scheduler is not None, error=error)

    @app.post("/schedules/{name}/{action}")
    async def pause_resume(request: Request, name: str, action: str, csrf: str = Form("")) -> Response:
        check_csrf(request, csrf)
        if c.scheduler is None or action not in ("pause", "resume") or c.scheduler.aps.get_job(name) is None:
            raise HTTPException(404, "没有这个定时任务，或调度程序未在本进程运行")
        getattr(c.scheduler.aps, f"{action}_job")(name)
        return RedirectResponse("/schedules", status_code=303)

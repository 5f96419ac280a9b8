"""The console's 机器人 and 运行记录 pages: start a bot, the history, a run's page with its live
progress (server-sent events), its evidence and its review workbook."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse

from dealerbot.console import run_page as view
from dealerbot.errors import AlreadyRunning, DealerbotError
from dealerbot.private_files import private_dir

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.console.app import Console
    from dealerbot.running.bot import Bot


def fitting_bots(settings: Settings, bots: list[type[Bot]]) -> tuple[list[type[Bot]], list[tuple[type[Bot], str]]]:
    """The bots this dealership uses, by name; and the others, each with why it is not among
    them: the re-key bot of the DMS client it does not have (``[rekey] client``: a web DMS has
    no use for ``dms-desktop-rekey``, nor a desktop one for ``dms-rekey``), a bot that needs an
    input file (the console has no way to hand it one)."""
    from dealerbot.running.sync import WRITE_BOTS

    shown, more = [], []
    for bot in sorted(bots, key=lambda b: b.name):
        other_writer = bot.name in WRITE_BOTS.values() and bot.name != WRITE_BOTS[settings.rekey.client]
        if other_writer:
            how = "桌面客户端" if settings.rekey.client == "desktop" else "网页"
            more.append((bot, f"本店的DMS通过{how}录入，不使用这个机器人"))
        elif bot.needs_input:
            more.append((bot, "需要输入文件，不能在控制台启动"))
        else:
            shown.append(bot)
    return shown, more


def register(app: FastAPI, c: Console) -> None:
    """Add the bots and runs pages to ``app``."""
    settings = c.settings
    check_csrf = c.check_csrf

    def bots_values(error: str = "", error_link: tuple[str, str] | None = None) -> dict[str, Any]:
        """The 机器人 page: the bots that fit this dealership first, the rarely used under 更多."""
        from dealerbot.running.registry import discover

        with c.store() as store:
            running = {r.bot for r in store.runs(50) if r.status == "running"}
        shown, more = fitting_bots(settings, list(discover(home=settings.home).values()))
        return {"bots": shown, "more": more, "running": running, "error": error, "error_link": error_link}

    @app.get("/bots", response_class=HTMLResponse)
    async def bots(request: Request, error: str = "") -> HTMLResponse:
        return c.page(request, "bots.html", **bots_values(error))

    @app.post("/bots/{name}/run")
    async def run_now(request: Request, name: str, csrf: str = Form(""), dry_run: str = Form("")) -> Response:
        check_csrf(request, csrf)
        try:
            run_id = await c.start(name, bool(dry_run))
        except AlreadyRunning:
            return c.page(request, "bots.html", 409, **bots_values(
                f"{c.names.bot(name)} 正在运行（可能是定时任务或另一个窗口启动的），本次不再启动。", (f"/runs?bot={name}", "查看运行记录")))
        except DealerbotError as exc:
            return c.page(request, "bots.html", 409, **bots_values(str(exc)))
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.get("/runs", response_class=HTMLResponse)
    async def runs(request: Request, bot: str = "", status: str = "") -> HTMLResponse:
        with c.store() as store:
            store.close_abandoned_runs()
            history = [r for r in store.runs(200, bot or None) if not status or r.status == status][:100]
        from dealerbot.running.registry import discover

        advice = {r.run_id: view.advice_for(c, r)[0] for r in history if r.status in view.RERUNNABLE}
        jobs = view.job_names(c)
        triggers = {r.run_id: view.trigger_text(c, r, jobs) for r in history}
        try:
            known = sorted(discover(home=settings.home))
        except DealerbotError:
            known = []
        choices = [(b, c.names.bot(b)) for b in ["sync", *known, *([bot] if bot and bot not in known else [])]]
        return c.page(request, "runs.html", runs=history, bot=bot, status=status, advice=advice, triggers=triggers,
                      bot_choices=choices)

    def _run_or_404(run_id: str) -> Any:
        with c.store() as store:
            run = store.run(run_id)
            if run is None:
                raise HTTPException(404, "没有这次运行")
            rejects = list(store.iter_rejects(run_id))[:500]
        return run, rejects

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> HTMLResponse:
        run, rejects = _run_or_404(run_id)
        shots, files = view.evidence_names(run)
        return c.page(request, "run.html", run=run, shots=shots, files=files, live=run.status == "running",
                      **view.page_values(c, run, rejects))

    @app.get("/runs/{run_id}/events")
    async def events(run_id: str) -> StreamingResponse:
        run, _ = _run_or_404(run_id)
        log_file = settings.path("logs") / "runs" / run_id / "run.log"

        async def stream() -> AsyncIterator[str]:
            offset = 0
            while True:
                if log_file.is_file():
                    with log_file.open("r", encoding="utf-8", errors="replace") as fh:
                        fh.seek(offset)
                        chunk = fh.read()
                        offset = fh.tell()
                    for line in chunk.splitlines():
                        yield f"event: log\ndata: {json.dumps(line, ensure_ascii=False)}\n\n"
                if run_id in c.live:
                    started = c.started.get(run_id)
                    elapsed = asyncio.get_running_loop().time() - started if started is not None else None
                    progress = view.progress_payload(c.live[run_id], elapsed)
                    yield f"event: counts\ndata: {json.dumps(progress, ensure_ascii=False)}\n\n"
                question = c.login_help.waiting(run_id)
                if question is not None:  # the key only: the page shows the box when it reloads
                    yield f"event: ask\ndata: {json.dumps({'key': question.key})}\n\n"
                with c.store() as store:
                    current = store.run(run_id)
                if current is None or current.status != "running" or c.stop.is_set():
                    yield "event: done\ndata: {}\n\n"
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/runs/{run_id}/files/{name}")
    async def evidence(run_id: str, name: str) -> FileResponse:
        run, _ = _run_or_404(run_id)
        recorded = {Path(p).name: Path(p) for p in run.evidence}  # only the run's own files, by name
        path = recorded.get(name)
        if path is None or not path.is_file():
            raise HTTPException(404, "没有这个文件")
        if path.suffix == ".png":
            return FileResponse(path, media_type="image/png")
        return FileResponse(path, media_type="application/octet-stream", filename=name)  # never rendered here

    @app.get("/runs/{run_id}/workbook")
    async def workbook(run_id: str) -> FileResponse:
        from dealerbot.review.export import export_runs
        from dealerbot.running.registry import entity_of_bots

        run, _ = _run_or_404(run_id)
        out = private_dir(settings.path("out")) / f"review-{run_id}.xlsx"
        try:
            with c.store() as store:
                await asyncio.to_thread(export_runs, store, [run], out, entity_of_bots(settings.home), False, console=True,
                                        titles={run.bot: c.names.bot(run.bot)})
        except (DealerbotError, ValueError, OSError) as exc:
            raise HTTPException(500, f"无法生成审核工作簿：{exc}") from None
        return FileResponse(out, filename=out.name,
                            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

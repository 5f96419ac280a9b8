"""The console's 审核 page: upload a reviewed workbook, then 立即写入DMS (the re-key bot, now);
actions whose approval a changed plan dropped."""
from __future__ import annotations

import asyncio
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dealerbot.errors import AlreadyRunning, DealerbotError
from dealerbot.private_files import private_dir
from dealerbot.rekey.ledger import KIND_TEXT

if TYPE_CHECKING:
    from dealerbot.console.app import Console


def register(app: FastAPI, c: Console) -> None:
    """Add the review page to ``app``."""
    settings = c.settings
    check_csrf = c.check_csrf

    # -- review ---------------------------------------------------------------------------------
    def review_page_values() -> dict[str, Any]:
        """What the review page lists: actions whose approval a changed plan dropped, and why."""
        from dealerbot.console.rollback import pending_reversals
        from dealerbot.flows.registry import discover_flows, flow_counts
        from dealerbot.rekey.ledger import ORDERS_FLOW
        from dealerbot.review.sheets import reapprovals

        flows = discover_flows(settings.home)
        with c.store() as store:
            again = reapprovals(store)
            approved = len(store.actions(states=("approved",), flow=ORDERS_FLOW))  # the 立即写入DMS button's
            per_flow = flow_counts(store, flows)
            reversals = pending_reversals(c, store)
        kinds = {k: v for f in flows.values() for k, v in f.kinds.items()}
        return {"reapprovals": [{"order_no": a.natural_key, "kind": kinds.get(a.kind, KIND_TEXT.get(a.kind, a.kind)),
                                 "why": c.masker(a.note)} for a in again], "approved": approved, "reversals": reversals,
                "flows": per_flow if any(f["name"] != ORDERS_FLOW for f in per_flow) else []}

    @app.get("/review", response_class=HTMLResponse)
    async def review_page(request: Request, rollback: str = "") -> HTMLResponse:
        """``rollback``: the run just rolled back (回滚此次写入 came here): said on top."""
        return c.page(request, "review.html", rolled_back=rollback, **review_page_values())

    @app.post("/review", response_class=HTMLResponse)
    async def review_upload(request: Request, file: UploadFile, csrf: str = Form(""), apply_valid: str = Form("")) -> HTMLResponse:
        check_csrf(request, csrf)
        folder = private_dir(settings.path("state") / "uploads")
        target = folder / f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}.xlsx"  # never the client's name
        target.write_bytes(await file.read(20_000_001))
        if target.stat().st_size > 20_000_000:
            target.unlink()
            return c.page(request, "review.html", 413, error="文件太大（超过 20 MB）")
        try:
            return await _import(request, target, file.filename or "工作簿", bool(apply_valid))
        finally:
            target.unlink(missing_ok=True)  # it holds customers' data: not kept once read

    async def _import(request: Request, target: Path, shown: str, apply_valid: bool) -> HTMLResponse:
        from dealerbot.data.dictionary import load_dictionary
        from dealerbot.flows.registry import discover_flows
        from dealerbot.review.sheets import apply_review, read_review

        try:
            dictionary = (load_dictionary(settings.dictionary_path, settings.dictionary_overlay)
                          if "orders" in settings.flows.enabled or settings.dictionary_path.is_file() else None)
            flows = discover_flows(settings.home)
            with c.store() as store:
                result = await asyncio.to_thread(read_review, target, store, dictionary, flows)
                if result.problems and not apply_valid:
                    return c.page(request, "review.html", 422, problems=result.problems,
                                  error=f"{len(result.problems)} 行有问题，未导入任何内容")
                apply_review(store, result, settings.rekey.reviewer or "控制台")
        except DealerbotError as exc:
            return c.page(request, "review.html", 422, error=str(exc).replace(str(target), shown))
        return c.page(request, "review.html", done=result.counts, undecided=result.undecided, problems=result.problems,
                      **review_page_values())

    @app.post("/review/write")
    async def write_now(request: Request, csrf: str = Form("")) -> Response:
        """立即写入DMS: the re-key bot of this dealership's DMS ([rekey] client), now; its run page."""
        from dealerbot.running.sync import WRITE_BOTS

        check_csrf(request, csrf)
        try:
            run_id = await c.start(WRITE_BOTS[settings.rekey.client], False)
        except AlreadyRunning:
            return c.page(request, "review.html", 409, error="正在写入DMS（上一次写入还没有结束），本次不再启动。",
                          error_link=("/runs", "查看运行记录"), **review_page_values())
        except DealerbotError as exc:
            return c.page(request, "review.html", 409, error=f"无法开始写入DMS：{exc}", **review_page_values())
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

"""回滚此次写入 on a re-key run's page: the plan shown first (nothing stored), then, confirmed,
stored in the ledger for review (:mod:`dealerbot.rekey.rollback`); the review page lists the
reverse actions waiting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from dealerbot.errors import DealerbotError
from dealerbot.rekey.ledger import KIND_TEXT, OPEN_STATES, STATE_TEXT

if TYPE_CHECKING:
    from dealerbot.console.app import Console
    from dealerbot.store import Store
    from dealerbot.store.runs import RunRecord


def rollback_state(store: Store, run: RunRecord, wrote: bool) -> dict[str, Any] | None:
    """What the run page says of rolling ``run`` back: None (not a finished run that wrote into
    the DMS), ``{"done": ...}`` (planned already: when, by whom, how many reverse actions) or
    ``{"can": True}`` (the button)."""
    if not wrote or run.status == "running" or run.options.get("dry_run"):
        return None
    rows = store.rollback_rows(run.run_id)
    if rows:
        return {"done": True, "at": rows[0]["at"], "actor": rows[0]["actor"],
                "actions": len({r["action_id"] for r in rows if r["action_id"]})}
    return {"can": True}


def pending_reversals(c: Console, store: Store) -> list[dict[str, Any]]:
    """The open reverse actions (a rollback's), for the review page."""
    reverse = store.reverse_actions()
    if not reverse:
        return []
    return [{"id": a.id, "order_no": a.natural_key, "contract_no": a.contract_no, "kind": KIND_TEXT[a.kind],
             "state": STATE_TEXT[a.state], "run_id": reverse[a.id], "note": c.masker(a.failure_reason or a.note)}
            for a in store.actions(OPEN_STATES) if a.id in reverse]


def register(app: FastAPI, c: Console) -> None:
    """Add 回滚此次写入 (preview, then confirm) to ``app``."""
    settings = c.settings

    def _plan(run_id: str, save: bool) -> Any:
        """The run's rollback plan; stored when ``save`` (under the ledger lock, never waiting).

        Raises:
            DealerbotError: refused (the reason in Chinese), or the ledger is busy.
        """
        from dealerbot.data.dictionary import load_dictionary
        from dealerbot.rekey.rollback import plan_rollback, save_plan
        from dealerbot.store import LedgerLock

        dictionary = load_dictionary(settings.dictionary_path, settings.dictionary_overlay)
        policy = settings.rekey.policy()
        with c.store() as store:
            if not save:
                return plan_rollback(store, run_id, dictionary.cancelled_status, policy)
            lock = LedgerLock(store, "rollback (console)")
            if not lock.try_acquire():
                raise DealerbotError(f"正在写入DMS或对账（{lock.holder() or '另一个进程'}），请等它结束后再回滚；未做任何改动")
            try:
                plan = plan_rollback(store, run_id, dictionary.cancelled_status, policy)
                save_plan(store, plan, settings.rekey.reviewer or "控制台")
            finally:
                lock.release()
            return plan

    def _page(request: Request, run_id: str, code: int = 200, **values: Any) -> Response:
        with c.store() as store:
            run = store.run(run_id)
        if run is None:
            raise HTTPException(404, "没有这次运行")
        return c.page(request, "rollback.html", code, run=run, bot_title=c.names.bot(run.bot), **values)

    @app.post("/runs/{run_id}/rollback")
    async def preview(request: Request, run_id: str, csrf: str = Form("")) -> Response:
        """回滚此次写入: what would be planned, with 确认 (nothing stored yet)."""
        c.check_csrf(request, csrf)
        try:
            plan = _plan(run_id, save=False)
        except DealerbotError as exc:
            return _page(request, run_id, 409, error=str(exc))
        return _page(request, run_id, lines=plan.lines(c.masker), actions=len(plan.actions))

    @app.post("/runs/{run_id}/rollback/confirm")
    async def confirm(request: Request, run_id: str, csrf: str = Form("")) -> Response:
        """确认: the plan stored for review; then the review page, which lists it."""
        c.check_csrf(request, csrf)
        try:
            _plan(run_id, save=True)
        except DealerbotError as exc:
            return _page(request, run_id, 409, error=str(exc))
        return RedirectResponse(f"/review?rollback={run_id}", status_code=303)

"""The OEM portal's leads (线索管理, ``/leads``) and each lead's 回访登记 (``/leads/{no}``): the car
maker pushes customer leads down to the dealer and wants every follow-up call logged back within
:data:`~dealerbot.sandbox.leads_data.FOLLOWUP_DAYS` days. See docs/sandbox.md.

Registered on the OEM app with one line (:func:`add_leads`).
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .common import Runtime, admin_guard, check_csrf, paged_search, require_login
from .leads_data import FOLLOWUP_DAYS, OEM_RESULTS
from .state import SandboxState

FOLLOWUP_FORM = ("followed_on", "result", "next_step", "note")
NOTE_MAX = 200


def add_leads(app: FastAPI, rt: Runtime, state: SandboxState) -> None:
    """Serve 线索管理, 线索详情 with its 回访记录 and 回访登记 form, and their admin routes on the OEM ``app``."""

    def today() -> date:
        return state.reference.date()

    def status(lead: dict) -> str:
        if lead["followups"]:
            return "已回访"
        return "已超时" if today() > date.fromisoformat(lead["followup_deadline"]) else "待回访"

    @app.get("/leads")
    async def leads(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        toast, sess.flash = sess.flash, None
        return rt.render(request, "oem_leads.html", **paged_search(request, state.search_leads), pager_id="leads-pager",
                         toast=toast, status=status, today=today().isoformat(), followup_days=FOLLOWUP_DAYS)

    def lead_page(request: Request, lead_no: str, v: dict, errors: dict, status_code: int = 200,
                  toast: str | None = None) -> Response:
        lead = state.get_lead(lead_no)
        if lead is None:
            raise HTTPException(404, detail=f"线索 {lead_no} 不存在。")
        return rt.render(request, "oem_lead.html", status_code=status_code, l=lead, followups=state.followups_of(lead_no),
                         v=v, errors=errors, results=OEM_RESULTS, status=status, toast=toast)

    @app.get("/leads/{lead_no}")
    async def lead(request: Request, lead_no: str) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        toast, sess.flash = sess.flash, None
        return lead_page(request, lead_no, {k: "" for k in FOLLOWUP_FORM}, {}, toast=toast)

    @app.post("/leads/{lead_no}/followups")
    async def log_followup(request: Request, lead_no: str) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        posted = await request.form()
        v = {k: str(posted.get(k) or "").strip() for k in FOLLOWUP_FORM}
        if not check_csrf(request, str(posted.get("csrf_token") or "")):
            return lead_page(request, lead_no, v, {"form": "页面已过期，请刷新后重试"}, 403)
        with state.lock:
            found = state.get_lead(lead_no)
            if found is None:
                raise HTTPException(404, detail=f"线索 {lead_no} 不存在。")
            errors: dict[str, str] = {}
            try:
                when = date.fromisoformat(v["followed_on"]) if v["followed_on"] else None
            except ValueError:
                when = None
                errors["followed_on"] = "日期格式不正确（YYYY-MM-DD）"
            if not v["followed_on"]:
                errors["followed_on"] = "请填写回访日期"
            elif when is not None and when > today():
                errors["followed_on"] = "回访日期不能晚于今天"
            elif when is not None and when < date.fromisoformat(found["assigned_on"]):
                errors["followed_on"] = f"回访日期早于线索分配日期（{found['assigned_on']}）"
            if v["result"] not in OEM_RESULTS:
                errors["result"] = "请选择回访结果"
            if len(v["note"]) > NOTE_MAX:
                errors["note"] = f"备注不能超过{NOTE_MAX}字"
            if errors:
                return lead_page(request, lead_no, v, errors, 422)
            assert when is not None
            late = when > date.fromisoformat(found["followup_deadline"])
            no = state.insert_oem_followup({**v, "followed_on": when.isoformat(), "lead_no": lead_no,
                                            "logged_on": today().isoformat(), "late": int(late)})
        msg = f"回访登记成功（回访编号 {no}）"
        if late:
            msg += f"；回访日期已超过跟进期限（{found['followup_deadline']}），记为超时回访"
        sess.flash = msg
        return RedirectResponse(f"/leads/{quote(lead_no)}", status_code=303)

    # ---- admin ---------------------------------------------------------------------------
    @app.get("/__admin/leads")
    async def admin_leads(request: Request) -> list[dict]:
        """Every lead with ``followups`` (how many are logged) and its ``seed_case``."""
        admin_guard(rt, request)
        return state.all_leads()

    @app.post("/__admin/leads")
    async def admin_add_lead(request: Request) -> Response:
        """Push a lead to the dealer (tests): ``name``, ``mobile``, ``model_code``, ``source``,
        ``assigned_on`` (default today), ``consent`` (default 已授权); the deadline follows; answers the lead."""
        admin_guard(rt, request)
        body = await request.json()
        try:
            assigned = date.fromisoformat(str(body.get("assigned_on") or today().isoformat()))
        except ValueError:
            return JSONResponse({"error": "assigned_on must be YYYY-MM-DD"}, status_code=422)
        with state.lock:
            no = state.insert_lead({"name": str(body.get("name", "")), "mobile": str(body.get("mobile", "")),
                                    "model_code": str(body.get("model_code", "")), "source": str(body.get("source") or "官网"),
                                    "assigned_on": assigned.isoformat(),
                                    "followup_deadline": (assigned + timedelta(days=FOLLOWUP_DAYS)).isoformat(),
                                    "consent": str(body.get("consent") or "已授权"), "seed_case": ""})
            return JSONResponse(state.get_lead(no))

    @app.get("/__admin/followups")
    async def admin_followups(request: Request) -> list[dict]:
        """Every follow-up logged on the portal (``late`` 0/1)."""
        admin_guard(rt, request)
        return state.all_oem_followups()

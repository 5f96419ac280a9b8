"""The DMS's prospects (潜客管理, ``/prospects``, a 新建潜客 form) and the follow-ups its sales staff
enter on them (跟进记录, ``/prospect-followups``; seeded, as staff key them in the DMS's own
screens). Matching a lead to an existing customer by mobile is the flow's job, not the DMS's:
the DMS only refuses a second prospect of the same OEM lead. See docs/sandbox.md.

Registered on the DMS app with one line (:func:`add_prospects`).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .common import Runtime, admin_guard, check_csrf, paged_search, require_login
from .data import DMS_MODELS, mobile_is_clean
from .leads_data import DMS_RESULTS
from .state import SandboxState

PROSPECT_FORM = ("name", "mobile", "model_code", "source", "oem_lead_no")
PROSPECT_SOURCES = ("厂家线索", "自然到店", "电话咨询", "老客户推荐")
LEAD_NO = re.compile(r"^XL\d{10}$")


def add_prospects(app: FastAPI, rt: Runtime, state: SandboxState) -> None:
    """Serve 潜客管理, 新建潜客, 跟进记录 and their admin routes on the DMS ``app``."""
    models = {c for c, _ in DMS_MODELS}

    @app.get("/prospects")
    async def prospects(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        toast, sess.flash = sess.flash, None
        return rt.render(request, "dms_prospects.html", **paged_search(request, state.search_prospects),
                         pager_id="prospects-pager", toast=toast, nav="prospects")

    @app.get("/prospect-followups")
    async def followups(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        return rt.render(request, "dms_prospect_followups.html", **paged_search(request, state.search_dms_followups),
                         pager_id="prospect-followups-pager", nav="prospects")

    def form(request: Request, v: dict, errors: dict, status_code: int = 200) -> Response:
        return rt.render(request, "dms_prospect_form.html", status_code=status_code, v=v, errors=errors,
                         models=DMS_MODELS, sources=PROSPECT_SOURCES, nav="prospects")

    @app.get("/prospects/new")
    async def prospect_new(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        return form(request, {k: "" for k in PROSPECT_FORM}, {})

    @app.post("/prospects/new")
    async def prospect_post(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        posted = await request.form()
        v = {k: str(posted.get(k) or "").strip() for k in PROSPECT_FORM}
        v["oem_lead_no"] = v["oem_lead_no"].upper()
        if not check_csrf(request, str(posted.get("csrf_token") or "")):
            return form(request, v, {"form": "页面已过期，请刷新后重试"}, 403)
        errors: dict[str, str] = {}
        if not v["name"]:
            errors["name"] = "请填写客户姓名"
        elif len(v["name"]) > 30:
            errors["name"] = "姓名过长"
        if not v["mobile"]:
            errors["mobile"] = "请填写手机号"
        elif not mobile_is_clean(v["mobile"]):
            errors["mobile"] = "手机号格式不正确（11位数字）"
        if v["model_code"] not in models:
            errors["model_code"] = "请选择意向车型"
        if v["source"] not in PROSPECT_SOURCES:
            errors["source"] = "请选择客户来源"
        elif v["source"] == "厂家线索" and not v["oem_lead_no"]:
            errors["oem_lead_no"] = "厂家下发线索须填写厂家线索编号"
        with state.lock:
            if v["oem_lead_no"] and "oem_lead_no" not in errors:
                if not LEAD_NO.match(v["oem_lead_no"]):
                    errors["oem_lead_no"] = "厂家线索编号格式不正确（XL+10位数字）"
                else:
                    dup = state.prospect_with("oem_lead_no", v["oem_lead_no"])
                    if dup is not None:
                        errors["oem_lead_no"] = f"该厂家线索已建潜客（{dup['prospect_no']}）"
            if errors:
                return form(request, v, errors, 422)
            no = state.insert_prospect({**v, "sales_rep": sess.display_name})
        sess.flash = f"保存成功（潜客编号 {no}）"
        return RedirectResponse("/prospects?" + urlencode({"q": no}), status_code=303)

    # ---- admin ---------------------------------------------------------------------------
    @app.get("/__admin/prospects")
    async def admin_prospects(request: Request) -> list[dict]:
        admin_guard(rt, request)
        return state.all_prospects()

    @app.get("/__admin/prospect-followups")
    async def admin_followups(request: Request) -> list[dict]:
        """Every follow-up as 跟进记录 lists it (with the prospect's OEM lead no, name and mobile)."""
        admin_guard(rt, request)
        return state.all_dms_followups()

    @app.post("/__admin/prospect-followups")
    async def admin_add_followup(request: Request) -> Response:
        """Plant a follow-up as sales staff would enter it: ``prospect_no`` (must exist),
        ``followed_on``, ``result`` (one of the DMS's words), ``next_step``, ``note``, ``staff``."""
        admin_guard(rt, request)
        body = await request.json()
        row = {k: str(body.get(k, "")) for k in ("prospect_no", "followed_on", "result", "next_step", "note", "staff")}
        if state.prospect_with("prospect_no", row["prospect_no"]) is None:
            return JSONResponse({"error": "prospect_no must name an existing prospect"}, status_code=422)
        if row["result"] not in DMS_RESULTS:
            return JSONResponse({"error": f"result must be one of {', '.join(DMS_RESULTS)}"}, status_code=422)
        no = state.insert_dms_followup({**row, "staff": row["staff"] or "销售顾问 张敏"})
        return JSONResponse(next(f for f in state.all_dms_followups() if f["followup_no"] == no))

"""The practice OEM dealer portal (厂家经销商门户). See docs/sandbox.md."""

from __future__ import annotations

import io
import math
import secrets
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from . import login_steps
from .common import (
    PAGE_SIZE,
    STATIC,
    Account,
    Runtime,
    admin_guard,
    check_csrf,
    common_admin_router,
    install_middleware,
    paged_search,
    require_login,
    safe_next,
)
from .config import SandboxConfig
from .data import ID_TYPES, STATUSES, iso
from .leads import add_leads
from .retail_reports import add_retail_reports
from .state import SandboxState

DEMO_DEALER_CODE = "D31001"
DEMO_USERNAME = "dealer_admin"
DEMO_PASSWORD = "Oem@2026!"
DEMO_DEALER_NAME = "杭州国星汽车销售服务有限公司"

API_FIELDS = ("order_no", "customer_name", "model_code", "color", "status", "planned_delivery_date", "updated_at")
EXPORT_COLUMNS = (("order_no", "订单号"), ("customer_name", "客户姓名"), ("mobile", "手机号"), ("id_type", "证件类型"),
                  ("id_number", "证件号码"), ("model_code", "车型代码"), ("color", "颜色"), ("vin", "VIN"),
                  ("price", "价格"), ("status", "状态"), ("planned_delivery_date", "计划交车日期"),
                  ("updated_at", "更新时间"))


def _oem_accounts() -> dict[str, Account]:
    key = f"{DEMO_DEALER_CODE}/{DEMO_USERNAME}"
    return {key: Account(key=key, password=DEMO_PASSWORD, display_name=f"{DEMO_DEALER_NAME}（{DEMO_DEALER_CODE}）")}


class _BadParam(Exception):
    pass


def _parse_date(value: str | None, name: str) -> str | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise _BadParam(f"{name} must be YYYY-MM-DD") from None


def _parse_since(value: str | None) -> str | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise _BadParam("updated_since must be an ISO 8601 datetime") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone().replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")


def _filters(request: Request) -> dict:
    q = request.query_params
    status = (q.get("status") or "").strip()
    if status and status not in STATUSES:
        raise _BadParam(f"status must be one of {', '.join(STATUSES)}")
    sort = q.get("sort") or "updated_at"
    if sort != "updated_at":
        raise _BadParam("sort must be updated_at")
    direction = (q.get("dir") or "desc").lower()
    if direction not in ("asc", "desc"):
        raise _BadParam("dir must be asc or desc")
    return {"date_from": _parse_date(q.get("date_from"), "date_from"),
            "date_to": _parse_date(q.get("date_to"), "date_to"),
            "status": status or None, "updated_since": _parse_since(q.get("updated_since")),
            "direction": direction}


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        v = int(raw)
    except ValueError:
        raise _BadParam(f"{name} must be an integer") from None
    if v < 1:
        raise _BadParam(f"{name} must be >= 1")
    return v


class OrderIn(BaseModel):
    """Body of POST /__admin/orders (and, all optional, PATCH)."""

    model_config = ConfigDict(extra="forbid")

    order_no: str | None = None
    customer_no: str = ""
    customer_name: str = ""
    mobile: str = ""
    id_type: str = "身份证"
    id_number: str = ""
    model_code: str = ""
    color: str = ""
    vin: str = ""
    price: float = 0.0
    status: str = "已下单"
    planned_delivery_date: str = ""
    updated_at: str | None = None

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        return v

    @field_validator("id_type")
    @classmethod
    def _id_type(cls, v: str) -> str:
        if v not in ID_TYPES:
            raise ValueError(f"id_type must be one of {', '.join(ID_TYPES)}")
        return v

    @field_validator("planned_delivery_date")
    @classmethod
    def _pdd(cls, v: str) -> str:
        return date.fromisoformat(v).isoformat() if v else ""

    @field_validator("updated_at")
    @classmethod
    def _upd(cls, v: str | None) -> str | None:
        return iso(datetime.fromisoformat(v.replace(" ", "T"))) if v else None


def create_oem_app(cfg: SandboxConfig, state: SandboxState, admin_token: str | None = None) -> FastAPI:
    app = FastAPI(title="Sandbox OEM portal", docs_url=None, redoc_url=None, openapi_url=None)
    rt = Runtime(name="oem", cookie="oem_session", cfg=cfg, state=state,
                 admin_token=admin_token or cfg.admin_token or secrets.token_urlsafe(18),
                 accounts_factory=_oem_accounts)
    app.state.rt = rt
    install_middleware(app, rt)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    def bad(msg: str) -> JSONResponse:
        return JSONResponse({"error": "bad_request", "message": msg}, status_code=400)

    # ---- login ---------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/orders", status_code=303)

    def login_form(request: Request, status_code: int = 200, **values: Any) -> HTMLResponse:
        """The login page; with ``login_captcha`` on, a new captcha each time it is shown."""
        captcha = bool(rt.behaviours.get("login_captcha"))
        if captcha and request.state.session is not None:
            login_steps.new_captcha(rt, request.state.session)
        return rt.render(request, "oem_login.html", status_code=status_code, captcha=captcha, **values)

    def finish_login(request: Request, user: str, nxt: str) -> Response:
        old = request.state.session
        with rt.lock:
            rt.sessions.pop(old.sid, None)
        sess = rt.new_session()
        sess.user = user
        sess.display_name = rt.accounts[sess.user].display_name
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(rt.cookie, sess.sid, httponly=True, samesite="lax", path="/")
        return resp

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, expired: str | None = None, next: str | None = None):  # noqa: A002
        error = "会话已过期，请重新登录" if expired == "1" else ""
        return login_form(request, error=error, next=safe_next(next, "/orders"), dealer_code="", username="")

    @app.post("/login")
    async def login_post(request: Request):
        form = await request.form()
        nxt = safe_next(str(form.get("next") or ""), "/orders")
        dealer_code = str(form.get("dealer_code") or "").strip()
        username = str(form.get("username") or "").strip()
        if not check_csrf(request, str(form.get("csrf_token") or "")):
            return login_form(request, status_code=403, error="页面已过期，请刷新后重试",
                              next=nxt, dealer_code=dealer_code, username=username)
        if rt.behaviours.get("login_captcha"):
            sess = request.state.session
            typed, wanted = str(form.get("captcha") or "").strip(), sess.captcha if sess is not None else ""
            if sess is not None:
                sess.captcha = ""  # a captcha answers once
            if not wanted or not secrets.compare_digest(typed.encode(), wanted.encode()):
                return login_form(request, error="图形验证码错误，请重新输入", next=nxt, dealer_code=dealer_code,
                                  username=username)
        ok, msg = rt.check_login(f"{dealer_code}/{username}", str(form.get("password") or ""))
        if not ok:
            return login_form(request, error=msg, next=nxt, dealer_code=dealer_code, username=username)
        return login_steps.after_password(rt, request, f"{dealer_code}/{username}", nxt, finish_login)

    login_steps.register(app, rt, finish_login)

    @app.get("/logout")
    async def logout(request: Request) -> RedirectResponse:
        sess = request.state.session
        if sess is not None:
            with rt.lock:
                rt.sessions.pop(sess.sid, None)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(rt.cookie, path="/")
        return resp

    @app.post("/notice/ack")
    async def notice_ack(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            if isinstance(sess, RedirectResponse):
                return JSONResponse({"error": "session_expired" if request.state.expired else "not_logged_in"},
                                    status_code=401)
            return sess
        if not check_csrf(request, request.headers.get("x-csrf-token")):
            return JSONResponse({"error": "csrf", "message": "页面已过期，请刷新后重试"}, status_code=403)
        sess.notice_acked = True
        return {"ok": True}

    # ---- orders --------------------------------------------------------------------------
    @app.get("/orders", response_class=HTMLResponse)
    async def orders_page(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        q = request.query_params
        f = {"date_from": q.get("date_from", ""), "date_to": q.get("date_to", ""), "status": q.get("status", ""),
             "dir": "asc" if q.get("dir") == "asc" else "desc"}
        export_qs = urlencode({k: v for k, v in {**f, "sort": "updated_at"}.items() if v})
        return rt.render(request, "oem_orders.html", f=f, statuses=STATUSES, export_qs=export_qs)

    @app.get("/api/orders")
    async def api_orders(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        rt.count("api_requests")
        try:
            f = _filters(request)
            page = _int_param(request, "page", 1)
            size = min(_int_param(request, "page_size", PAGE_SIZE), PAGE_SIZE)
        except _BadParam as e:
            return bad(str(e))
        direction = f.pop("direction")
        total = state.count_orders(**f)
        pages = max(1, math.ceil(total / size))
        rows = state.list_orders(**f, direction=direction, limit=size, offset=(page - 1) * size)
        return {"page": page, "page_size": size, "total": total, "pages": pages,
                "items": [{k: r[k] for k in API_FIELDS} for r in rows]}

    @app.get("/orders/export.xlsx")
    async def export_xlsx(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        try:
            f = _filters(request)
        except _BadParam as e:
            return rt.render(request, "problem.html", status_code=400, title="参数错误", message=str(e),
                             status=400, app="oem")
        rt.count("exports")
        direction = f.pop("direction")
        rows = state.list_orders(**f, direction=direction)
        body = _xlsx(rows)
        name = f"orders_{datetime.now():%Y%m%d%H%M%S}.xlsx"
        return Response(body, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/orders/{order_no}", response_class=HTMLResponse)
    async def order_detail(request: Request, order_no: str):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        rt.count("detail_views")
        o = state.get_order(order_no)
        if o is None:
            raise HTTPException(404, detail=f"订单 {order_no} 不存在。")
        return rt.render(request, "oem_order_detail.html", o=o)

    # ---- customers -----------------------------------------------------------------------
    @app.get("/customers", response_class=HTMLResponse)
    async def customers_page(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        return rt.render(request, "oem_customers.html", **paged_search(request, state.search_oem_customers),
                         pager_id="customers-pager")

    add_retail_reports(app, rt, state)  # 交车上报 / 上报记录 (sandbox/retail_reports.py)
    add_leads(app, rt, state)  # 线索管理 / 回访登记 (sandbox/leads.py)

    # ---- admin ---------------------------------------------------------------------------
    app.include_router(common_admin_router(rt, state.reset_oem))

    @app.get("/__admin/orders")
    async def admin_orders(request: Request):
        admin_guard(rt, request)
        return state.all_orders()

    @app.get("/__admin/customers")
    async def admin_customers(request: Request):
        admin_guard(rt, request)
        return state.all_oem_customers()

    @app.post("/__admin/orders")
    async def admin_add_order(request: Request):
        admin_guard(rt, request)
        try:
            body = OrderIn(**(await request.json()))
        except (ValidationError, ValueError, TypeError) as e:
            return JSONResponse({"error": "invalid order", "message": str(e)}, status_code=422)
        row = body.model_dump()
        with state.lock:
            row["order_no"] = row["order_no"] or state.next_order_no()
            if state.get_order(row["order_no"]) is not None:
                return JSONResponse({"error": f"order {row['order_no']} exists"}, status_code=409)
            row["updated_at"] = row["updated_at"] or state.next_timestamp("oem_orders")
            state.insert_order(row)
            return state.get_order(row["order_no"])

    @app.patch("/__admin/orders/{order_no}")
    async def admin_patch_order(request: Request, order_no: str):
        admin_guard(rt, request)
        try:
            raw = await request.json()
            if not isinstance(raw, dict) or "order_no" in raw:
                raise ValueError("body must be an object of fields to change (order_no cannot change)")
            checked = OrderIn(**raw)
        except (ValidationError, ValueError, TypeError) as e:
            return JSONResponse({"error": "invalid change", "message": str(e)}, status_code=422)
        changes = {k: getattr(checked, k) for k in raw}
        with state.lock:
            if state.get_order(order_no) is None:
                return JSONResponse({"error": f"order {order_no} not found"}, status_code=404)
            if not changes.get("updated_at"):
                changes["updated_at"] = state.next_timestamp("oem_orders")
            state.update_order(order_no, changes)
            return state.get_order(order_no)

    @app.post("/__admin/unlock")
    async def admin_unlock(request: Request):
        admin_guard(rt, request)
        body = await request.json()
        key = f"{body.get('dealer_code', '')}/{body.get('username', '')}"
        if not rt.unlock(key):
            return JSONResponse({"error": "unknown account"}, status_code=404)
        return {"ok": True}

    return app


def _xlsx(rows: list[dict]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("订单")
    ws.append([h for _, h in EXPORT_COLUMNS])
    for r in rows:
        out = []
        for k, _ in EXPORT_COLUMNS:
            v = r[k]
            if k == "updated_at":
                v = v.replace("T", " ")
            c = WriteOnlyCell(ws, value=v)
            if isinstance(v, str):
                c.data_type = "s"  # never let a value become a formula
            out.append(c)
        ws.append(out)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()

"""The practice dealership DMS (经销商管理系统). See docs/sandbox.md."""

from __future__ import annotations

import asyncio
import math
import re
import secrets
from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

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
from .data import CONTRACT_STATUSES, DMS_MODELS, VIN_CHARS, id_is_valid, mobile_is_clean, vin_is_valid
from .deliveries import add_deliveries
from .prospects import add_prospects
from .state import SandboxState

DEMO_USERNAME = "sales01"
DEMO_PASSWORD = "Dms@2026!"
DEMO_DISPLAY = "销售顾问 张敏"

CONTRACT_FIELDS = ("customer_no", "model_code", "color", "vin", "price", "deposit", "delivery_date",
                   "oem_order_no", "status")
CUSTOMER_FIELDS = ("name", "mobile", "id_number", "address")
_OTHER_ID = re.compile(r"^[A-Z]{1,2}\d{7,9}$")


def _dms_accounts() -> dict[str, Account]:
    return {DEMO_USERNAME: Account(key=DEMO_USERNAME, password=DEMO_PASSWORD, display_name=DEMO_DISPLAY)}


def _money(raw: str) -> float | None:
    raw = raw.replace(",", "").replace("，", "").strip()
    try:
        v = float(raw)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def create_dms_app(cfg: SandboxConfig, state: SandboxState, admin_token: str | None = None) -> FastAPI:
    app = FastAPI(title="Sandbox DMS", docs_url=None, redoc_url=None, openapi_url=None)
    rt = Runtime(name="dms", cookie="dms_session", cfg=cfg, state=state,
                 admin_token=admin_token or cfg.admin_token or secrets.token_urlsafe(18),
                 accounts_factory=_dms_accounts)
    app.state.rt = rt
    install_middleware(app, rt)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    model_codes = {c for c, _ in DMS_MODELS}

    async def slow_save() -> None:
        """The ``save_delay_ms`` behaviour: the save is committed, the answer comes late."""
        delay = rt.behaviours.get("save_delay_ms") or 0
        if delay:
            await asyncio.sleep(delay / 1000)

    def take_flash(sess) -> str | None:  # noqa: ANN001
        msg, sess.flash = sess.flash, None
        return msg

    # ---- login ---------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/contracts", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, expired: str | None = None, next: str | None = None):  # noqa: A002
        error = "会话已过期，请重新登录" if expired == "1" else ""
        return rt.render(request, "dms_login.html", error=error, next=safe_next(next, "/contracts"), username="")

    @app.post("/login")
    async def login_post(request: Request):
        form = await request.form()
        nxt = safe_next(str(form.get("next") or ""), "/contracts")
        username = str(form.get("username") or "").strip()
        if not check_csrf(request, str(form.get("csrf_token") or "")):
            return rt.render(request, "dms_login.html", status_code=403, error="页面已过期，请刷新后重试",
                             next=nxt, username=username)
        ok, msg = rt.check_login(username, str(form.get("password") or ""))
        if not ok:
            return rt.render(request, "dms_login.html", error=msg, next=nxt, username=username)
        with rt.lock:
            rt.sessions.pop(request.state.session.sid, None)
        sess = rt.new_session()
        sess.user = username
        sess.display_name = rt.accounts[username].display_name
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(rt.cookie, sess.sid, httponly=True, samesite="lax", path="/")
        return resp

    @app.get("/logout")
    async def logout(request: Request) -> RedirectResponse:
        sess = request.state.session
        if sess is not None:
            with rt.lock:
                rt.sessions.pop(sess.sid, None)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(rt.cookie, path="/")
        return resp

    # ---- customers -----------------------------------------------------------------------
    @app.get("/customers", response_class=HTMLResponse)
    async def customers(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        return rt.render(request, "dms_customers.html", **paged_search(request, state.search_dms_customers),
                         pager_id="customers-pager", toast=take_flash(sess), nav="customers")

    @app.get("/api/customers")
    async def api_customers(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        rt.count("api_requests")
        q = (request.query_params.get("q") or "").strip()
        _, rows = state.search_dms_customers(q, PAGE_SIZE, 0)
        return [{k: r[k] for k in ("customer_no", "name", "mobile", "id_number")} for r in rows]

    @app.get("/api/models")
    async def api_models(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        return [{"code": c, "name": n} for c, n in DMS_MODELS]

    def validate_customer(v: dict) -> dict:
        errors = {}
        if not v["name"]:
            errors["name"] = "请填写客户姓名"
        elif len(v["name"]) > 30:
            errors["name"] = "姓名过长"
        if not v["mobile"]:
            errors["mobile"] = "请填写手机号"
        elif not mobile_is_clean(v["mobile"]):
            errors["mobile"] = "手机号格式不正确（11位数字）"
        idn = v["id_number"].upper()
        v["id_number"] = idn
        if not idn:
            errors["id_number"] = "请填写证件号码"
        elif re.fullmatch(r"\d{17}[\dX]", idn):
            if not id_is_valid(idn):
                errors["id_number"] = "身份证号码校验位不正确"
        elif not _OTHER_ID.match(idn):
            errors["id_number"] = "证件号码格式不正确"
        if "id_number" not in errors:
            dup = state.scalar("SELECT customer_no FROM dms_customers WHERE id_number = ? LIMIT 1", (idn,))
            if dup:
                errors["id_number"] = f"该证件号码已存在（客户 {dup}）"
        if not v["address"]:
            errors["address"] = "请填写地址"
        return errors

    @app.get("/customers/new", response_class=HTMLResponse)
    async def customer_new(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        return rt.render(request, "dms_customer_form.html", v={k: "" for k in CUSTOMER_FIELDS}, errors={},
                         nav="customers")

    @app.post("/customers/new", response_class=HTMLResponse)
    async def customer_new_post(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        form = await request.form()
        v = {k: str(form.get(k) or "").strip() for k in CUSTOMER_FIELDS}
        if not check_csrf(request, str(form.get("csrf_token") or "")):
            return rt.render(request, "dms_customer_form.html", status_code=403, v=v, nav="customers",
                             errors={"form": "页面已过期，请刷新后重试"})
        errors = validate_customer(v)
        if errors:
            return rt.render(request, "dms_customer_form.html", status_code=422, v=v, errors=errors,
                             nav="customers")
        if rt.write_fault("truncate", v["id_number"]) and len(v["address"]) > 2:  # write_faults: the column is short
            rt.log_write_fault("truncate", v["id_number"], "address", v["address"], v["address"][:2])
            v = {**v, "address": v["address"][:2]}
        no = state.insert_dms_customer(v)
        sess.flash = f"保存成功（客户编号 {no}）"
        await slow_save()
        return RedirectResponse("/customers?" + urlencode({"q": no}), status_code=303)

    # ---- contracts -----------------------------------------------------------------------
    @app.get("/contracts", response_class=HTMLResponse)
    async def contracts(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        return rt.render(request, "dms_contracts.html", **paged_search(request, state.search_contracts),
                         pager_id="contracts-pager", toast=take_flash(sess), nav="contracts")

    def validate_contract(v: dict, contract_no: str | None) -> tuple[dict, dict]:
        errors: dict[str, str] = {}
        row: dict = {}
        cust = state.get_dms_customer(v["customer_no"]) if v["customer_no"] else None
        if not v["customer_no"]:
            errors["customer_no"] = "请选择客户"
        elif cust is None:
            errors["customer_no"] = "客户不存在"
        row["customer_no"] = v["customer_no"]
        row["customer_name"] = cust["name"] if cust else ""
        if not v["model_code"]:
            errors["model_code"] = "请选择车型"
        elif v["model_code"] not in model_codes:
            errors["model_code"] = "车型代码无效"
        row["model_code"] = v["model_code"]
        if not v["color"]:
            errors["color"] = "请填写颜色"
        row["color"] = v["color"]
        vin = v["vin"].upper().replace(" ", "")
        v["vin"] = vin
        if vin:
            if len(vin) != 17 or any(c not in VIN_CHARS for c in vin):
                errors["vin"] = "VIN格式不正确（17位字母数字，不含I、O、Q）"
            elif not vin_is_valid(vin):
                errors["vin"] = "VIN校验位不正确"
            else:
                dup = state.contract_with("vin", vin, contract_no)
                if dup:
                    errors["vin"] = f"该VIN已存在于合同 {dup}"
        row["vin"] = vin
        price = _money(v["price"]) if v["price"] else None
        if not v["price"]:
            errors["price"] = "请填写车价"
        elif price is None or price <= 0:
            errors["price"] = "车价格式不正确"
        row["price"] = price
        deposit = _money(v["deposit"]) if v["deposit"] else 0.0
        if deposit is None or deposit < 0:
            errors["deposit"] = "定金格式不正确"
        elif price and deposit > price:
            errors["deposit"] = "定金不能大于车价"
        row["deposit"] = deposit
        dd = v["delivery_date"]
        if dd:
            try:
                dd = date.fromisoformat(dd).isoformat()
            except ValueError:
                errors["delivery_date"] = "日期格式不正确（YYYY-MM-DD）"
        row["delivery_date"] = dd
        oem_no = v["oem_order_no"].upper()
        v["oem_order_no"] = oem_no
        if oem_no:
            dup = state.contract_with("oem_order_no", oem_no, contract_no)
            if dup:
                errors["oem_order_no"] = f"该厂家订单号已存在于合同 {dup}"
        row["oem_order_no"] = oem_no
        if v["status"] not in CONTRACT_STATUSES:
            errors["status"] = "请选择合同状态"
        row["status"] = v["status"]
        return errors, row

    def stored_otherwise(row: dict) -> dict:
        """The ``write_faults`` of a contract save: what the DMS stores instead of what was typed."""
        key, row = row["oem_order_no"], dict(row)
        first = DMS_MODELS[0][0]
        if rt.write_fault("dropdown_first", key) and row["model_code"] != first:
            rt.log_write_fault("dropdown_first", key, "model_code", row["model_code"], first)
            row["model_code"] = first
        if rt.write_fault("round_amount", key) and row["price"] and round(row["price"], -3) != row["price"]:
            rt.log_write_fault("round_amount", key, "price", row["price"], round(row["price"], -3))
            row["price"] = round(row["price"], -3)
        if rt.write_fault("date_shift", key) and row["delivery_date"]:
            later = (date.fromisoformat(row["delivery_date"]) + timedelta(days=1)).isoformat()
            rt.log_write_fault("date_shift", key, "delivery_date", row["delivery_date"], later)
            row["delivery_date"] = later
        return row

    def contract_form(request: Request, v: dict, errors: dict, contract_no: str | None, status_code: int = 200):
        cust = state.get_dms_customer(v.get("customer_no") or "") if v.get("customer_no") else None
        display = f"{cust['name']}（{cust['customer_no']}）" if cust else ""
        return rt.render(request, "dms_contract_form.html", status_code=status_code, v=v, errors=errors,
                         contract_no=contract_no, models=DMS_MODELS, statuses=CONTRACT_STATUSES,
                         customer_display=display, nav="contracts", changed=bool(rt.behaviours.get("dms_form_changed")),
                         action=f"/contracts/{contract_no}/edit" if contract_no else "/contracts/new")

    async def contract_post(request: Request, contract_no: str | None):
        form = await request.form()
        v = {k: str(form.get(k) or "").strip() for k in CONTRACT_FIELDS}
        if not check_csrf(request, str(form.get("csrf_token") or "")):
            return contract_form(request, v, {"form": "页面已过期，请刷新后重试"}, contract_no, 403)
        errors, row = validate_contract(v, contract_no)
        if errors:
            return contract_form(request, v, errors, contract_no, 422)
        row = stored_otherwise(row)
        with state.lock:
            if rt.write_fault("lost_save", row["oem_order_no"]):  # answers saved, stores nothing
                no = contract_no or state.burn_contract_no()
                rt.log_write_fault("lost_save", row["oem_order_no"], "contract_no", no, "")
            else:
                no = state.save_contract(contract_no, row)
        request.state.session.flash = f"保存成功（合同号 {no}）"
        await slow_save()
        return RedirectResponse("/contracts?" + urlencode({"q": no}), status_code=303)

    @app.get("/contracts/new", response_class=HTMLResponse)
    async def contract_new(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        v = {k: "" for k in CONTRACT_FIELDS}
        v["status"] = CONTRACT_STATUSES[0]
        return contract_form(request, v, {}, None)

    @app.post("/contracts/new", response_class=HTMLResponse)
    async def contract_new_post(request: Request):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        return await contract_post(request, None)

    @app.get("/contracts/{contract_no}/edit", response_class=HTMLResponse)
    async def contract_edit(request: Request, contract_no: str):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        c = state.get_contract(contract_no)
        if c is None:
            raise HTTPException(404, detail=f"合同 {contract_no} 不存在。")
        v = {k: c[k] for k in CONTRACT_FIELDS}
        v["price"] = f"{c['price']:.2f}"
        v["deposit"] = f"{c['deposit']:.2f}"
        return contract_form(request, v, {}, contract_no)

    @app.post("/contracts/{contract_no}/edit", response_class=HTMLResponse)
    async def contract_edit_post(request: Request, contract_no: str):
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        if state.get_contract(contract_no) is None:
            raise HTTPException(404, detail=f"合同 {contract_no} 不存在。")
        return await contract_post(request, contract_no)

    add_deliveries(app, rt, state)  # 交车登记 / 交车记录 (sandbox/deliveries.py)
    add_prospects(app, rt, state)  # 潜客管理 / 跟进记录 (sandbox/prospects.py)

    # ---- admin ---------------------------------------------------------------------------
    app.include_router(common_admin_router(rt, state.reset_dms))

    @app.get("/__admin/customers")
    async def admin_customers(request: Request):
        admin_guard(rt, request)
        return state.all_dms_customers()

    @app.get("/__admin/contracts")
    async def admin_contracts(request: Request):
        admin_guard(rt, request)
        return state.all_contracts()

    @app.post("/__admin/contracts")
    async def admin_add_contract(request: Request):
        """Plant a contract as if a clerk had keyed it (no validation but the columns)."""
        admin_guard(rt, request)
        body = await request.json()
        row = {k: body.get(k, "") for k in CONTRACT_FIELDS}
        cust = state.get_dms_customer(row["customer_no"]) if row["customer_no"] else None
        if cust is None:
            return JSONResponse({"error": "customer_no must name an existing DMS customer"}, status_code=422)
        row["customer_name"] = cust["name"]
        row["price"] = float(row["price"] or 0)
        row["deposit"] = float(row["deposit"] or 0)
        row["status"] = row["status"] or CONTRACT_STATUSES[0]
        with state.lock:
            no = state.save_contract(None, row)
        return state.get_contract(no)

    @app.patch("/__admin/contracts/{contract_no}")
    async def admin_patch_contract(request: Request, contract_no: str):
        """Change a contract as if a clerk had edited it (bumps updated_at)."""
        admin_guard(rt, request)
        c = state.get_contract(contract_no)
        if c is None:
            return JSONResponse({"error": "no such contract"}, status_code=404)
        body = await request.json()
        unknown = sorted(set(body) - set(CONTRACT_FIELDS))
        if unknown:
            return JSONResponse({"error": f"unknown fields: {', '.join(unknown)}"}, status_code=422)
        row = {k: c[k] for k in CONTRACT_FIELDS} | body
        with state.lock:
            state.save_contract(contract_no, {**row, "customer_name": c["customer_name"]})
        return state.get_contract(contract_no)

    @app.post("/__admin/customers")
    async def admin_add_customer(request: Request):
        """Plant a customer as if a clerk had keyed it (no validation)."""
        admin_guard(rt, request)
        body = await request.json()
        no = state.insert_dms_customer({k: str(body.get(k, "")) for k in CUSTOMER_FIELDS})
        return state.get_dms_customer(no)

    @app.delete("/__admin/customers/{customer_no}")
    async def admin_delete_customer(request: Request, customer_no: str):
        """Remove a customer as a clerk merging duplicates does (its contracts stay)."""
        admin_guard(rt, request)
        if not state.execute("DELETE FROM dms_customers WHERE customer_no = ?", (customer_no,)):
            return JSONResponse({"error": "no such customer"}, status_code=404)
        return {"ok": True}

    @app.post("/__admin/unlock")
    async def admin_unlock(request: Request):
        admin_guard(rt, request)
        body = await request.json()
        if not rt.unlock(str(body.get("username", ""))):
            return JSONResponse({"error": "unknown account"}, status_code=404)
        return {"ok": True}

    return app

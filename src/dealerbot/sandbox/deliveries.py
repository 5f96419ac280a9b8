"""The DMS's deliveries (交车): the 交车登记 form a clerk fills on a contract, and the 交车记录 list
(the buyer as the DMS has them: the contract's customer). See docs/sandbox.md.

Registered on the DMS app with one line (:func:`add_deliveries`).
"""

from __future__ import annotations

import math
import re
from datetime import date
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .common import Runtime, admin_guard, check_csrf, paged_search, require_login
from .state import SandboxState

CONSENTS = ("已授权", "未授权")
DELIVERY_FORM = ("delivery_date", "invoice_no", "invoice_amount", "plate_no", "consent")
INVOICE_NO = re.compile(r"^(\d{8}|\d{20})$")  # a VAT invoice's 8 digits, or an all-electronic invoice's 20
PLATE = re.compile(r"^[\u4e00-\u9fa5][A-Z][A-HJ-NP-Z0-9]{5,6}$")  # 浙A12345, 浙AD12345 (new energy)


def money(raw: str) -> float | None:
    """``239,800.00`` -> 239800.0; None when it is no amount."""
    try:
        v = float(raw.replace(",", "").replace("，", "").strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def add_deliveries(app: FastAPI, rt: Runtime, state: SandboxState) -> None:
    """Serve 交车记录 (``/deliveries``), 交车登记 (``/contracts/{no}/delivery``) and their admin
    routes on the DMS ``app``."""

    def today() -> date:
        return state.reference.date()

    @app.get("/deliveries")
    async def deliveries(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        toast, sess.flash = sess.flash, None
        return rt.render(request, "dms_deliveries.html", **paged_search(request, state.search_deliveries),
                         pager_id="deliveries-pager", toast=toast, nav="deliveries")

    def contract_or_404(contract_no: str) -> dict:
        c = state.get_contract(contract_no)
        if c is None:
            raise HTTPException(404, detail=f"合同 {contract_no} 不存在。")
        return c

    def form(request: Request, c: dict, v: dict, errors: dict, status_code: int = 200) -> Response:
        return rt.render(request, "dms_delivery_form.html", status_code=status_code, c=c, v=v, errors=errors,
                         consents=CONSENTS, existing=state.delivery_of_contract(c["contract_no"]), nav="deliveries")

    def validate(c: dict, v: dict) -> tuple[dict, dict]:
        errors: dict[str, str] = {}
        done = state.delivery_of_contract(c["contract_no"])
        if done is not None:
            errors["form"] = f"该合同已登记交车（交车单号 {done['delivery_no']}），不能重复登记"
        elif c["status"] == "已取消":
            errors["form"] = "合同已取消，不能登记交车"
        elif not c["vin"]:
            errors["form"] = "合同尚未配车（无VIN），不能登记交车"
        row: dict = {"contract_no": c["contract_no"], "vin": c["vin"]}
        try:
            dd = date.fromisoformat(v["delivery_date"]) if v["delivery_date"] else None
        except ValueError:
            dd = None
            errors["delivery_date"] = "日期格式不正确（YYYY-MM-DD）"
        if not v["delivery_date"]:
            errors["delivery_date"] = "请填写交车日期"
        elif dd is not None and dd > today():
            errors["delivery_date"] = "交车日期不能晚于今天"
        row["delivery_date"] = dd.isoformat() if dd else ""
        if not v["invoice_no"]:
            errors["invoice_no"] = "请填写发票号码"
        elif not INVOICE_NO.match(v["invoice_no"]):
            errors["invoice_no"] = "发票号码应为8位或20位数字"
        row["invoice_no"] = v["invoice_no"]
        amount = money(v["invoice_amount"]) if v["invoice_amount"] else None
        if not v["invoice_amount"]:
            errors["invoice_amount"] = "请填写发票金额"
        elif amount is None or amount <= 0:
            errors["invoice_amount"] = "发票金额格式不正确"
        row["invoice_amount"] = amount
        plate = v["plate_no"].upper().replace(" ", "").replace("·", "")
        if plate and not PLATE.match(plate):
            errors["plate_no"] = "车牌号格式不正确（如 浙A12345）"
        row["plate_no"] = plate
        if v["consent"] not in CONSENTS:
            errors["consent"] = "请选择客户信息授权"
        row["consent"] = v["consent"]
        return errors, row

    @app.get("/contracts/{contract_no}/delivery")
    async def delivery_form(request: Request, contract_no: str) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        c = contract_or_404(contract_no)
        return form(request, c, {k: "" for k in DELIVERY_FORM}, {})

    @app.post("/contracts/{contract_no}/delivery")
    async def delivery_post(request: Request, contract_no: str) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        c = contract_or_404(contract_no)
        posted = await request.form()
        v = {k: str(posted.get(k) or "").strip() for k in DELIVERY_FORM}
        if not check_csrf(request, str(posted.get("csrf_token") or "")):
            return form(request, c, v, {"form": "页面已过期，请刷新后重试"}, 403)
        with state.lock:
            errors, row = validate(c, v)
            if errors:
                return form(request, c, v, errors, 422)
            no = state.insert_delivery(row)
            if c["status"] != "已交车":  # recording the delivery moves the contract on
                state.save_contract(contract_no, {"status": "已交车"})
        sess.flash = f"交车登记成功（交车单号 {no}）"
        return RedirectResponse("/deliveries?" + urlencode({"q": no}), status_code=303)

    # ---- admin ---------------------------------------------------------------------------
    @app.get("/__admin/deliveries")
    async def admin_deliveries(request: Request) -> list[dict]:
        """Every delivery as the list shows it (buyer from the contract's customer), with its
        ``seed_case`` (docs/sandbox.md; "" for one recorded since)."""
        admin_guard(rt, request)
        return state.all_deliveries()

    @app.post("/__admin/deliveries")
    async def admin_add_delivery(request: Request) -> Response:
        """Plant a delivery as if a clerk had recorded it (the contract must exist and have none;
        no other validation; the contract's status is left as it is)."""
        admin_guard(rt, request)
        body = await request.json()
        c = state.get_contract(str(body.get("contract_no", "")))
        if c is None:
            return JSONResponse({"error": "contract_no must name an existing contract"}, status_code=422)
        row = {"contract_no": c["contract_no"], "vin": str(body.get("vin") or c["vin"]),
               "delivery_date": str(body.get("delivery_date") or today().isoformat()),
               "invoice_no": str(body.get("invoice_no", "")), "invoice_amount": float(body.get("invoice_amount") or c["price"]),
               "plate_no": str(body.get("plate_no", "")), "consent": str(body.get("consent") or "已授权")}
        with state.lock:
            if state.delivery_of_contract(c["contract_no"]) is not None:
                return JSONResponse({"error": f"contract {c['contract_no']} has a delivery"}, status_code=409)
            no = state.insert_delivery(row)
        return JSONResponse(next(d for d in state.all_deliveries() if d["delivery_no"] == no))

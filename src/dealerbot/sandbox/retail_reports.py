"""The OEM portal's 交车上报 (a dealer reports each delivery: search the car by VIN, fill the form,
confirm) and 上报记录 (the dealer's reports, paged). See docs/sandbox.md.

Refused: a VIN the OEM does not know or allocated to another dealer, a VIN already reported, a
delivery date before the allocation (or after today), an invoice number already reported, a
buyer's ID number or mobile for a buyer who did not consent (but a new-energy car needs the ID
number whatever the consent). Accepted but flagged 逾期 (late): a report made more than
:data:`~dealerbot.sandbox.retail_data.REPORT_DAYS` days after the delivery. The portal's "today"
is the data's reference date.

Registered on the OEM app with one line (:func:`add_retail_reports`).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .common import Runtime, admin_guard, check_csrf, paged_search, require_login
from .data import id_is_valid, mobile_is_clean
from .deliveries import CONSENTS, INVOICE_NO, money
from .retail_data import REPORT_DAYS
from .state import OEM_ALLOCATION_COLS, SandboxState

REPORT_FORM = ("delivery_date", "invoice_no", "invoice_amount", "consent", "buyer_id_number", "buyer_mobile")
_OTHER_ID = re.compile(r"^[A-Z]{1,2}\d{7,9}$")


def add_retail_reports(app: FastAPI, rt: Runtime, state: SandboxState) -> None:
    """Serve 交车上报 (``/retail-reports/new``), 上报记录 (``/retail-reports``) and their admin
    routes on the OEM ``app``."""

    def today() -> date:
        return state.reference.date()

    def dealer_of(sess) -> str:  # noqa: ANN001
        return (sess.user or "").split("/", 1)[0]

    def vehicle(vin: str, dealer: str) -> tuple[dict | None, str]:
        """The car of ``vin`` if this dealer may report it, else the portal's words why not."""
        vin = vin.strip().upper()
        if not vin:
            return None, "请输入车架号(VIN)"
        car = state.get_allocation(vin)
        if car is None:
            return None, f"未找到该车辆（VIN {vin}），请核对车架号"
        if car["dealer_code"] != dealer:
            return None, f"该车辆未分配给本经销商（VIN {vin}），不能上报"
        done = state.report_of("vin", vin)
        if done is not None:
            return None, f"该车辆已上报（上报单号 {done['report_no']}，上报日期 {done['reported_on']}），不能重复上报"
        return car, ""

    def page(request: Request, vin: str, car: dict | None, vin_error: str, v: dict, errors: dict,
             status_code: int = 200) -> Response:
        return rt.render(request, "oem_report_form.html", status_code=status_code, vin=vin, car=car,
                         vin_error=vin_error, v=v, errors=errors, consents=CONSENTS, today=today().isoformat(),
                         report_days=REPORT_DAYS)

    def validate(car: dict, v: dict) -> tuple[dict, dict]:
        errors: dict[str, str] = {}
        row: dict = {"vin": car["vin"], "dealer_code": car["dealer_code"], "order_no": car["order_no"],
                     "model_code": car["model_code"]}
        try:
            dd = date.fromisoformat(v["delivery_date"]) if v["delivery_date"] else None
        except ValueError:
            dd = None
            errors["delivery_date"] = "日期格式不正确（YYYY-MM-DD）"
        if not v["delivery_date"]:
            errors["delivery_date"] = "请填写交车日期"
        elif dd is not None and dd > today():
            errors["delivery_date"] = "交车日期不能晚于今天"
        elif dd is not None and dd < date.fromisoformat(car["allocated_on"]):
            errors["delivery_date"] = f"交车日期早于配车日期（{car['allocated_on']}），请核对"
        row["delivery_date"] = dd.isoformat() if dd else ""
        if not v["invoice_no"]:
            errors["invoice_no"] = "请填写发票号码"
        elif not INVOICE_NO.match(v["invoice_no"]):
            errors["invoice_no"] = "发票号码应为8位或20位数字"
        else:
            used = state.report_of("invoice_no", v["invoice_no"])
            if used is not None:
                errors["invoice_no"] = f"该发票号码已上报（上报单号 {used['report_no']}）"
        row["invoice_no"] = v["invoice_no"]
        amount = money(v["invoice_amount"]) if v["invoice_amount"] else None
        if not v["invoice_amount"]:
            errors["invoice_amount"] = "请填写发票金额"
        elif amount is None or amount <= 0:
            errors["invoice_amount"] = "发票金额格式不正确"
        row["invoice_amount"] = amount
        consent = v["consent"]
        if consent not in CONSENTS:
            errors["consent"] = "请选择客户信息授权"
        row["consent"] = consent
        new_energy = car["model_code"].startswith("EV")
        idn = v["buyer_id_number"].upper()
        if consent == "未授权" and idn and not new_energy:
            errors["buyer_id_number"] = "客户未授权，请勿填写证件号码"
        elif not idn and (consent == "已授权" or new_energy):
            errors["buyer_id_number"] = ("新能源车型须填写购车人证件号码（补贴审核）" if new_energy and consent == "未授权"
                                         else "请填写购车人证件号码")
        elif idn and re.fullmatch(r"\d{17}[\dX]", idn):
            if not id_is_valid(idn):
                errors["buyer_id_number"] = "身份证号码校验位不正确"
        elif idn and not _OTHER_ID.match(idn):
            errors["buyer_id_number"] = "证件号码格式不正确"
        row["buyer_id_number"] = idn
        mobile = v["buyer_mobile"]
        if mobile and consent == "未授权":
            errors["buyer_mobile"] = "客户未授权，请勿填写手机号"
        elif mobile and not mobile_is_clean(mobile):
            errors["buyer_mobile"] = "手机号格式不正确（11位数字）"
        row["buyer_mobile"] = mobile
        return errors, row

    @app.get("/retail-reports/new")
    async def report_new(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        vin = (request.query_params.get("vin") or "").strip().upper()
        car, why = vehicle(vin, dealer_of(sess)) if vin else (None, "")
        return page(request, vin, car, why, {k: "" for k in REPORT_FORM}, {})

    @app.post("/retail-reports/new")
    async def report_post(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        posted = await request.form()
        vin = str(posted.get("vin") or "").strip().upper()
        v = {k: str(posted.get(k) or "").strip() for k in REPORT_FORM}
        if not check_csrf(request, str(posted.get("csrf_token") or "")):
            car, why = vehicle(vin, dealer_of(sess))
            return page(request, vin, car, why, v, {"form": "页面已过期，请刷新后重试"}, 403)
        with state.lock:
            car, why = vehicle(vin, dealer_of(sess))
            if car is None:
                return page(request, vin, None, why, v, {}, 422)
            errors, row = validate(car, v)
            if errors:
                return page(request, vin, car, "", v, errors, 422)
            delivered = date.fromisoformat(row["delivery_date"])
            deadline = delivered + timedelta(days=REPORT_DAYS)
            late = today() > deadline
            no = state.insert_report({**row, "reported_on": today().isoformat(), "deadline": deadline.isoformat(),
                                      "late": int(late)})
        msg = f"上报成功（上报单号 {no}）"
        if late:
            msg += f"；已超过交车后{REPORT_DAYS}日的上报期限（截止 {deadline.isoformat()}），记为逾期上报"
        sess.flash = msg
        return RedirectResponse("/retail-reports?" + urlencode({"q": no}), status_code=303)

    @app.get("/retail-reports")
    async def reports(request: Request) -> Response:
        sess = require_login(request)
        if isinstance(sess, Response):
            return sess
        toast, sess.flash = sess.flash, None
        dealer = dealer_of(sess)
        return rt.render(request, "oem_reports.html",
                         **paged_search(request, lambda q, n, o: state.search_reports(dealer, q, n, o)),
                         pager_id="reports-pager", toast=toast)

    # ---- admin ---------------------------------------------------------------------------
    @app.get("/__admin/reports")
    async def admin_reports(request: Request) -> list[dict]:
        """Every report (all dealers), ``late`` 0/1, with its ``seed_case`` ("" for one made since)."""
        admin_guard(rt, request)
        return state.all_reports()

    @app.get("/__admin/allocations")
    async def admin_allocations(request: Request) -> list[dict]:
        admin_guard(rt, request)
        return state.all_allocations()

    @app.post("/__admin/allocations")
    async def admin_allocate(request: Request) -> Response:
        """Allocate (or re-allocate) a VIN: ``vin``, ``dealer_code``, ``allocated_on`` required."""
        admin_guard(rt, request)
        body = await request.json()
        row = {k: str(body.get(k, "")) for k in OEM_ALLOCATION_COLS}
        try:
            row["allocated_on"] = date.fromisoformat(row["allocated_on"]).isoformat()
        except ValueError:
            return JSONResponse({"error": "allocated_on must be YYYY-MM-DD"}, status_code=422)
        if not row["vin"] or not row["dealer_code"]:
            return JSONResponse({"error": "vin and dealer_code are required"}, status_code=422)
        row["vin"] = row["vin"].upper()
        state.insert_allocation(row)
        return JSONResponse(state.get_allocation(row["vin"]))

    @app.get("/__admin/today")
    async def admin_today(request: Request) -> dict:
        """The portal's business date and its reporting deadline in days."""
        admin_guard(rt, request)
        return {"today": today().isoformat(), "report_days": REPORT_DAYS}

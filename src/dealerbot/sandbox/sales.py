"""The used-car platform's sale form (售出登记, ``/cars/{id}/sell/``): a car on sale is marked sold
with its price, buyer and date; the form of the sale-like task of ``bench/own_portal.py`` and
the example project's ``usedcars-sell`` bot.

Like the platform's other forms: labels not linked to their inputs, errors in ``.errorlist``.
The page shows the form, and above it the sale recorded (``dl.sale``, a ``<dd data-field>``
per field) once the car is sold; a saved sale redirects to the car's page (车辆 … 已售出。).
Counters: ``sales`` (submits of the form).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

SALE_FIELDS = (("sale_price", "成交价（元）：", "text"), ("buyer_name", "买方姓名：", "text"),
               ("buyer_mobile", "买方手机：", "text"), ("sold_on", "成交日期：", "date"))


def _form(car: Any, values: dict[str, str], errors: dict[str, str]) -> str:
    def row(name: str, label: str, kind: str) -> str:
        err = f'<ul class="errorlist"><li>{html.escape(errors[name])}</li></ul>' if name in errors else ""
        return (f"<div class='form-row field-{name}'>{err}<label>{label}</label>"
                f"<input type='{kind}' name='{name}' value='{html.escape(values.get(name, ''))}'></div>")

    top = f'<ul class="errorlist nonfield"><li>{html.escape(errors[""])}</li></ul>' if "" in errors else ""
    sold = ""
    if car.status == "已售":
        sold = "<dl class='sale'>" + "".join(
            f"<dt>{label.rstrip('：')}</dt><dd data-field='{name}'>{html.escape(str(getattr(car, name)))}</dd>"
            for name, label, _ in SALE_FIELDS) + "</dl>"
    return (f"<h1>售出登记</h1><p>车架号：<b class='sale-vin'>{car.vin}</b> 状态：{car.status}</p>{sold}{top}"
            f"<form method='post' action='/cars/{car.id}/sell/' id='sale-form'>"
            + "".join(row(*f) for f in SALE_FIELDS)
            + "<button type='submit'>确认售出</button></form>")


def add_sales(app: FastAPI, st: Any, car_page: Callable[[Request, int], Any], page: Callable[..., Response]) -> None:
    """Serve the sale form on ``app``: ``st`` is the platform's state, ``car_page(request, id)``
    its session-and-car guard, ``page(title, body)`` its page frame."""
    st.counters.setdefault("sales", 0)

    @app.get("/cars/{car_id}/sell/", response_model=None)
    async def sale_page(request: Request, car_id: int) -> Response:
        found = car_page(request, car_id)
        if isinstance(found, Response):
            return found
        _, car = found
        return page("售出登记", _form(car, {}, {}))

    @app.post("/cars/{car_id}/sell/", response_model=None)
    async def sell(request: Request, car_id: int) -> Response:
        found = car_page(request, car_id)
        if isinstance(found, Response):
            return found
        sid, car = found
        st.counters["sales"] = st.counters.get("sales", 0) + 1
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        errors: dict[str, str] = {}
        if car.status == "已售":
            errors[""] = "该车辆已售出，不能重复登记。"
        try:
            price = f"{float(form.get('sale_price', '').replace(',', '')):.2f}"
        except ValueError:
            errors["sale_price"] = "成交价须为数字。"
        if not form.get("buyer_name"):
            errors["buyer_name"] = "买方姓名为必填项。"
        mobile = form.get("buyer_mobile", "")
        if not (len(mobile) == 11 and mobile.isdigit() and mobile.startswith("1")):
            errors["buyer_mobile"] = "请输入11位手机号。"
        try:
            sold_on = date.fromisoformat(form.get("sold_on", "")).isoformat()
        except ValueError:
            errors["sold_on"] = "请输入成交日期。"
        if errors:
            return page("售出登记", _form(car, form, errors))
        with st.lock:
            car.status, car.sale_price, car.buyer_name, car.buyer_mobile, car.sold_on = (
                "已售", price, form["buyer_name"], mobile, sold_on)
        st.messages[sid] = f"车辆 {car.vin} 已售出。"
        return RedirectResponse(f"/cars/{car.id}/", status_code=302)

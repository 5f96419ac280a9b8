"""The used-car platform's sale form (售出登记, sandbox/sales.py), over plain HTTP: a bad sale is
refused with its field's error and changes nothing; a good one marks the car sold with what was
given and is shown on its page; a second sale of the same car is refused."""

from __future__ import annotations

import httpx

from dealerbot.sandbox.usedcars import DEMO_PASSWORD, DEMO_USERNAME


def test_a_sale_is_recorded_once_with_what_was_given(sandbox):
    admin = httpx.Client(base_url=sandbox.usedcars_url, headers={"X-Admin-Token": sandbox.admin_token}, timeout=10)
    web = httpx.Client(base_url=sandbox.usedcars_url, timeout=10)
    try:
        admin.post("/__admin/reset").raise_for_status()
        assert web.post("/accounts/login/", data={"username": DEMO_USERNAME, "password": DEMO_PASSWORD}).status_code == 302
        car = next(c for c in admin.get("/__admin/cars").json()["cars"] if c["status"] == "在售")
        sale = {"sale_price": "92,000", "buyer_name": "司马光", "buyer_mobile": "1371234567", "sold_on": "2026-11-20"}

        refused = web.post(f"/cars/{car['id']}/sell/", data=sale)
        assert refused.status_code == 200 and "请输入11位手机号。" in refused.text
        assert next(c for c in admin.get("/__admin/cars").json()["cars"] if c["id"] == car["id"]) == car

        saved = web.post(f"/cars/{car['id']}/sell/", data={**sale, "buyer_mobile": "13712345678"})
        assert saved.status_code == 302 and saved.headers["location"] == f"/cars/{car['id']}/"
        held = next(c for c in admin.get("/__admin/cars").json()["cars"] if c["id"] == car["id"])
        assert (held["status"], held["sale_price"], held["buyer_name"], held["buyer_mobile"], held["sold_on"]) == (
            "已售", "92000.00", "司马光", "13712345678", "2026-11-20")
        page = web.get(f"/cars/{car['id']}/sell/").text
        assert "<dd data-field='sale_price'>92000.00</dd>" in page and "<dd data-field='sold_on'>2026-11-20</dd>" in page

        again = web.post(f"/cars/{car['id']}/sell/", data={**sale, "buyer_mobile": "13712345678", "buyer_name": "欧阳修"})
        assert again.status_code == 200 and "该车辆已售出，不能重复登记。" in again.text
        assert next(c for c in admin.get("/__admin/cars").json()["cars"] if c["id"] == car["id"])["buyer_name"] == "司马光"
    finally:
        admin.post("/__admin/reset").raise_for_status()
        admin.close()
        web.close()

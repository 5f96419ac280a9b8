"""HTTP tests of the sandbox OEM portal against the admin ground truth."""

from __future__ import annotations

import io
import re
import time

import httpx
import pytest
from openpyxl import load_workbook

from .conftest import OEM_LOGIN, csrf_of, login

FIELD_RE = re.compile(r'data-field="(\w+)">([^<]*)<')


def by_updated(rows, reverse=True):
    return sorted(rows, key=lambda o: (o["updated_at"], o["order_no"]), reverse=reverse)


def all_pages(client, **params):
    out, page = [], 1
    while True:
        j = client.get("/api/orders", params={**params, "page": page}).json()
        out.extend(j["items"])
        if page >= j["pages"]:
            return j, out
        page += 1


def test_login_page_and_redirect(sandbox):
    c = httpx.Client(base_url=sandbox.oem_url)
    r = c.get("/orders")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    r = c.get("/login")
    for needle in ('id="login-form"', 'id="dealer_code"', 'id="username"', 'id="password"', 'id="login-submit"',
                   "经销商代码", "用户名", "密码"):
        assert needle in r.text


def test_login_success_goes_to_next(sandbox):
    c = httpx.Client(base_url=sandbox.oem_url)
    r = c.get("/login?next=/customers")
    r = c.post("/login", data={**OEM_LOGIN, "csrf_token": csrf_of(r.text), "next": "/customers"})
    assert r.status_code == 303 and r.headers["location"] == "/customers"
    r = c.get("/customers")
    assert r.status_code == 200 and 'id="user-menu"' in r.text and 'id="logout"' in r.text
    r = c.get("/logout")
    assert r.status_code == 303
    assert c.get("/orders").status_code == 303


def test_login_wrong_password_shows_remaining(sandbox, reset):
    c = httpx.Client(base_url=sandbox.oem_url)
    r = c.get("/login")
    r = c.post("/login", data={**OEM_LOGIN, "password": "nope", "csrf_token": csrf_of(r.text)})
    assert r.status_code == 200
    assert 'id="login-error"' in r.text and "用户名或密码错误" in r.text and "4 次" in r.text


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_login_csrf_missing_or_wrong_is_403(sandbox, token):
    c = httpx.Client(base_url=sandbox.oem_url)
    c.get("/login")
    data = dict(OEM_LOGIN)
    if token:
        data["csrf_token"] = token
    r = c.post("/login", data=data)
    assert r.status_code == 403 and "页面已过期，请刷新后重试" in r.text


def test_lockout_after_five_wrong_passwords_and_unlock(sandbox, oem_admin, reset):
    c = httpx.Client(base_url=sandbox.oem_url)
    csrf = csrf_of(c.get("/login").text)
    for i in range(5):
        r = c.post("/login", data={**OEM_LOGIN, "password": f"wrong{i}", "csrf_token": csrf})
        assert r.status_code == 200
    assert "账号已锁定" in r.text
    r = c.post("/login", data={**OEM_LOGIN, "csrf_token": csrf})
    assert r.status_code == 200 and "账号已锁定" in r.text
    assert oem_admin.post("/__admin/unlock", json={"dealer_code": "D31001", "username": "dealer_admin"}).json()["ok"]
    r = c.post("/login", data={**OEM_LOGIN, "csrf_token": csrf})
    assert r.status_code == 303
    counters = oem_admin.get("/__admin/counters").json()
    assert counters["failed_logins"] >= 6 and counters["logins"] >= 1


def test_notice_modal_until_acknowledged(sandbox):
    c = login(sandbox.oem_url, OEM_LOGIN)
    page = c.get("/orders").text
    assert 'id="notice-modal"' in page and 'id="notice-overlay"' in page and "系统公告" in page and "我知道了" in page
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert c.post("/notice/ack").status_code == 403
    assert c.post("/notice/ack", headers={"X-CSRF-Token": "bad"}).status_code == 403
    assert c.post("/notice/ack", headers={"X-CSRF-Token": meta}).status_code == 200
    assert 'id="notice-modal"' not in c.get("/orders").text
    assert 'id="notice-modal"' not in c.get("/customers").text
    # a new session sees it again
    assert 'id="notice-modal"' in login(sandbox.oem_url, OEM_LOGIN).get("/customers").text


def test_orders_page_skeleton(oem):
    html = oem.get("/orders").text
    for i in ("order-filter", "filter-date-from", "filter-date-to", "filter-status", "filter-submit", "orders-table",
              "orders-loading", "orders-pager", "pager-prev", "pager-next", "pager-info", "export-xlsx"):
        assert f'id="{i}"' in html, i
    assert "/static/orders.js" in html
    assert oem.get("/static/orders.js").status_code == 200


def test_paging_matches_ground_truth(oem, orders_truth):
    j, items = all_pages(oem)
    assert j["total"] == len(orders_truth) == 120
    assert j["pages"] == 6 and j["page_size"] == 20
    assert [o["order_no"] for o in items] == [o["order_no"] for o in by_updated(orders_truth)]
    assert set(items[0]) == {"order_no", "customer_name", "model_code", "color", "status",
                             "planned_delivery_date", "updated_at"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", items[0]["updated_at"])
    assert oem.get("/api/orders", params={"page_size": 100}).json()["page_size"] == 20
    assert oem.get("/api/orders", params={"page": 99}).json()["items"] == []
    assert oem.get("/api/orders", params={"page": "x"}).status_code == 400


def test_sort_both_directions(oem, orders_truth):
    _, asc = all_pages(oem, sort="updated_at", dir="asc")
    _, desc = all_pages(oem, sort="updated_at", dir="desc")
    assert [o["order_no"] for o in asc] == [o["order_no"] for o in by_updated(orders_truth, reverse=False)]
    assert [o["order_no"] for o in desc] == list(reversed([o["order_no"] for o in asc]))


def test_date_and_status_filters(oem, orders_truth):
    days = sorted({o["updated_at"][:10] for o in orders_truth})
    d1, d2 = days[len(days) // 4], days[len(days) // 2]
    for status in ("", "已交车", "已下单"):
        expect = [o for o in orders_truth if d1 <= o["updated_at"][:10] <= d2 and (not status or o["status"] == status)]
        j, items = all_pages(oem, date_from=d1, date_to=d2, status=status)
        assert j["total"] == len(expect) > 0
        assert [o["order_no"] for o in items] == [o["order_no"] for o in by_updated(expect)]
    j = oem.get("/api/orders", params={"date_from": d2, "date_to": d2}).json()
    assert j["total"] == sum(o["updated_at"][:10] == d2 for o in orders_truth)
    assert oem.get("/api/orders", params={"status": "未知"}).status_code == 400
    assert oem.get("/api/orders", params={"date_from": "2026/01/01"}).status_code == 400


def test_updated_since_and_admin_changes(oem, oem_admin, orders_truth, reset):
    latest = max(o["updated_at"] for o in orders_truth)
    assert oem.get("/api/orders", params={"updated_since": latest}).json()["total"] == 0
    target = orders_truth[5]["order_no"]
    changed = oem_admin.patch(f"/__admin/orders/{target}", json={"status": "已交车"}).json()
    assert changed["status"] == "已交车" and changed["updated_at"] > latest
    new = oem_admin.post("/__admin/orders", json={"customer_name": "测试客户", "model_code": "GX7-25T-LUX",
                                                  "price": 239800, "status": "已下单"}).json()
    assert new["order_no"] and new["updated_at"] > changed["updated_at"]
    j = oem.get("/api/orders", params={"updated_since": latest, "dir": "asc"}).json()
    assert [o["order_no"] for o in j["items"]] == [target, new["order_no"]]
    assert oem_admin.patch("/__admin/orders/XS0", json={"status": "在途"}).status_code == 404
    assert oem_admin.patch(f"/__admin/orders/{target}", json={"status": "乱写"}).status_code == 422


def test_detail_fields_equal_ground_truth(oem, orders_truth):
    samples = [o for o in orders_truth if not o["vin"]][:2] + [o for o in orders_truth if o["vin"]][:3]
    assert len(samples) == 5
    for o in samples:
        r = oem.get(f"/orders/{o['order_no']}")
        assert r.status_code == 200 and 'id="order-detail"' in r.text
        fields = dict(FIELD_RE.findall(r.text))
        expect = {k: o[k] for k in ("order_no", "customer_name", "mobile", "id_type", "id_number", "model_code",
                                    "color", "vin", "status", "planned_delivery_date")}
        expect["price"] = f"{o['price']:,.2f}"
        expect["updated_at"] = o["updated_at"].replace("T", " ")
        got = {k: v for k, v in fields.items() if k in expect}
        import html
        assert {k: html.unescape(v) for k, v in got.items()} == expect
    r = oem.get("/orders/XS9999999999")
    assert r.status_code == 404 and "不存在" in r.text


def test_xlsx_export_equals_filter(oem, orders_truth):
    r = oem.get("/orders/export.xlsx", params={"status": "在途", "dir": "asc"})
    assert r.status_code == 200 and r.content[:2] == b"PK"
    ws = load_workbook(io.BytesIO(r.content)).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0] == "订单号" and "VIN" in rows[0] and len(rows[0]) == 12
    expect = by_updated([o for o in orders_truth if o["status"] == "在途"], reverse=False)
    assert [row[0] for row in rows[1:]] == [o["order_no"] for o in expect]
    first = dict(zip(rows[0], rows[1]))
    assert first["价格"] == expect[0]["price"] and first["手机号"] == expect[0]["mobile"]
    assert first["更新时间"] == expect[0]["updated_at"].replace("T", " ")


def test_customers_paging_consent_and_search(oem, oem_admin):
    truth = oem_admin.get("/__admin/customers").json()
    pages = -(-len(truth) // 20)
    html = oem.get("/customers").text
    assert f"第 1/{pages} 页，共 {len(truth)} 条" in html and 'id="pager-next"' in html
    seen = []
    for p in range(1, pages + 1):
        html = oem.get("/customers", params={"page": p}).text
        rows = re.findall(r'<tr class="customer-row".*?</tr>', html, re.S)
        assert len(rows) == (20 if p < pages else len(truth) - 20 * (pages - 1))
        for row in rows:
            import html as h
            seen.append({k: h.unescape(v) for k, v in FIELD_RE.findall(row)})
    assert 'id="pager-next"' not in html
    assert [s["customer_no"] for s in seen] == [c["customer_no"] for c in truth]
    assert [s["consent"] for s in seen] == [c["consent"] for c in truth]
    assert {s["consent"] for s in seen} == {"已授权", "未授权"}
    assert [s["city"] for s in seen] == [c["city"] for c in truth]
    one = truth[7]
    html = oem.get("/customers", params={"q": one["name"]}).text
    assert one["customer_no"] in html and "customer-search" in html


def test_session_expiry_pages_and_api(sandbox, oem_admin):
    c = login(sandbox.oem_url, OEM_LOGIN)
    assert c.get("/api/orders").status_code == 200
    oem_admin.post("/__admin/expire-sessions")
    r = c.get("/orders/XS2026000001")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?expired=1&next=%2Forders%2FXS2026000001"
    assert "会话已过期，请重新登录" in c.get(r.headers["location"]).text
    c2 = login(sandbox.oem_url, OEM_LOGIN)
    oem_admin.post("/__admin/expire-sessions")
    r = c2.get("/api/orders")
    assert r.status_code == 401 and r.json() == {"error": "session_expired"}


def test_session_idle_timeout(sandbox, oem_admin, reset):
    assert oem_admin.put("/__admin/behaviours", json={"session_idle_seconds": 0.5}).status_code == 200
    c = login(sandbox.oem_url, OEM_LOGIN)
    assert c.get("/api/orders").status_code == 200
    time.sleep(0.7)
    assert c.get("/api/orders").status_code == 401


def test_admin_token_required(sandbox):
    c = httpx.Client(base_url=sandbox.oem_url)
    assert c.get("/__admin/health").json()["ok"] is True
    for method, path in (("GET", "/__admin/orders"), ("GET", "/__admin/counters"), ("POST", "/__admin/reset"),
                         ("POST", "/__admin/expire-sessions"), ("GET", "/__admin/customers")):
        assert c.request(method, path).status_code == 401
        assert c.request(method, path, headers={"X-Admin-Token": "wrong-token"}).status_code == 401
    d = httpx.Client(base_url=sandbox.dms_url)
    assert d.get("/__admin/contracts").status_code == 401

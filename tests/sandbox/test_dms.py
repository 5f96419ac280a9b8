"""HTTP tests of the sandbox DMS."""

from __future__ import annotations

import html
import re

import httpx

from dealerbot.sandbox.data import vin_check_digit

from .conftest import DMS_LOGIN, csrf_of, login

FIELD_RE = re.compile(r'data-field="(\w+)">([^<]*)<')


def rows(page: str, cls: str) -> list[dict]:
    return [{k: html.unescape(v) for k, v in FIELD_RE.findall(r)}
            for r in re.findall(rf'<tr class="{cls}".*?</tr>', page, re.S)]


def errors(page: str) -> dict:
    return dict(re.findall(r'class="field-error" data-for="(\w+)">([^<]*)<', page))


def make_vin(serial: int) -> str:
    body = f"LGXGX7A10TH{serial:06d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def contract_form(dms, path="/contracts/new") -> str:
    r = dms.get(path)
    assert r.status_code == 200
    return r.text


def test_login_and_nav(sandbox):
    c = httpx.Client(base_url=sandbox.dms_url)
    r = c.get("/contracts")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    page = c.get("/login").text
    assert "登 录" in page and 'id="login-form"' in page
    r = c.post("/login", data={**DMS_LOGIN, "password": "x", "csrf_token": csrf_of(page)})
    assert r.status_code == 200 and "用户名或密码错误" in r.text and 'id="login-error"' in r.text
    r = c.post("/login", data={**DMS_LOGIN, "csrf_token": "bad"})
    assert r.status_code == 403
    r = c.post("/login", data={**DMS_LOGIN, "csrf_token": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"] == "/contracts"
    page = c.get("/contracts").text
    assert 'id="dms-nav"' in page and 'href="/customers"' in page and 'id="logout"' in page


def test_customers_paging_and_search(dms, dms_admin):
    truth = dms_admin.get("/__admin/customers").json()
    pages = -(-len(truth) // 20)
    page = dms.get("/customers").text
    assert f"第 1/{pages} 页，共 {len(truth)} 条" in page and 'id="pager-next"' in page
    last = dms.get("/customers", params={"page": pages}).text
    assert 'id="pager-next"' not in last and len(rows(last, "customer-row")) == len(truth) - 20 * (pages - 1)
    one = truth[3]
    found = rows(dms.get("/customers", params={"q": one["id_number"]}).text, "customer-row")
    assert found[0]["customer_no"] == one["customer_no"] and found[0]["address"] == one["address"]
    assert any(c["address"].startswith("@") for c in truth) and any(c["address"].startswith("-") for c in truth)


def test_new_customer_validation_and_save(dms, dms_admin, reset):
    page = dms.get("/customers/new").text
    csrf = csrf_of(page)
    r = dms.post("/customers/new", data={"csrf_token": csrf, "name": "", "mobile": "138 1234 5678",
                                          "id_number": "110101199003070001", "address": ""})
    assert r.status_code == 422
    errs = errors(r.text)
    assert set(errs) == {"name", "mobile", "id_number", "address"}
    r = dms.post("/customers/new", data={"csrf_token": csrf, "name": "周新", "mobile": "13812345678",
                                          "id_number": "11010119900307803X", "address": "杭州市西湖区文三路1号"})
    assert r.status_code == 303
    assert "保存成功" in dms.get(r.headers["location"]).text
    assert any(c["name"] == "周新" for c in dms_admin.get("/__admin/customers").json())


def test_contract_create_duplicate_and_status_update(dms, dms_admin, reset):
    customer = dms_admin.get("/__admin/customers").json()[0]
    existing = next(c for c in dms_admin.get("/__admin/contracts").json() if c["vin"])
    page = contract_form(dms)
    for i in ("contract-form", "customer-pick", "customer-dialog", "customer-dialog-q", "customer-dialog-search",
              "customer_no", "customer-display", "model_code", "color", "vin", "price", "deposit",
              "delivery_date", "oem_order_no", "status", "save", "confirm-dialog", "confirm-ok", "confirm-cancel"):
        assert f'id="{i}"' in page, i
    assert 'value="DMS-GX7L"' in page and "确认保存?" in page
    form = {"csrf_token": csrf_of(page), "customer_no": customer["customer_no"], "model_code": "DMS-GX7L",
            "color": "珍珠白", "vin": make_vin(990001), "price": "239800", "deposit": "10000",
            "delivery_date": "2026-12-20", "oem_order_no": "XS2026990001", "status": "待交车"}
    # CSRF missing
    r = dms.post("/contracts/new", data={k: v for k, v in form.items() if k != "csrf_token"})
    assert r.status_code == 403
    # validation errors next to fields
    r = dms.post("/contracts/new", data={**form, "customer_no": "", "price": "abc", "vin": "LGXGX7A10TH99000O"})
    assert r.status_code == 422
    errs = errors(r.text)
    assert {"customer_no", "price", "vin"} <= set(errs)
    bad_check = form["vin"][:8] + ("1" if form["vin"][8] != "1" else "2") + form["vin"][9:]
    assert "校验位" in errors(dms.post("/contracts/new", data={**form, "vin": bad_check}).text)["vin"]
    # duplicate VIN and OEM order number
    r = dms.post("/contracts/new", data={**form, "vin": existing["vin"], "oem_order_no": existing["oem_order_no"]})
    errs = errors(r.text)
    assert errs["vin"] == f"该VIN已存在于合同 {existing['contract_no']}"
    assert existing["contract_no"] in errs["oem_order_no"]
    # success
    r = dms.post("/contracts/new", data=form)
    assert r.status_code == 303
    page = dms.get(r.headers["location"]).text
    assert 'id="toast"' in page and "toast-success" in page and "保存成功" in page
    created = rows(page, "contract-row")
    assert len(created) == 1
    c = created[0]
    assert c["customer_no"] == customer["customer_no"] and c["customer_name"] == customer["name"]
    assert c["vin"] == form["vin"] and c["oem_order_no"] == "XS2026990001" and c["status"] == "待交车"
    assert c["price"] == "239,800.00" and re.fullmatch(r"HT\d{6}\d{4}", c["contract_no"])
    # the toast shows once
    assert 'id="toast"' not in dms.get("/contracts").text
    # searchable by VIN and OEM order number
    for q in (form["vin"], "XS2026990001", c["contract_no"]):
        assert [x["contract_no"] for x in rows(dms.get("/contracts", params={"q": q}).text, "contract-row")] == \
            [c["contract_no"]]
    # same VIN again is rejected
    r = dms.post("/contracts/new", data={**form, "oem_order_no": ""})
    assert errors(r.text)["vin"] == f"该VIN已存在于合同 {c['contract_no']}"
    # status update via the edit form (own VIN is not a duplicate)
    edit = contract_form(dms, f"/contracts/{c['contract_no']}/edit")
    assert form["vin"] in edit
    r = dms.post(f"/contracts/{c['contract_no']}/edit", data={**form, "csrf_token": csrf_of(edit), "status": "已交车"})
    assert r.status_code == 303
    truth = {x["contract_no"]: x for x in dms_admin.get("/__admin/contracts").json()}
    assert truth[c["contract_no"]]["status"] == "已交车"
    assert dms.get("/contracts/HT000000000/edit").status_code == 404


def test_api_models_and_customers(dms):
    models = dms.get("/api/models").json()
    assert {"code", "name"} == set(models[0]) and all(m["code"].startswith("DMS-") for m in models)
    found = dms.get("/api/customers", params={"q": "KH00000"}).json()
    assert found and all(f["customer_no"].startswith("KH00000") for f in found)


def test_dms_session_expiry(sandbox, dms_admin):
    c = login(sandbox.dms_url, DMS_LOGIN)
    dms_admin.post("/__admin/expire-sessions")
    r = c.get("/contracts")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?expired=1")


def test_write_faults_store_otherwise_than_typed_and_say_so_only_to_the_admin(dms, dms_admin, reset):
    """Each write fault: the save is answered 保存成功 as usual, the stored record differs as its kind
    says, and /__admin/write-faults is the ground truth of which record got which."""
    r = dms_admin.put("/__admin/behaviours", json={"write_faults": {
        "dropdown_first": {"records": ["XS2026990011"]}, "round_amount": {"records": ["XS2026990012"]},
        "date_shift": {"records": ["XS2026990013"]}, "lost_save": {"records": ["XS2026990014"]},
        "truncate": {"records": ["11010119900307803X"]}}})
    assert r.status_code == 200, r.text
    assert dms_admin.put("/__admin/behaviours", json={"write_faults": {"melt": {"rate": 1}}}).status_code == 422
    customer = dms_admin.get("/__admin/customers").json()[0]
    saved = {}
    for i, order in enumerate(("XS2026990011", "XS2026990012", "XS2026990013", "XS2026990014", "XS2026990015")):
        form = {"csrf_token": csrf_of(contract_form(dms)), "customer_no": customer["customer_no"], "model_code": "DMS-GX7L",
                "color": "珍珠白", "vin": make_vin(990011 + i), "price": "239850", "deposit": "10000",
                "delivery_date": "2026-12-20", "oem_order_no": order, "status": "待交车"}
        r = dms.post("/contracts/new", data=form)
        assert r.status_code == 303 and "保存成功" in dms.get(r.headers["location"]).text
        saved[order] = r.headers["location"].rsplit("=", 1)[1]
    stored = {c["oem_order_no"]: c for c in dms_admin.get("/__admin/contracts").json()}
    assert stored["XS2026990011"]["model_code"] != "DMS-GX7L"
    assert stored["XS2026990012"]["price"] == 240000
    assert stored["XS2026990013"]["delivery_date"] == "2026-12-21"
    assert "XS2026990014" not in stored and saved["XS2026990014"].startswith("HT")
    assert saved["XS2026990015"] != saved["XS2026990014"]  # a lost save used its number up
    clean = stored["XS2026990015"]
    assert (clean["model_code"], clean["price"], clean["delivery_date"]) == ("DMS-GX7L", 239850, "2026-12-20")
    csrf = csrf_of(dms.get("/customers/new").text)
    address = "浙江省杭州市西湖区文三路一百二十三号三单元"
    r = dms.post("/customers/new", data={"csrf_token": csrf, "name": "周新", "mobile": "13812345678",
                                          "id_number": "11010119900307803X", "address": address})
    assert r.status_code == 303 and "保存成功" in dms.get(r.headers["location"]).text
    [zhou] = [c for c in dms_admin.get("/__admin/customers").json() if c["id_number"] == "11010119900307803X"]
    assert zhou["address"] == address[:2]
    truth = dms_admin.get("/__admin/write-faults").json()
    assert [(f["kind"], f["record"], f["field"]) for f in truth] == [
        ("dropdown_first", "XS2026990011", "model_code"), ("round_amount", "XS2026990012", "price"),
        ("date_shift", "XS2026990013", "delivery_date"), ("lost_save", "XS2026990014", "contract_no"),
        ("truncate", "11010119900307803X", "address")]


def test_write_fault_rates_hit_the_same_records_whatever_the_order():
    from dealerbot.sandbox.config import SandboxConfig, parse_write_fault
    from dealerbot.sandbox.server import SandboxServer

    assert parse_write_fault("date_shift=0.25")[1].rate == 0.25
    assert parse_write_fault("lost_save=XS1,XS2")[1].records == ["XS1", "XS2"]
    for bad in ("melt=0.1", "date_shift", "date_shift="):
        try:
            parse_write_fault(bad)
        except ValueError as exc:
            assert "KIND=RATE" in str(exc)
        else:
            raise AssertionError(bad)
    cfg = SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=10, fault_seed=5,
                        write_faults={"date_shift": {"rate": 0.3}})
    with SandboxServer(cfg) as sb:
        rt = sb.dms_app.state.rt
        keys = [f"XS2026{n:06d}" for n in range(400)]
        hits = [k for k in keys if rt.write_fault("date_shift", k)]
        assert hits == [k for k in reversed(keys) if rt.write_fault("date_shift", k)][::-1]
        assert 0.2 < len(hits) / len(keys) < 0.4

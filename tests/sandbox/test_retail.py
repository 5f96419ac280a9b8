"""HTTP tests of the delivery-report screens: the DMS's 交车登记 / 交车记录 and the OEM portal's
交车上报 / 上报记录, checked against the admin ground truth."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta

from .conftest import csrf_of

FIELD_RE = re.compile(r'data-field="(\w+)">(.*?)</td>', re.S)
TAG_RE = re.compile(r"<[^>]+>")


def rows(page: str, cls: str) -> list[dict]:
    return [{k: html.unescape(TAG_RE.sub("", v)).strip() for k, v in FIELD_RE.findall(r)}
            for r in re.findall(rf'<tr class="{cls}[^"]*".*?</tr>', page, re.S)]


def errors(page: str) -> dict:
    return {k: html.unescape(v) for k, v in re.findall(r'class="[^"]*field-error[^"]*" data-for="(\w+)"[^>]*>([^<]*)<', page)}


def toast(page: str) -> str:
    m = re.search(r'id="toast"[^>]*>([^<]*)<', page)
    return html.unescape(m.group(1)) if m else ""


def by_case(deliveries: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in deliveries:
        out.setdefault(d["seed_case"], d)
    return out


def read_all(client, path: str, cls: str) -> list[dict]:
    out, page = [], 1
    while True:
        text = client.get(path, params={"page": page}).text
        out += rows(text, cls)
        if 'id="pager-next"' not in text:
            return out
        page += 1


def test_dms_delivery_list_is_the_ground_truth_with_the_buyer_of_the_contract(dms, dms_admin):
    truth = dms_admin.get("/__admin/deliveries").json()
    customers = {c["customer_no"]: c for c in dms_admin.get("/__admin/customers").json()}
    contracts = {c["contract_no"]: c for c in dms_admin.get("/__admin/contracts").json()}
    cases = {d["seed_case"] for d in truth}
    assert {"no_consent_ev", "other_dealer", "before_allocation", "reported", "near_deadline", "deadline_today",
            "past_deadline", "no_consent", "conflict"} <= cases
    shown = {r["delivery_no"]: r for r in read_all(dms, "/deliveries", "delivery-row")}
    assert set(shown) == {d["delivery_no"] for d in truth}
    for d in truth:
        row, buyer = shown[d["delivery_no"]], customers[contracts[d["contract_no"]]["customer_no"]]
        assert (row["buyer_name"], row["buyer_id_number"], row["buyer_mobile"]) == (buyer["name"], buyer["id_number"], buyer["mobile"])
        assert (row["vin"], row["delivery_date"], row["invoice_no"], row["plate_no"], row["consent"]) == (
            d["vin"], d["delivery_date"], d["invoice_no"], d["plate_no"], d["consent"])
        assert row["invoice_amount"] == f"{d['invoice_amount']:,.2f}"
        assert d["vin"] == contracts[d["contract_no"]]["vin"]
    assert {d["consent"] for d in truth if d["seed_case"].startswith("no_consent")} == {"未授权"}
    one = truth[0]
    found = rows(dms.get("/deliveries", params={"q": one["vin"]}).text, "delivery-row")
    assert [r["delivery_no"] for r in found] == [one["delivery_no"]]


def test_dms_records_a_delivery_once_and_the_contract_becomes_delivered(dms, dms_admin, oem_admin, reset):
    delivered = {d["contract_no"] for d in dms_admin.get("/__admin/deliveries").json()}
    c = next(c for c in dms_admin.get("/__admin/contracts").json()
             if c["vin"] and c["contract_no"] not in delivered and c["status"] in ("已配车", "运输中", "待交车"))
    today = oem_admin.get("/__admin/today").json()["today"]
    page = dms.get(f"/contracts/{c['contract_no']}/delivery").text
    assert 'id="delivery-form"' in page and 'id="confirm-dialog"' in page and "确认登记交车" in page
    good = {"delivery_date": today, "invoice_no": "12345678", "invoice_amount": "239,800.00", "plate_no": "浙A D1234",
            "consent": "已授权", "csrf_token": csrf_of(page)}
    bad = dms.post(f"/contracts/{c['contract_no']}/delivery",
                   data={**good, "delivery_date": (date.fromisoformat(today) + timedelta(days=1)).isoformat(),
                         "invoice_no": "1234", "invoice_amount": "-1", "plate_no": "ABC", "consent": ""})
    assert bad.status_code == 422
    assert errors(bad.text) == {"delivery_date": "交车日期不能晚于今天", "invoice_no": "发票号码应为8位或20位数字",
                                "invoice_amount": "发票金额格式不正确", "plate_no": "车牌号格式不正确（如 浙A12345）",
                                "consent": "请选择客户信息授权"}
    r = dms.post(f"/contracts/{c['contract_no']}/delivery", data=good)
    assert r.status_code == 303 and r.headers["location"].startswith("/deliveries?q=JC")
    listed = dms.get(r.headers["location"]).text
    assert toast(listed).startswith("交车登记成功（交车单号 JC")
    (row,) = rows(listed, "delivery-row")
    assert (row["contract_no"], row["plate_no"], row["invoice_amount"]) == (c["contract_no"], "浙AD1234", "239,800.00")
    again = dms.post(f"/contracts/{c['contract_no']}/delivery", data=good)
    assert again.status_code == 422 and errors(again.text)["form"].startswith("该合同已登记交车（交车单号 JC")
    truth = [d for d in dms_admin.get("/__admin/deliveries").json() if d["contract_no"] == c["contract_no"]]
    assert len(truth) == 1 and truth[0]["seed_case"] == ""
    contract = next(x for x in dms_admin.get("/__admin/contracts").json() if x["contract_no"] == c["contract_no"])
    assert contract["status"] == "已交车"


def _report(oem, vin: str, **values: str):
    page = oem.get("/retail-reports/new", params={"vin": vin}).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)  # the form is absent for a refused VIN
    data = {"vin": vin, "csrf_token": token, "delivery_date": "", "invoice_no": "", "invoice_amount": "",
            "consent": "已授权", "buyer_id_number": "", "buyer_mobile": "", **values}
    return page, oem.post("/retail-reports/new", data=data)


def test_oem_refuses_each_wrong_report_in_its_own_words_and_writes_nothing(oem, oem_admin, dms_admin, reset):
    deliveries = dms_admin.get("/__admin/deliveries").json()
    case = by_case(deliveries)
    buyers = {d["delivery_no"]: d for d in deliveries}
    allocations = {a["vin"]: a for a in oem_admin.get("/__admin/allocations").json()}
    before = oem_admin.get("/__admin/reports").json()

    def values(d: dict, **over: str) -> dict:
        consented = d["consent"] == "已授权"
        return {"delivery_date": d["delivery_date"], "invoice_no": d["invoice_no"],
                "invoice_amount": f"{d['invoice_amount']:.2f}", "consent": d["consent"],
                "buyer_id_number": buyers[d["delivery_no"]]["buyer_id_number"] if consented else "",
                "buyer_mobile": "", **over}

    # a VIN allocated to another dealer: the search says so, and so does a POST that skips it
    other = case["other_dealer"]
    page, r = _report(oem, other["vin"], **values(other))
    words = f"该车辆未分配给本经销商（VIN {other['vin']}），不能上报"
    assert errors(page) == {"vin": words} and 'id="report-submit" disabled' in page
    assert r.status_code == 422 and errors(r.text) == {"vin": words}
    # delivered before the OEM allocated the car
    early = case["before_allocation"]
    _, r = _report(oem, early["vin"], **values(early))
    assert r.status_code == 422
    assert errors(r.text) == {"delivery_date": f"交车日期早于配车日期（{allocations[early['vin']]['allocated_on']}），请核对"}
    # already reported
    done = case["reported"]
    reported = next(x for x in before if x["vin"] == done["vin"])
    page, r = _report(oem, done["vin"], **values(done))
    words = f"该车辆已上报（上报单号 {reported['report_no']}，上报日期 {reported['reported_on']}），不能重复上报"
    assert errors(page) == {"vin": words} and errors(r.text) == {"vin": words}
    # a buyer who did not consent: no personal data; a new-energy car needs the ID number anyway
    fuel = case["no_consent"]
    _, r = _report(oem, fuel["vin"], **values(fuel, buyer_id_number="11010519491231002X", buyer_mobile="13900001234"))
    assert errors(r.text) == {"buyer_id_number": "客户未授权，请勿填写证件号码", "buyer_mobile": "客户未授权，请勿填写手机号"}
    ev = case["no_consent_ev"]
    _, r = _report(oem, ev["vin"], **values(ev))
    assert errors(r.text) == {"buyer_id_number": "新能源车型须填写购车人证件号码（补贴审核）"}
    # an invoice number already reported, an unknown VIN
    near = case["near_deadline"]
    _, r = _report(oem, near["vin"], **values(near, invoice_no=reported["invoice_no"]))
    assert errors(r.text) == {"invoice_no": f"该发票号码已上报（上报单号 {reported['report_no']}）"}
    page = oem.get("/retail-reports/new", params={"vin": "LGXGX7A10TH999999"}).text
    assert errors(page) == {"vin": "未找到该车辆（VIN LGXGX7A10TH999999），请核对车架号"}
    assert oem_admin.get("/__admin/reports").json() == before


def test_oem_accepts_reports_flags_the_late_one_and_lists_them(oem, oem_admin, dms_admin, reset):
    deliveries = dms_admin.get("/__admin/deliveries").json()
    case = by_case(deliveries)
    today = date.fromisoformat(oem_admin.get("/__admin/today").json()["today"])
    before = {r["report_no"] for r in oem_admin.get("/__admin/reports").json()}
    results = {}
    for name in ("near_deadline", "deadline_today", "past_deadline", "no_consent"):
        d = case[name]
        consented = d["consent"] == "已授权"
        page, r = _report(oem, d["vin"], delivery_date=d["delivery_date"], invoice_no=d["invoice_no"],
                          invoice_amount=f"{d['invoice_amount']:,.2f}", consent=d["consent"],
                          buyer_id_number=d["buyer_id_number"] if consented else "",
                          buyer_mobile=d["buyer_mobile"] if consented else "")
        assert 'id="vehicle-info"' in page and 'id="confirm-dialog"' in page and "确认上报" in page
        assert r.status_code == 303, errors(r.text)
        listed = oem.get(r.headers["location"]).text
        results[name] = (toast(listed), rows(listed, "report-row"))
    for name, late in (("near_deadline", False), ("deadline_today", False), ("past_deadline", True), ("no_consent", False)):
        said, (row,) = results[name]
        assert said.startswith("上报成功（上报单号 SB") and ("逾期" in said) is late, said
        assert row["status"] == ("逾期上报" if late else "按时上报")
        assert row["vin"] == case[name]["vin"] and row["reported_on"] == today.isoformat()
    truth = {r["vin"]: r for r in oem_admin.get("/__admin/reports").json() if r["report_no"] not in before}
    assert len(truth) == 4  # each once
    assert {v: t["late"] for v, t in truth.items()} == {case[n]["vin"]: int(n == "past_deadline") for n in results}
    past = truth[case["past_deadline"]["vin"]]
    assert past["deadline"] == (date.fromisoformat(case["past_deadline"]["delivery_date"]) + timedelta(days=7)).isoformat()
    assert (truth[case["no_consent"]["vin"]]["buyer_id_number"], truth[case["no_consent"]["vin"]]["buyer_mobile"]) == ("", "")
    assert truth[case["near_deadline"]["vin"]]["buyer_id_number"] == case["near_deadline"]["buyer_id_number"]
    # the list holds this dealer's reports only, each once
    listed = read_all(oem, "/retail-reports", "report-row")
    own = [r for r in oem_admin.get("/__admin/reports").json() if r["dealer_code"] == "D31001"]
    assert sorted(r["report_no"] for r in listed) == sorted(r["report_no"] for r in own)


def test_oem_report_screens_keep_the_portals_session_and_rate_limit(sandbox, oem, oem_admin, dms_admin, reset):
    d = by_case(dms_admin.get("/__admin/deliveries").json())["near_deadline"]
    before = oem_admin.get("/__admin/reports").json()
    page = oem.get("/retail-reports/new", params={"vin": d["vin"]}).text
    assert 'id="notice-modal"' in page  # the 系统公告 covers these screens too
    assert oem_admin.post("/__admin/expire-sessions").status_code == 200
    r = oem.post("/retail-reports/new", data={"vin": d["vin"], "csrf_token": csrf_of(page), "delivery_date": d["delivery_date"],
                                             "invoice_no": d["invoice_no"], "invoice_amount": "1", "consent": "已授权",
                                             "buyer_id_number": d["buyer_id_number"]})
    assert r.status_code == 303 and r.headers["location"].startswith("/login?expired=1")
    assert oem_admin.get("/__admin/reports").json() == before
    assert oem_admin.put("/__admin/behaviours", json={"rate_limit_per_minute": 3}).status_code == 200
    from .conftest import OEM_LOGIN, login

    c = login(sandbox.oem_url, OEM_LOGIN)
    statuses = [c.get("/retail-reports").status_code for _ in range(5)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
    c.close()


def test_the_reports_list_pages_twenty_at_a_time(oem, oem_admin, reset):
    today = oem_admin.get("/__admin/today").json()["today"]
    page = oem.get("/retail-reports/new").text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    for k in range(20):  # cars allocated to this dealer today, each reported
        vin = f"LGXGX5A1{k % 10}TH{910000 + k:06d}"
        assert oem_admin.post("/__admin/allocations", json={"vin": vin, "dealer_code": "D31001", "allocated_on": today,
                                                            "model_code": "GX5-15T-STD"}).status_code == 200
        r = oem.post("/retail-reports/new", data={"vin": vin, "csrf_token": token, "delivery_date": today,
                                                 "invoice_no": f"{70000000 + k}", "invoice_amount": "129800",
                                                 "consent": "未授权"})
        assert r.status_code == 303, errors(r.text)
    own = [r for r in oem_admin.get("/__admin/reports").json() if r["dealer_code"] == "D31001"]
    first = oem.get("/retail-reports").text
    assert f"第 1/2 页，共 {len(own)} 条" in first and len(rows(first, "report-row")) == 20 and 'id="pager-next"' in first
    second = oem.get("/retail-reports", params={"page": 2}).text
    assert len(rows(second, "report-row")) == len(own) - 20 and 'id="pager-next"' not in second

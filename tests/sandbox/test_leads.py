"""HTTP tests of the leads screens: the OEM portal's 线索管理 / 回访登记 and the DMS's 潜客管理 /
跟进记录, checked against the admin ground truth."""

from __future__ import annotations

from datetime import date, timedelta

from .conftest import csrf_of
from .test_retail import errors, read_all, rows, toast


def _case(leads: list[dict], name: str) -> dict:
    return next(lead for lead in leads if lead["seed_case"] == name)


def test_oem_leads_list_and_detail_are_the_ground_truth(oem, oem_admin):
    leads = oem_admin.get("/__admin/leads").json()
    today = date.fromisoformat(oem_admin.get("/__admin/today").json()["today"])
    assert {"new", "known_customer", "in_dms", "to_log", "logged", "overdue", "no_consent"} <= {lead["seed_case"] for lead in leads}
    assert {lead["lead_no"] for lead in leads if lead["consent"] == "未授权"} == {_case(leads, "no_consent")["lead_no"]}
    shown = {r["lead_no"]: r for r in read_all(oem, "/leads", "lead-row")}
    assert set(shown) == {lead["lead_no"] for lead in leads}
    for lead in leads:
        row = shown[lead["lead_no"]]
        assert (row["name"], row["mobile"], row["model_code"], row["source"], row["assigned_on"], row["followup_deadline"],
                row["consent"]) == (lead["name"], lead["mobile"], lead["model_code"], lead["source"], lead["assigned_on"],
                                    lead["followup_deadline"], lead["consent"])
        assert date.fromisoformat(lead["followup_deadline"]) == date.fromisoformat(lead["assigned_on"]) + timedelta(days=2)
        expected = "已回访" if lead["followups"] else "已超时" if today > date.fromisoformat(lead["followup_deadline"]) else "待回访"
        assert row["status"] == expected
    assert shown[_case(leads, "overdue")["lead_no"]]["status"] == "已超时"
    logged = _case(leads, "logged")
    truth = [f for f in oem_admin.get("/__admin/followups").json() if f["lead_no"] == logged["lead_no"]]
    page = oem.get(f"/leads/{logged['lead_no']}").text
    assert [r["followup_no"] for r in rows(page, "followup-row")] == [f["followup_no"] for f in truth] and truth
    assert 'id="followup-form"' in page and 'id="confirm-dialog"' in page and "确认提交" in page


def test_oem_followup_refusals_and_the_late_flag(oem, oem_admin, reset):
    leads = oem_admin.get("/__admin/leads").json()
    today = date.fromisoformat(oem_admin.get("/__admin/today").json()["today"])
    before = oem_admin.get("/__admin/followups").json()
    lead = _case(leads, "new")
    page = oem.get(f"/leads/{lead['lead_no']}").text
    token = csrf_of(page)
    post = lambda no, **v: oem.post(f"/leads/{no}/followups", data={"csrf_token": token, "next_step": "", "note": "", **v})  # noqa: E731
    early = (date.fromisoformat(lead["assigned_on"]) - timedelta(days=1)).isoformat()
    r = post(lead["lead_no"], followed_on=early, result="")
    assert r.status_code == 422 and errors(r.text) == {"followed_on": f"回访日期早于线索分配日期（{lead['assigned_on']}）",
                                                       "result": "请选择回访结果"}
    r = post(lead["lead_no"], followed_on=(today + timedelta(days=1)).isoformat(), result="无意向", note="长" * 201)
    assert errors(r.text) == {"followed_on": "回访日期不能晚于今天", "note": "备注不能超过200字"}
    assert oem_admin.get("/__admin/followups").json() == before
    r = post(lead["lead_no"], followed_on=today.isoformat(), result="有意向-邀约到店", next_step="邀约周末到店试驾", note="客户关注续航")
    assert r.status_code == 303 and r.headers["location"] == f"/leads/{lead['lead_no']}"
    shown = oem.get(r.headers["location"]).text
    assert toast(shown).startswith("回访登记成功（回访编号 HF") and "超时" not in toast(shown)
    (row,) = rows(shown, "followup-row")
    assert (row["result"], row["next_step"], row["note"], row["late"]) == ("有意向-邀约到店", "邀约周末到店试驾", "客户关注续航", "按时")
    overdue = _case(leads, "overdue")
    r = post(overdue["lead_no"], followed_on=today.isoformat(), result="无法接通")
    shown = oem.get(r.headers["location"]).text
    assert "记为超时回访" in toast(shown) and rows(shown, "followup-row")[0]["late"] == "超时"
    after = oem_admin.get("/__admin/followups").json()
    new = [f for f in after if f not in before]
    assert [(f["lead_no"], f["late"]) for f in new] == [(lead["lead_no"], 0), (overdue["lead_no"], 1)]
    pushed = oem_admin.post("/__admin/leads", json={"name": "测试线索", "mobile": "13900001234", "model_code": "GX7-25T-LUX"}).json()
    assert pushed["assigned_on"] == today.isoformat() and pushed["followup_deadline"] == (today + timedelta(days=2)).isoformat()
    listed = {r["lead_no"]: r["status"] for r in read_all(oem, "/leads", "lead-row")}
    assert listed[lead["lead_no"]] == listed[overdue["lead_no"]] == "已回访" and listed[pushed["lead_no"]] == "待回访"


def test_dms_prospects_and_followups_and_the_create_form(dms, dms_admin, oem_admin, reset):
    prospects = dms_admin.get("/__admin/prospects").json()
    followups = dms_admin.get("/__admin/prospect-followups").json()
    leads = oem_admin.get("/__admin/leads").json()
    shown = {r["prospect_no"]: r for r in read_all(dms, "/prospects", "prospect-row")}
    assert set(shown) == {p["prospect_no"] for p in prospects}
    by_lead = {p["oem_lead_no"]: p for p in prospects}
    assert {lead["lead_no"] for lead in leads if lead["seed_case"] in ("in_dms", "to_log", "logged")} == set(by_lead)
    listed = {r["followup_no"]: r for r in read_all(dms, "/prospect-followups", "prospect-followup-row")}
    assert set(listed) == {f["followup_no"] for f in followups}
    for f in followups:
        assert listed[f["followup_no"]]["oem_lead_no"] == f["oem_lead_no"] and listed[f["followup_no"]]["result"] == f["result"]
    assert {f["oem_lead_no"] for f in followups} == {lead["lead_no"] for lead in leads if lead["seed_case"] in ("to_log", "logged")}

    new = _case(leads, "new")
    page = dms.get("/prospects/new").text
    good = {"name": new["name"], "mobile": new["mobile"], "model_code": "DMS-GX5S", "source": "厂家线索",
            "oem_lead_no": new["lead_no"], "csrf_token": csrf_of(page)}
    r = dms.post("/prospects/new", data={**good, "mobile": "139 0000 1234", "model_code": "GX5", "oem_lead_no": ""})
    assert r.status_code == 422 and errors(r.text) == {"mobile": "手机号格式不正确（11位数字）", "model_code": "请选择意向车型",
                                                       "oem_lead_no": "厂家下发线索须填写厂家线索编号"}
    taken = next(iter(by_lead))
    r = dms.post("/prospects/new", data={**good, "oem_lead_no": taken})
    assert errors(r.text) == {"oem_lead_no": f"该厂家线索已建潜客（{by_lead[taken]['prospect_no']}）"}
    assert dms_admin.get("/__admin/prospects").json() == prospects
    r = dms.post("/prospects/new", data=good)
    assert r.status_code == 303
    listed_page = dms.get(r.headers["location"]).text
    assert toast(listed_page).startswith("保存成功（潜客编号 QK")
    (row,) = rows(listed_page, "prospect-row")
    assert (row["oem_lead_no"], row["name"], row["sales_rep"]) == (new["lead_no"], new["name"], "销售顾问 张敏")
    assert len(dms_admin.get("/__admin/prospects").json()) == len(prospects) + 1

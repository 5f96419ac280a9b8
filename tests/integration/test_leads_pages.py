"""The leads flow's page objects and reading bots against the sandbox in real Chromium: OEM
``FollowupForm.log_followup`` and DMS ``ProspectForm.create_prospect`` (accepted, late, refused in
the portal's words, found back, nothing doubled), then ``oem-leads`` and ``dms-prospects`` store
exactly the sandbox's ground truth."""

from __future__ import annotations

import json
from datetime import date

from dealerbot.data.records import DMS_FOLLOWUP, DMS_PROSPECT, OEM_FOLLOWUP, OEM_LEAD
from dealerbot.running.runner import run_bot

from .conftest import PASSWORDS
from .test_failures import _all_text_under

PROBE = '''
import json
from dataclasses import asdict
from pathlib import Path

from dealerbot.api import Bot, BotContext
from portals.dms import PROSPECT_SELECTORS, PROSPECT_WRITE_SELECTORS, DmsApp, ProspectForm
from portals.oem import FOLLOWUP_WRITE_SELECTORS, LEADS_SELECTORS, FollowupForm, LeadPage, OemPortal


class Probe(Bot):
    name = "leads-probe"
    portal = "oem"
    also_uses = ("dms",)
    description = "logs the follow-ups and creates the prospects of plan.json through the page objects"

    async def run(self, ctx: BotContext) -> None:
        plan = json.loads(Path("plan.json").read_text(encoding="utf-8"))
        out = {"followups": [], "prospects": []}
        async with ctx.portal("oem", OemPortal, require=(*LEADS_SELECTORS, *FOLLOWUP_WRITE_SELECTORS)) as s:
            form, page = FollowupForm(s), LeadPage(s)
            for step in plan["followups"]:
                got = await form.log_followup(step["lead_no"], step["values"], dry_run=step.get("dry_run", False))
                _, logged = await page.read(step["lead_no"])
                out["followups"].append({**asdict(got), "logged": [f["followup_no"] for f in logged]})
        async with ctx.portal("dms", DmsApp, require=(*PROSPECT_SELECTORS, *PROSPECT_WRITE_SELECTORS)) as s:
            form = ProspectForm(s)
            for values in plan["prospects"]:
                got = await form.create_prospect(values)
                found = await form.find_prospect(values["oem_lead_no"])
                out["prospects"].append({**asdict(got), "found": [p["prospect_no"] for p in found]})
        Path("outcomes.json").write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
'''


async def test_followups_and_prospects_written_once_then_read_back_as_the_ground_truth(settings, store, clean_sandbox):
    leads = clean_sandbox.rows("oem", "leads")
    case = {}
    for lead in leads:
        case.setdefault(lead["seed_case"], lead)
    today = clean_sandbox.get("oem", "/__admin/today")["today"]
    before = clean_sandbox.rows("oem", "followups")
    prospects_before = clean_sandbox.rows("dms", "prospects")
    taken = prospects_before[0]["oem_lead_no"]
    plan = {
        "followups": [
            {"lead_no": case["new"]["lead_no"], "values": {"followed_on": today, "result": "有意向-持续跟进",
                                                          "next_step": "发送报价单", "note": "客户关注续航"}},
            {"lead_no": case["overdue"]["lead_no"], "values": {"followed_on": today, "result": "无法接通"}},  # late
            {"lead_no": case["in_dms"]["lead_no"], "values": {"followed_on": "2020-01-01", "result": "无意向"}},  # refused
            {"lead_no": case["in_dms"]["lead_no"], "values": {"followed_on": today, "result": "已到店"}, "dry_run": True},
        ],
        "prospects": [
            {"name": case["new"]["name"], "mobile": case["new"]["mobile"], "model_code": "DMS-GX7L", "source": "厂家线索",
             "oem_lead_no": case["new"]["lead_no"]},
            {"name": "测试客户", "mobile": "13900001234", "model_code": "DMS-GX7L", "source": "厂家线索", "oem_lead_no": taken},
        ],
    }
    (settings.home / "plan.json").write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    (settings.home / "bots").mkdir(exist_ok=True)
    (settings.home / "bots" / "__init__.py").touch()
    (settings.home / "bots" / "leads_probe.py").write_text(PROBE, encoding="utf-8")

    result = await run_bot("leads-probe", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    out = json.loads((settings.home / "outcomes.json").read_text(encoding="utf-8"))
    on_time, late, refused, rehearsed = out["followups"]
    after = clean_sandbox.rows("oem", "followups")
    new = {f["followup_no"]: f for f in after if f not in before}
    assert set(new) == {on_time["number"], late["number"]}  # once each, nothing for the refused or rehearsed ones
    assert on_time["result"] == "accepted" and not on_time["late"] and on_time["logged"] == [on_time["number"]]
    assert (new[on_time["number"]]["result"], new[on_time["number"]]["next_step"], new[on_time["number"]]["note"]) == (
        "有意向-持续跟进", "发送报价单", "客户关注续航")
    assert late["result"] == "accepted" and late["late"] and new[late["number"]]["late"] == 1
    assert refused["result"] == "refused" and refused["errors"] == {
        "followed_on": f"回访日期早于线索分配日期（{case['in_dms']['assigned_on']}）"} and refused["logged"] == []
    assert rehearsed["result"] == "rehearsed" and rehearsed["logged"] == []
    made, dup = out["prospects"]
    prospects = clean_sandbox.rows("dms", "prospects")
    assert len(prospects) == len(prospects_before) + 1
    (added,) = [p for p in prospects if p not in prospects_before]
    assert made["result"] == "saved" and made["key"] == added["prospect_no"] and made["found"] == [added["prospect_no"]]
    assert (added["oem_lead_no"], added["model_code"], added["source"]) == (case["new"]["lead_no"], "DMS-GX7L", "厂家线索")
    assert dup["result"] == "refused" and dup["message"] == f"该厂家线索已建潜客（{prospects_before[0]['prospect_no']}）"

    # the reading bots: exactly what the sandbox holds now
    got = await run_bot("oem-leads", settings, passwords=PASSWORDS)
    assert got.ok, got.error
    truth = {lead["lead_no"]: lead for lead in clean_sandbox.rows("oem", "leads")}
    stored = {r["lead_no"]: r for r in store.iter_records(OEM_LEAD)}
    assert set(stored) == set(truth)
    for no, row in stored.items():
        t = truth[no]
        assert (row["name"], row["mobile"], row["model_code"], row["source"]) == (t["name"], t["mobile"], t["model_code"], t["source"])
        assert row["consent"] is (t["consent"] == "已授权")
        assert (row["assigned_on"], row["followup_deadline"]) == (date.fromisoformat(t["assigned_on"]), date.fromisoformat(t["followup_deadline"]))
    assert stored[case["new"]["lead_no"]]["status"] == "已回访"
    followups = {f["followup_no"]: f for f in clean_sandbox.rows("oem", "followups")}
    stored_f = {r["followup_no"]: r for r in store.iter_records(OEM_FOLLOWUP)}
    assert set(stored_f) == set(followups)
    for no, row in stored_f.items():
        f = followups[no]
        assert (row["lead_no"], row["followed_on"], row["result"], row["late"]) == (
            f["lead_no"], date.fromisoformat(f["followed_on"]), f["result"], "超时" if f["late"] else "按时")

    got = await run_bot("dms-prospects", settings, passwords=PASSWORDS)
    assert got.ok, got.error
    stored_p = {r["prospect_no"]: r for r in store.iter_records(DMS_PROSPECT)}
    assert set(stored_p) == {p["prospect_no"] for p in prospects}
    for p in prospects:
        assert (stored_p[p["prospect_no"]]["oem_lead_no"], stored_p[p["prospect_no"]]["mobile"]) == (p["oem_lead_no"], p["mobile"])
    dms_followups = clean_sandbox.rows("dms", "prospect-followups")
    stored_d = {r["followup_no"]: r for r in store.iter_records(DMS_FOLLOWUP)}
    assert set(stored_d) == {f["followup_no"] for f in dms_followups} and stored_d
    for f in dms_followups:
        row = stored_d[f["followup_no"]]
        assert (row["prospect_no"], row["oem_lead_no"], row["result"], row["followed_on"]) == (
            f["prospect_no"], f["oem_lead_no"], f["result"], date.fromisoformat(f["followed_on"]))

    text = _all_text_under(settings.path("logs"))
    personal = {v for lead in truth.values() for v in (lead["name"], lead["mobile"]) if len(v) >= 2}
    leaked = sorted(v for v in personal if v in text)
    assert not leaked, leaked[:5]

"""The delivery-report page objects against the sandbox in real Chromium: the OEM's 交车上报 written
through ``ReportForm.report_delivery`` (accepted, accepted late, refused in the portal's words, a
dry run), found back in 上报记录, checked against the OEM's admin ground truth."""

from __future__ import annotations

import json

from dealerbot.running.runner import run_bot

from .conftest import PASSWORDS

PROBE = '''
import json
from pathlib import Path

from dealerbot.api import Bot, BotContext
from portals.oem import REPORT_WRITE_SELECTORS, REPORTS_SELECTORS, OemPortal, ReportForm, ReportsPage


class Probe(Bot):
    name = "oem-report-probe"
    portal = "oem"
    description = "reports the deliveries of plan.json through the 交车上报 page object"

    async def run(self, ctx: BotContext) -> None:
        plan = json.loads(Path("plan.json").read_text(encoding="utf-8"))
        out = []
        async with ctx.portal("oem", OemPortal, require=(*REPORTS_SELECTORS, *REPORT_WRITE_SELECTORS)) as s:
            form, reports = ReportForm(s), ReportsPage(s)
            for step in plan:
                got = await form.report_delivery(step["values"], dry_run=step.get("dry_run", False))
                found = await reports.find(step["values"]["vin"])
                out.append({"result": got.result, "report_no": got.number, "late": got.late, "message": got.message,
                            "errors": got.errors, "found": [r["report_no"] for r in found],
                            "status": [r["status"] for r in found]})
        Path("outcomes.json").write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
'''


def _values(d: dict, **over: str) -> dict:
    consented = d["consent"] == "已授权"
    return {"vin": d["vin"], "delivery_date": d["delivery_date"], "invoice_no": d["invoice_no"],
            "invoice_amount": f"{d['invoice_amount']:,.2f}", "consent": d["consent"],
            "buyer_id_number": d["buyer_id_number"] if consented else "",
            "buyer_mobile": d["buyer_mobile"] if consented else "", **over}


async def test_report_delivery_writes_once_flags_late_and_returns_the_portals_refusals(settings, clean_sandbox):
    deliveries = clean_sandbox.rows("dms", "deliveries")
    case = {}
    for d in deliveries:
        case.setdefault(d["seed_case"], d)
    before = clean_sandbox.rows("oem", "reports")
    allocated = {a["vin"]: a for a in clean_sandbox.rows("oem", "allocations")}
    plan = [
        {"values": _values(case["past_deadline"])},                       # accepted, late
        {"values": _values(case["near_deadline"])},                       # accepted on time
        {"values": _values(case["near_deadline"])},                       # the same again: refused, nothing doubled
        {"values": _values(case["other_dealer"])},                        # another dealer's car
        {"values": _values(case["before_allocation"])},                   # delivered before the allocation
        {"values": _values(case["deadline_today"]), "dry_run": True},     # filled, confirm cancelled
    ]
    (settings.home / "plan.json").write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    (settings.home / "bots").mkdir(exist_ok=True)
    (settings.home / "bots" / "__init__.py").touch()
    (settings.home / "bots" / "oem_report_probe.py").write_text(PROBE, encoding="utf-8")

    result = await run_bot("oem-report-probe", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    late, on_time, again, other, early, rehearsed = json.loads((settings.home / "outcomes.json").read_text(encoding="utf-8"))

    after = clean_sandbox.rows("oem", "reports")
    new = {r["report_no"]: r for r in after if r not in before}
    assert len(after) == len(before) + 2 and set(new) == {late["report_no"], on_time["report_no"]}  # one each, nothing else
    assert late["result"] == "accepted" and late["late"] and "逾期" in late["message"]
    assert new[late["report_no"]]["late"] == 1 and new[late["report_no"]]["vin"] == case["past_deadline"]["vin"]
    assert late["found"] == [late["report_no"]] and late["status"] == ["逾期上报"]
    assert on_time["result"] == "accepted" and not on_time["late"] and on_time["status"] == ["按时上报"]
    assert new[on_time["report_no"]]["buyer_id_number"] == case["near_deadline"]["buyer_id_number"]
    assert new[on_time["report_no"]]["invoice_amount"] == case["near_deadline"]["invoice_amount"]
    assert again["result"] == "refused" and again["found"] == [on_time["report_no"]]
    assert again["message"] == f"该车辆已上报（上报单号 {on_time['report_no']}，上报日期 {new[on_time['report_no']]['reported_on']}），不能重复上报"
    assert other == {"result": "refused", "report_no": "", "late": False, "found": [], "status": [],
                     "message": f"该车辆未分配给本经销商（VIN {case['other_dealer']['vin']}），不能上报",
                     "errors": {"vin": f"该车辆未分配给本经销商（VIN {case['other_dealer']['vin']}），不能上报"}}
    allocated_on = allocated[case["before_allocation"]["vin"]]["allocated_on"]
    assert early["result"] == "refused" and early["errors"] == {"delivery_date": f"交车日期早于配车日期（{allocated_on}），请核对"}
    assert rehearsed["result"] == "rehearsed" and rehearsed["found"] == []

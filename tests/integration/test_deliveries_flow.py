"""The delivery-report flow end to end (issue #24): `dealerbot sync --flow deliveries` reads the
DMS's 交车记录 and the OEM's 上报记录, plans, and after approval in the review workbook reports
each delivery into the OEM's 交车上报 once, read back; checked against the sandbox's admin
ground truth: every reportable delivery reported exactly once (a SIGKILL right after a submit,
another just before one, then a re-run: nothing doubled, nothing lost), each refusal kept with the portal's words, a
dry run writes nothing, a value edited in the 待处理-交车上报 sheet applied, a late report
accepted and flagged, the OEM's rate limit kept (0 refusals at the limit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook

from dealerbot.config import load_settings
from dealerbot.store import Store

from .conftest import DMS_PASSWORD, OEM_PASSWORD
from .test_cli import _config, dealerbot
from .test_scheduler import Receiver

pytestmark = pytest.mark.browser


def run(folder: Path, *args: str, **env: str):
    return dealerbot(list(args), folder, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, **env)


def test_deliveries_are_reported_once_after_review_refusals_kept_resumed_after_a_kill(tmp_path, sandbox, clean_sandbox):
    admin = clean_sandbox
    # every report needs a person here, so that the workbook decides (the shipped default: none)
    receiver = Receiver()  # the message after a sync (apprise json:// on loopback)
    _config(tmp_path, sandbox, '[flows]\nenabled = ["deliveries"]\n[flows.deliveries]\n'
                               'approval_required = ["report", "report_id_required", "report_conflict"]\n'
                               f'[notify]\nurls = ["{receiver.url}"]\n')
    cfg = tmp_path / "dealerbot.toml"  # 8 requests/s: under the OEM's limit below
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[run]\n", "[run]\nrequests_per_minute = 480\n"), encoding="utf-8")
    admin.behave("oem", rate_limit_per_minute=40, rate_limit_window_seconds=4)  # the OEM allows 10/s (reset after)
    settings = load_settings(tmp_path / "dealerbot.toml")
    deliveries = {d["delivery_no"]: d for d in admin.rows("dms", "deliveries") if d["seed_case"]}
    by_case: dict[str, list[dict]] = {}
    for d in deliveries.values():
        by_case.setdefault(d["seed_case"], []).append(d)
    reports_before = admin.rows("oem", "reports")
    allocations = {a["vin"]: a for a in admin.rows("oem", "allocations")}

    planned = run(tmp_path, "sync", "--flow", "deliveries")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert len(admin.rows("oem", "reports")) == len(reports_before)  # nothing written before approval
    with Store.open(settings.store_url, settings.store_code) as store:
        waiting = {a.natural_key: a for a in store.actions(["planned"], flow="deliveries")}
    reported = {d["delivery_no"] for d in by_case["reported"]}
    assert not reported & set(waiting)  # in sync: the same report is there
    [conflict] = by_case["conflict"]
    assert waiting[conflict["delivery_no"]].kind == "report_conflict"
    [ev] = by_case["no_consent_ev"]
    assert waiting[ev["delivery_no"]].kind == "report_id_required"
    [fuel] = by_case["no_consent"]
    assert waiting[fuel["delivery_no"]].new_values["buyer_mobile"] == ""  # field minimisation
    assert waiting[fuel["delivery_no"]].new_values["buyer_id_number"] == ""
    # The message lists what waits by the portal's business date: the late ones first, then the
    # closest deadlines (the conflict is not a report to make).
    receiver.close()
    [message] = receiver.messages
    listed = message["message"].split("交车上报待处理：", 1)[1]
    late = {d["delivery_no"] for d in by_case["past_deadline"]}
    first = [line for line in listed.splitlines() if line.startswith("- ")][:len(late)]
    assert {line[2:].split("（")[0] for line in first} == late and all("已逾期" in line for line in first), listed
    assert by_case["near_deadline"][0]["delivery_no"] in listed and conflict["delivery_no"] not in listed

    # The review workbook's sheet, as staff fill it in: the delivery dated before the allocation
    # corrected to the allocation date, everything else approved (the conflict cannot be written).
    [early] = by_case["before_allocation"]
    fixed_date = allocations[early["vin"]]["allocated_on"]
    [book] = sorted((tmp_path / "out").glob("review-*.xlsx"))
    wb = load_workbook(book)
    ws = wb["待处理-交车上报"]
    heads = [c.value for c in ws[1]]
    date_head = next(h for h in heads if h in ("交车日期", "delivery_date"))
    for row in ws.iter_rows(min_row=2):
        cells = dict(zip(heads, row))
        if cells["记录键"].value == early["delivery_no"]:
            cells["审核"].value, cells[date_head].value = "修改后同意", fixed_date
        elif cells["记录键"].value != conflict["delivery_no"]:  # a conflict is the car maker's to correct
            cells["审核"].value = "同意"
    wb.save(tmp_path / "reviewed.xlsx")
    imported = run(tmp_path, "import-review", "reviewed.xlsx", "--reviewer", "店长")
    assert imported.returncode == 0, imported.stdout + imported.stderr

    rehearsal = run(tmp_path, "run", "oem-report-deliveries", "--dry-run")
    assert rehearsal.returncode == 0, rehearsal.stdout + rehearsal.stderr
    assert len(admin.rows("oem", "reports")) == len(reports_before)  # filled, never submitted

    killed = run(tmp_path, "run", "oem-report-deliveries", DEALERBOT_FAILPOINTS="flow.after_submit:2")
    assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILL right after the second submit
    killed = run(tmp_path, "run", "oem-report-deliveries", DEALERBOT_FAILPOINTS="flow.before_submit:2")
    assert killed.returncode == -9, killed.stdout + killed.stderr  # ... and once marked submitted, before the click
    again = run(tmp_path, "sync", "--flow", "deliveries")  # resumes: searches first, never submits twice
    assert again.returncode == 0, again.stdout + again.stderr

    reports = admin.rows("oem", "reports")
    vins = [r["vin"] for r in reports]
    for d in deliveries.values():
        assert vins.count(d["vin"]) <= 1, d  # nothing doubled
    written = {"to_report", "near_deadline", "deadline_today", "past_deadline", "no_consent", "no_consent_ev",
               "before_allocation"}
    for case in written:
        for d in by_case.get(case, []):
            assert vins.count(d["vin"]) == 1, (case, d["delivery_no"])  # nothing missing
    mine = {r["vin"]: r for r in reports if r["seed_case"] == ""}
    assert mine[early["vin"]]["delivery_date"] == fixed_date  # the reviewer's edited value
    assert mine[fuel["vin"]]["buyer_mobile"] == "" and mine[fuel["vin"]]["buyer_id_number"] == ""
    assert all(mine[d["vin"]]["late"] == 1 for d in by_case["past_deadline"])  # accepted, flagged 逾期
    assert mine[by_case["near_deadline"][0]["vin"]]["late"] == 0
    [other] = by_case["other_dealer"]
    assert other["vin"] not in vins
    with Store.open(settings.store_url, settings.store_code) as store:
        refused = store.actions(natural_key=other["delivery_no"], flow="deliveries")[-1]
        assert refused.state == "failed" and "未分配给本经销商" in (refused.failure_reason or "")
        states = {a.natural_key: a.state for a in store.actions(flow="deliveries")}
        late = {r["natural_key"] for r in store.audit_rows(limit=500) if r["event"] == "late"}
    assert late == {d["delivery_no"] for d in by_case["past_deadline"]}  # the 逾期 flag in the audit trail
    assert all(states[d["delivery_no"]] == "verified" for c in written for d in by_case.get(c, []))
    counters = admin.counters("oem")
    assert counters["rate_limited"] == 0 and 0 < counters["rate_window_peak"] <= 40  # the OEM's limit kept

"""The leads flows end to end (issue #24) against the sandbox's admin ground truth, through the
CLI as staff run it: `dealerbot sync` reads and plans both flows, the review workbook approves
(one value edited), a dry run writes nothing, each writer is SIGKILLed right after its first
submit, and the next sync resumes: every consenting new lead is one DMS prospect, every DMS
follow-up of a lead is logged once on the OEM (which would take a duplicate; its writer is killed
twice: once before a read back, once after a submit), a refusal of each
portal is kept in its own words, the OEM's rate limit is never hit, overdue leads are listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook

from dealerbot.config import load_settings
from dealerbot.store import Store

from .conftest import DMS_PASSWORD, OEM_PASSWORD
from .test_cli import dealerbot
from .test_messages import assert_readable, receiver  # noqa: F401 - the receiver fixture: a webhook on loopback

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser
LIMIT, WINDOW, PACE = 10, 1.0, 300  # the OEM takes 10 requests a second; dealerbot paces its own at 5/s
SAME = ("lead_no", "followed_on", "result", "next_step", "note")


def _run(shop: Path, *args: str, **env: str):
    return dealerbot(list(args), shop, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, **env)


def _store(shop: Path) -> Store:
    settings = load_settings(shop / "dealerbot.toml")
    return Store.open(settings.store_url, settings.store_code)


def _on_oem(admin, f: dict) -> int:
    return sum(1 for o in admin.rows("oem", "followups") if all(str(o[k]) == str(f[k]) for k in SAME))


def test_leads_become_prospects_and_followups_are_logged_once_through_review_kills_and_refusals(
        tmp_path, sandbox, clean_sandbox, receiver):  # noqa: F811
    admin = clean_sandbox
    shop = tmp_path / "shop"
    shop.mkdir()
    shutil.copy(ROOT / "dictionary.yaml", shop / "dictionary.yaml")
    (shop / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sandbox.oem_url}"\n[dms]\nurl = "{sandbox.dms_url}"\n[run]\nbackoff_seconds = 0.05\n'
        f'requests_per_minute = {PACE}\n[notify]\nurls = ["{receiver.url}"]\n'
        '[flows]\nenabled = ["leads", "followups"]\n', encoding="utf-8")
    admin.behave("oem", rate_limit_per_minute=LIMIT, rate_limit_window_seconds=WINDOW)  # the OEM's stricter limit
    leads = admin.rows("oem", "leads")
    bad = admin.oem.post("/__admin/leads", json={"name": "钱多多", "mobile": "1391234567", "model_code": "GX3-15T-STD"}).json()
    prospect = next(p for p in admin.rows("dms", "prospects")
                    if next(lead for lead in leads if lead["lead_no"] == p["oem_lead_no"])["seed_case"] == "in_dms")
    too_long = admin.dms.post("/__admin/prospect-followups", json={
        "prospect_no": prospect["prospect_no"], "followed_on": admin.get("oem", "/__admin/today")["today"],
        "result": "持续跟进", "next_step": "发送报价单", "note": "客户说" * 70}).json()  # over the OEM's 200 characters
    new = {lead["lead_no"] for lead in leads if lead["seed_case"] in ("new", "known_customer", "overdue")}
    no_consent = {lead["lead_no"] for lead in leads if lead["seed_case"] == "no_consent"}
    overdue = {lead["lead_no"] for lead in leads if lead["seed_case"] == "overdue"}
    with_lead = {p["prospect_no"]: p["oem_lead_no"] for p in admin.rows("dms", "prospects")}
    dms_followups = [{**f, "lead_no": with_lead[f["prospect_no"]]} for f in admin.rows("dms", "prospect-followups")]
    oem_before, prospects_before = len(admin.rows("oem", "followups")), len(admin.rows("dms", "prospects"))

    planned = _run(shop, "sync")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "厂家线索建潜客" in planned.stdout and "跟进登记厂家回访" in planned.stdout
    assert len(admin.rows("oem", "followups")) == oem_before and len(admin.rows("dms", "prospects")) == prospects_before
    with _store(shop) as store:
        waiting_leads = {a.natural_key: a for a in store.actions(["planned"], flow="leads")}
        waiting_followups = {a.natural_key: a for a in store.actions(["planned"], flow="followups")}
    assert set(waiting_leads) == new | {bad["lead_no"]}  # not the lead without consent
    case = {lead["lead_no"]: lead["seed_case"] for lead in leads}
    to_log = {f["followup_no"] for f in dms_followups if case[f["lead_no"]] == "to_log"}
    assert to_log and set(waiting_followups) == to_log | {too_long["followup_no"]}  # the seeded 'logged' ones are there

    [book] = sorted((shop / "out").glob("review-*.xlsx"))
    wb = load_workbook(book)
    edited = sorted(k for k in waiting_followups if k != too_long["followup_no"])[0]
    for title in ("待处理-厂家线索建潜客", "待处理-跟进登记厂家回访"):
        ws = wb[title]
        heads = [c.value for c in ws[1]]
        for row in ws.iter_rows(min_row=2):
            cells = dict(zip(heads, row))
            cells["审核"].value = "同意"
            if cells["记录键"].value == edited:
                cells["审核"].value, cells["下一步"].value = "修改后同意", "安排金融方案（店长改）"
    wb.save(shop / "reviewed.xlsx")
    imported = _run(shop, "import-review", "reviewed.xlsx", "--reviewer", "店长")
    assert imported.returncode == 0, imported.stdout + imported.stderr

    for bot in ("leads-write", "followups-write"):
        dry = _run(shop, "run", bot, "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
    assert len(admin.rows("oem", "followups")) == oem_before and len(admin.rows("dms", "prospects")) == prospects_before
    rehearsed = [json.loads(line) for p in (shop / "logs").rglob("rehearsal.jsonl") for line in p.read_text().splitlines()]
    assert {e["key"] for e in rehearsed} >= set(waiting_followups) | new

    for bot, point in (("leads-write", "flow.after_submit"), ("followups-write", "flow.before_read_back"),
                       ("followups-write", "flow.after_submit")):  # the OEM side killed twice: saved unread, then submitted
        killed = _run(shop, "run", bot, DEALERBOT_FAILPOINTS=f"{point}:1")
        assert killed.returncode == -9, killed.stdout + killed.stderr
    # killed: the pages of one login (as many as [rekey] concurrency) may each have submitted one
    # by then, none twice
    oem_new, dms_new = len(admin.rows("oem", "followups")) - oem_before, len(admin.rows("dms", "prospects")) - prospects_before
    assert 2 <= oem_new <= 6 and 1 <= dms_new <= 3, (oem_new, dms_new)
    assert all(_on_oem(admin, a.new_values) <= 1 for a in waiting_followups.values())

    again = _run(shop, "sync")
    assert again.returncode == 0, again.stdout + again.stderr
    prospects = admin.rows("dms", "prospects")
    for lead_no in new:
        assert [p["oem_lead_no"] for p in prospects].count(lead_no) == 1, lead_no
    assert not {p["oem_lead_no"] for p in prospects} & (no_consent | {bad["lead_no"]})
    known = next(lead for lead in leads if lead["seed_case"] == "known_customer")
    customer = next(c for c in admin.customers() if c["mobile"] == known["mobile"])
    assert next(p for p in prospects if p["oem_lead_no"] == known["lead_no"])["name"] == customer["name"]
    for no, action in waiting_followups.items():
        want = {**action.new_values, "next_step": "安排金融方案（店长改）"} if no == edited else action.new_values
        assert _on_oem(admin, want) == (0 if no == too_long["followup_no"] else 1), no
    assert len(admin.rows("oem", "followups")) == oem_before + len(waiting_followups) - 1
    counters = admin.counters("oem")
    assert counters["rate_limited"] == 0 and 0 < counters["rate_window_peak"] <= LIMIT, counters
    with _store(shop) as store:
        refused_oem = store.actions(natural_key=too_long["followup_no"], flow="followups")[-1]
        refused_dms = store.actions(natural_key=bad["lead_no"], flow="leads")[-1]
    assert refused_oem.state == "failed" and "200" in (refused_oem.failure_reason or ""), refused_oem.failure_reason
    assert refused_dms.state == "failed" and "手机号格式不正确" in (refused_dms.failure_reason or ""), refused_dms.failure_reason

    third = _run(shop, "sync")
    assert third.returncode == 0, third.stdout + third.stderr
    assert len(admin.rows("oem", "followups")) == oem_before + len(waiting_followups) - 1  # nothing twice
    assert len(admin.rows("dms", "prospects")) == prospects_before + len(new)
    # the leads past the OEM's deadline with no follow-up anywhere, listed for a person (by the OEM's 已超时)
    book = max((shop / "out").glob("review-*.xlsx"), key=lambda p: p.stat().st_mtime)
    ws = load_workbook(book, read_only=True)["需人工-厂家线索建潜客"]
    listed = {r[0]: r[1] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert set(listed) == overdue and all("回访已超时" in why for why in listed.values())
    last = receiver.messages[-1]  # the message after the sync names them too (lead nos, no personal data)
    assert f"需人工处理 {len(overdue)} 条" in last["message"] and all(f"{no}（回访已超时（截止" in last["message"] for no in overdue), last
    assert_readable(last, load_settings(shop / "dealerbot.toml"), ("XL",))  # (the lead nos: the OEM's own numbers)
    assert not any(lead["name"] in last["message"] or lead["mobile"] in last["message"] for lead in leads)

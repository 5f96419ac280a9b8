"""Guarantees of the README that a wrong change could once break with every other default test
green, each pinned end to end against the real sandbox (docs/testing.md, "Deliberate breakages
and the tests that catch them", names the breakage each test catches)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from dealerbot.config import load_settings
from dealerbot.data import validate as v
from dealerbot.review.sheets import APPROVE, APPROVE_EDITED, SKIP
from dealerbot.running.runner import run_bot
from dealerbot.running.sync import sync
from dealerbot.sandbox.config import SandboxConfig
from dealerbot.sandbox.server import SandboxServer

from .conftest import PASSWORDS, Admin
from .test_rekey import (
    _cli,
    _config,
    approve,
    assert_written_as_planned,
    exported_pending,
    plan,
    read_both,
    rekey_process,
)

# -- the portal's pace ----------------------------------------------------------------------------

PACE_PER_MINUTE = 480  # [run] requests_per_minute: one request every 0.1275 s (with the 2% margin)
PACE_WINDOW_SECONDS = 10.0  # the sandbox counts its limit in windows this long ...
PACE_LIMIT = PACE_PER_MINUTE * PACE_WINDOW_SECONDS / 60  # ... allowing exactly the bot's pace: 80 a window


@pytest.mark.one_at_a_time("timing")  # the pace it measures: never beside another timing test (tests/conftest.py)
async def test_a_run_at_the_portals_exact_limit_stays_within_it_and_draws_no_429(settings, store, clean_sandbox):
    """The bot's configured pace equals the portal's limit: every window holds at most the limit
    (the sandbox's own count of the fullest window), the whole run keeps the pace, no 429."""
    assert PACE_LIMIT == int(PACE_LIMIT)
    clean_sandbox.behave("oem", rate_limit_per_minute=int(PACE_LIMIT), rate_limit_window_seconds=PACE_WINDOW_SECONDS)
    paced = settings.model_copy(update={"run": settings.run.model_copy(
        update={"requests_per_minute": PACE_PER_MINUTE, "rate_limit_pause_seconds": 1})})
    started = time.monotonic()
    result = await run_bot("oem-orders", paced, passwords=PASSWORDS)
    elapsed = time.monotonic() - started
    counters = clean_sandbox.counters("oem")
    assert result.ok, result.error
    assert result.counts["read"] == len(clean_sandbox.orders())
    assert counters["rate_limited"] == 0, counters  # not one refusal
    # The fullest window, as the portal counted it: at the limit, never over it.
    assert PACE_LIMIT * 0.75 <= counters["rate_window_peak"] <= PACE_LIMIT, counters
    # Nearly two windows' worth of requests, and the whole run kept the pace.
    reads = counters["detail_views"] + counters["api_requests"]
    assert reads > 1.5 * PACE_LIMIT
    assert elapsed >= (reads - 1) * 60 / PACE_PER_MINUTE, (elapsed, reads)


# -- a kill in the middle of an update ------------------------------------------------------------


async def test_killed_right_after_an_update_was_saved_then_rerun_updates_once_and_audits_once(
    read_store, settings, store, clean_sandbox, sandbox, tmp_path,
):
    """The status updates need no approval. The run is killed (SIGKILL) just after the DMS saved
    the first one, before the ledger knew; the rerun finds the contract holding the new values,
    records the save as the killed run's (the "submitted" mark), checks it, and saves nothing again."""
    (tmp_path / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sandbox.oem_url}"\n[dms]\nurl = "{sandbox.dms_url}"\n'
        f'[run]\nbackoff_seconds = 0.05\ntimeout_seconds = 15\n[rekey]\nconcurrency = 1\n', encoding="utf-8")
    read_store.copy_into(settings)
    plan(settings, store)
    updates = [a for a in store.actions(["approved"]) if a.kind == "update_contract"]
    assert len(updates) >= 2, updates

    killed = rekey_process(tmp_path, "rekey.after_submit:1")
    assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILL: nothing cleaned up
    [victim] = [a for a in map(store.action, (u.id for u in updates)) if a.state != "approved"]
    assert victim.kind == "update_contract" and victim.state == "in_progress" and victim.submitted
    saved = next(c for c in clean_sandbox.contracts() if c["contract_no"] == victim.contract_no)
    assert all(saved[f] == new for f, (_, new) in victim.changes.items())  # the DMS saved it, unrecorded
    assert not store.audit_rows(100, natural_key=victim.natural_key)

    again = rekey_process(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_written_as_planned(clean_sandbox, store, updates)
    after = next(c for c in clean_sandbox.contracts() if c["contract_no"] == victim.contract_no)
    assert after == saved  # not saved a second time (its DMS timestamp unchanged)
    rows = [r for r in store.audit_rows(1000, natural_key=victim.natural_key) if r["event"] == "update_contract"]
    assert len(rows) == 1, rows  # one update, recorded as the killed run's save
    assert "找到已保存的记录" in rows[0]["note"] and rows[0]["target"] == victim.contract_no
    assert rows[0]["new_values"] == {f: new for f, (_, new) in victim.changes.items()}
    for other in updates:
        if other.id != victim.id:
            assert [r["event"] for r in store.audit_rows(100, natural_key=other.natural_key)] == ["update_contract"]


# -- consent, end to end ----------------------------------------------------------------------------


@pytest.fixture
def small_sandbox() -> Iterator[tuple[SandboxServer, Admin]]:
    """A sandbox of its own with 50 orders (a full sync with everything approved stays short)."""
    with SandboxServer(SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=50, seed=11)) as sb:
        admin = Admin(sb)
        yield sb, admin
        admin.oem.close()
        admin.dms.close()


async def test_after_a_full_sync_with_everything_approved_no_dms_record_belongs_to_a_customer_without_consent(
    settings, store, small_sandbox,
):
    """Checked against the OEM's own consent flags (the sandbox's ground truth), not the ledger:
    no contract or customer the sync put into the DMS belongs to a person who did not consent,
    matched by ID number, or by mobile."""
    sb, truth = small_sandbox
    settings = load_settings(None, oem__url=sb.oem_url, dms__url=sb.dms_url, run__backoff_seconds=0.05,
                             run__timeout_seconds=15)
    oem_customers = truth.rows("oem", "customers")
    refusing = [c for c in oem_customers if c["consent"] != "已授权"]
    assert refusing and {c["consent"] for c in refusing} == {"未授权"}
    refusing_ids = {c["id_number"].upper() for c in refusing}
    refusing_mobiles = {c["mobile"] for c in refusing}
    orders = {o["order_no"]: o for o in truth.orders()}
    contracts_before = {c["contract_no"] for c in truth.contracts()}
    customers_before = {c["customer_no"] for c in truth.customers()}
    ordered_before = {c["oem_order_no"] for c in truth.contracts()}
    # Not vacuous: people without consent have orders the sync would otherwise create.
    held_back = [o for o in orders.values() if o["id_number"].upper() in refusing_ids
                 and o["order_no"] not in ordered_before and o["status"] != "已取消"]
    assert len(held_back) >= 3, held_back

    first = await sync(settings, passwords=PASSWORDS)
    assert first.ok, first.stopped or [r.error for r in first.runs]
    approve(store)  # every planned creation a person can approve as it stands
    written = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert written.ok and written.counts["verified"] > 0, (written.error, written.counts)

    dms_customers = {c["customer_no"]: c for c in truth.customers()}
    new_contracts = [c for c in truth.contracts() if c["contract_no"] not in contracts_before]
    new_customers = [c for no, c in dms_customers.items() if no not in customers_before]
    assert len(new_contracts) == written.counts["verified"] and new_customers

    def without_consent(id_number: str, mobile: str) -> bool:
        return id_number.upper() in refusing_ids or mobile in refusing_mobiles

    for c in new_contracts:
        order = orders[c["oem_order_no"]]
        person = dms_customers[c["customer_no"]]
        assert not without_consent(order["id_number"], order["mobile"]), (c["contract_no"], order["order_no"])
        assert not without_consent(person["id_number"], person["mobile"]), (c["contract_no"], person["customer_no"])
    for person in new_customers:
        assert not without_consent(person["id_number"], person["mobile"]), person["customer_no"]
    # The orders of people without consent: none in the DMS; the gate held back at least three
    # (the others were refused before it, e.g. for an unmapped model), listed with its reason.
    in_dms = {c["oem_order_no"] for c in truth.contracts()}
    assert not {o["order_no"] for o in held_back} & in_dms
    reasons = {no: r["reason"] for no, r in store.sync_state().items()}
    assert sum("未授权" in reasons.get(o["order_no"], "") for o in held_back) >= 3, reasons


# -- refused review rows are never applied --------------------------------------------------------


def spreadsheet_application() -> str:
    """LibreOffice's ``soffice``; fails (never skips) when it is missing: ./run.sh setup installs it."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.fail("LibreOffice is missing (no `soffice` on PATH): this test needs a real spreadsheet application "
                    "to save the review workbook; install Debian's libreoffice-calc-nogui (./run.sh setup does)")
    return soffice


def saved_by_a_spreadsheet_application(path: Path, tmp_path: Path) -> Path:
    """``path`` opened and saved again by LibreOffice (headless, its own profile in ``tmp_path``):
    the file a reviewer's spreadsheet application writes, not openpyxl's."""
    soffice = spreadsheet_application()
    out = tmp_path / "saved-by-libreoffice"
    done = subprocess.run(
        [soffice, "--headless", "--norestore", f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}",
         "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(out), str(path)],
        capture_output=True, text=True, timeout=180,
    )
    saved = out / path.name
    assert done.returncode == 0 and saved.exists(), done.stdout + done.stderr
    with zipfile.ZipFile(saved) as z:
        assert "LibreOffice" in z.read("docProps/app.xml").decode(), "not saved by LibreOffice"
    return saved


async def test_refused_review_rows_are_never_applied_through_a_workbook_saved_by_a_spreadsheet_application(
    settings, store, clean_sandbox, sandbox, tmp_path,
):
    """Every kind of problem the review's checks know, each in a row of its own, beside rows
    that are fine; the workbook saved by LibreOffice, imported with --apply-valid, then re-keyed.
    The ledger and the DMS's ground truth: the refused rows were neither approved nor written,
    the valid ones were, with their edited values."""
    spreadsheet_application()  # before anything else: a missing LibreOffice fails at once, named
    _config(tmp_path, sandbox)
    # One contract the OEM changed and the DMS did not: an update waiting for a person (a conflict).
    contract = next(c for c in clean_sandbox.contracts() if c["oem_order_no"] and c["color"] != "珍珠白")
    clean_sandbox.oem.patch(f"/__admin/orders/{contract['oem_order_no']}", json={"color": "珍珠白"}).raise_for_status()
    await read_both(settings)
    plan(settings, store)
    path = tmp_path / "review.xlsx"
    wb, ws, col, rows = exported_pending(store, path)

    def clean(r: int) -> bool:  # no value a spreadsheet would take for a formula
        return not any(str(ws.cell(r, c).value or "").startswith("=") for c in range(1, len(col) + 1))

    existing = [r for r in rows if ws.cell(r, col["客户编号"]).value != "新建" and clean(r)]
    new = [r for r in rows if ws.cell(r, col["客户编号"]).value == "新建" and clean(r)]
    [update] = [r for r in range(2, ws.max_row + 1) if ws.cell(r, col["厂家订单号"]).value == contract["oem_order_no"]]
    assert ws.cell(update, col["操作"]).value == "更新合同"
    bad_id = ws.cell(new[1], col["证件号码"]).value
    bad_id = bad_id[:-1] + ("0" if bad_id[-1] != "0" else "1")
    assert v.normalize_id_number("身份证", bad_id).issue is not None
    bad_vin = "LGXGX3A10TH000005"
    assert v.normalize_vin(bad_vin).issue.code == "vin_check_digit"

    # (row, decision, {header: value}, words the refusal must say)
    refused = [
        (existing[0], APPROVE_EDITED, {"VIN": bad_vin}, "VIN"),
        (existing[1], APPROVE_EDITED, {"DMS车型代码": "DMS-NOPE"}, "不是DMS车型代码"),
        (existing[2], APPROVE_EDITED, {"合同状态": "交车了"}, "不是DMS合同状态"),
        (existing[3], APPROVE_EDITED, {"车价": 0}, "不是大于0的金额"),
        (existing[4], APPROVE_EDITED, {"定金": ws.cell(existing[4], col["车价"]).value + 1}, "不能大于车价"),
        (existing[5], APPROVE_EDITED, {"定金": -500}, "不是有效金额"),
        (existing[6], APPROVE_EDITED, {"车价": "十万元"}, "无法解析价格"),
        (existing[7], APPROVE_EDITED, {"交车日期": "2026-02-30"}, "日期无效"),
        (existing[8], APPROVE_EDITED, {"交车日期": "下周三"}, "无法解析日期"),
        (existing[9], APPROVE_EDITED, {"颜色": None}, "颜色：不能为空"),
        (existing[10], APPROVE_EDITED, {"客户编号": "KH999999"}, "不在DMS客户中"),
        (existing[11], APPROVE_EDITED, {"客户编号": None}, "客户未确定"),
        (existing[12], APPROVE_EDITED, {"手机号": "13900001111"}, "的资料不在这里修改"),
        (existing[13], APPROVE, {"颜色": "曜石黑"}, "审核选的是“同意”"),
        (existing[14], "可以", {}, "审核应为"),
        (existing[15], APPROVE, {"行键": ws.cell(existing[16], col["行键"]).value}, "不对应这个订单"),
        (existing[17], APPROVE, {"校验和": "0000000000000000"}, "导出后数据已变化"),
        (new[0], APPROVE_EDITED, {"手机号": "1381234567"}, "不是11位手机号"),
        (new[1], APPROVE_EDITED, {"证件号码": bad_id}, "校验码"),
        (new[2], APPROVE_EDITED, {"证件号码": "身份证丢失"}, "不是有效证件号码"),
        (new[3], APPROVE_EDITED, {"客户姓名": None}, "客户姓名：不能为空"),
        (new[4], APPROVE_EDITED, {"客户姓名": "欧阳" * 16}, "超过30个字"),
        (new[5], APPROVE_EDITED, {"地址": None}, "地址：不能为空"),
        (update, APPROVE_EDITED, {"客户姓名": "张三"}, "更新合同时不能修改客户"),
    ]
    plain, edited, skipped, new_person = existing[16], existing[18], existing[19], new[6]
    fine = [
        (plain, APPROVE, {}),
        (edited, APPROVE_EDITED, {"颜色": "曜石黑", "车价": 123456, "定金": 5000, "交车日期": date(2026, 12, 24),
                                  "审核备注": "客户改选黑色，特价"}),
        (new_person, APPROVE_EDITED, {"手机号": "139 1234 5678", "地址": "浙江省杭州市西湖区文三路90号"}),
        (skipped, SKIP, {}),
    ]
    for r, decision, cells, *_ in refused + fine:
        ws.cell(r, col["审核"]).value = decision
        for header, value in cells.items():
            ws.cell(r, col[header]).value = value
    wb.save(path)
    order = {r: ws.cell(r, col["厂家订单号"]).value for r, *_ in refused + fine}
    saved = saved_by_a_spreadsheet_application(path, tmp_path)
    contracts_before = clean_sandbox.contracts()
    customers_before = clean_sandbox.customers()

    imported = _cli(["import-review", str(saved), "--apply-valid", "--reviewer", "王会计"], tmp_path)
    assert imported.returncode == 2, imported.stdout + imported.stderr
    assert "同意 1 条，修改后同意 2 条，跳过 1 条" in imported.stdout, imported.stdout + imported.stderr
    said = {int(m.group(1)): m.group(2) for m in re.finditer(r"第 (\d+) 行(.*?)(?=拒绝|\Z)",
                                                             imported.stderr.replace("\n", ""))}
    assert sorted(said) == sorted(r for r, *_ in refused), imported.stderr
    for r, _, _, words in refused:
        assert order[r] in said[r] and words in said[r], (r, words, said[r])

    result = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert result.ok and result.counts["failed"] == 0, (result.error, result.counts)

    # The ledger: no refused row was approved, skipped or written; each valid one was.
    decided = {r["natural_key"] for r in store.audit_rows(10_000) if r["event"] in ("approve", "approve_edited", "skip")}
    for r, *_ in refused:
        assert store.actions(natural_key=order[r])[-1].state == "planned", (r, order[r])
        assert order[r] not in decided, (r, order[r])
    assert [store.actions(natural_key=order[r])[-1].state for r in (plain, edited, new_person, skipped)] == [
        "verified", "verified", "verified", "skipped"]
    # The DMS: no contract for a refused row, the refused update not made, the valid ones as edited.
    after = {c["oem_order_no"]: c for c in clean_sandbox.contracts()}
    assert not {order[r] for r, *_ in refused if r != update} & set(after)
    assert after[contract["oem_order_no"]] == contract
    assert order[skipped] not in after and order[plain] in after
    e = after[order[edited]]
    assert (e["color"], e["price"], e["deposit"], e["delivery_date"]) == ("曜石黑", 123456.0, 5000.0, "2026-12-24")
    made = [c for c in clean_sandbox.customers() if c not in customers_before]
    assert [(c["customer_no"], c["mobile"], c["address"]) for c in made] == [
        (after[order[new_person]]["customer_no"], "13912345678", "浙江省杭州市西湖区文三路90号")]
    assert {c["contract_no"] for c in contracts_before} <= {c["contract_no"] for c in after.values()}

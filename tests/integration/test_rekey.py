"""Re-keying into the sandbox DMS with real Chromium, checked through the sandbox's ground truth:
exactly the expected contracts and customers, nothing written twice, nothing lost after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from openpyxl import load_workbook

from dealerbot.data.dictionary import load_dictionary
from dealerbot.data.records import OEM_ORDER
from dealerbot.rekey.ledger import Policy
from dealerbot.rekey.reconcile import reconcile
from dealerbot.review.export import export_runs, latest_runs
from dealerbot.review.sheets import APPROVE, APPROVE_EDITED, PENDING_HEADERS, PENDING_TITLE, SKIP, UNRESOLVED_TITLE
from dealerbot.running.runner import run_bot
from dealerbot.running.sync import READ_BOTS, sync
from dealerbot.store import Store

from .conftest import DMS_PASSWORD, PASSWORDS

ROOT = Path(__file__).resolve().parents[2]


async def read_both(settings) -> None:
    for bot in READ_BOTS:
        result = await run_bot(bot, settings, passwords=PASSWORDS)
        assert result.ok, (bot, result.error)


def plan(settings, store, policy: Policy | None = None):
    return reconcile(store, load_dictionary(settings.dictionary_path), policy or settings.rekey.policy())


def approve(store: Store, limit: int | None = None, kinds=("create_contract",)) -> list:
    """What a reviewer's 同意 does, for the first ``limit`` planned actions of ``kinds``."""
    chosen = [a for a in store.actions(["planned"]) if a.kind in kinds and a.customer.mode != "ambiguous"][:limit]
    assert not store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in chosen], "测试审核员")
    return chosen


def by_order(contracts: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in contracts:
        if c["oem_order_no"]:
            out.setdefault(c["oem_order_no"], []).append(c)
    return out


def assert_written_as_planned(admin, store: Store, actions) -> None:
    """Every verified action is in the DMS once, with exactly the planned values."""
    contracts = by_order(admin.contracts())
    customers = {c["customer_no"]: c for c in admin.customers()}
    for a in actions:
        a = store.action(a.id)
        assert a.state == "verified", (a.natural_key, a.state, a.failure_reason)
        [c] = contracts[a.natural_key]  # exactly one contract for the order
        assert c["contract_no"] == a.contract_no
        assert {f: c[f] for f in ("model_code", "color", "vin", "status")} == {
            f: a.new_values[f] for f in ("model_code", "color", "vin", "status")}
        assert f"{c['price']:.2f}" == a.new_values["price"] and f"{c['deposit']:.2f}" == a.new_values["deposit"]
        assert c["delivery_date"] == a.new_values["delivery_date"]
        if a.kind == "create_contract":
            expected = a.result_customer_no or a.customer.customer_no
            assert c["customer_no"] == expected
            if a.customer.mode == "new":
                cust = customers[expected]
                assert {f: cust[f] for f in ("name", "mobile", "id_number", "address")} == a.customer.values


async def test_sync_writes_exactly_the_expected_contracts_and_a_second_sync_writes_nothing(settings, store, clean_sandbox):
    truth_orders = {o["order_no"]: o for o in clean_sandbox.orders()}
    consent = {c["id_number"]: c["consent"] for c in clean_sandbox.rows("oem", "customers")}
    before = by_order(clean_sandbox.contracts())
    customers_before = clean_sandbox.customers()

    first = await sync(settings, passwords=PASSWORDS)
    assert first.ok, first.stopped or [r.error for r in first.runs]
    # Status updates needed no approval: already written and read back.
    updates = [a for a in store.actions() if a.kind == "update_contract"]
    assert updates and all(a.state == "verified" for a in updates)
    assert_written_as_planned(clean_sandbox, store, updates)
    # Creations wait for a person.
    waiting = [a for a in store.actions(["planned"]) if a.kind == "create_contract"]
    assert waiting and first.left.awaiting_approval >= len(waiting)
    assert by_order(clean_sandbox.contracts()).keys() == before.keys()

    chosen = approve(store)
    written = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert written.ok, written.error
    assert written.counts["verified"] == len(chosen) and written.counts["failed"] == 0
    assert_written_as_planned(clean_sandbox, store, chosen)
    # One customer per new person, however many of their orders were approved.
    new_people = {a.customer.values["id_number"] for a in chosen if a.customer.mode == "new"}
    assert written.counts["customers_created"] == len(new_people) > 0

    # Independent of the ledger: each order is in the DMS at most once, every consenting,
    # mapped, valid order is there now, and every other order is listed with a reason.
    after = by_order(clean_sandbox.contracts())
    assert all(len(cs) == 1 for cs in after.values())
    new_ids = Counter(c["id_number"] for c in clean_sandbox.customers()) - Counter(c["id_number"] for c in customers_before)
    assert all(n == 1 for n in new_ids.values()) and sum(new_ids.values()) == written.counts["customers_created"]
    path = settings.path("out") / "review.xlsx"
    export_runs(store, latest_runs(store), path, {"dms-rekey": ()} | _entities())
    wb = load_workbook(path, read_only=True)
    listed = {r[PENDING_HEADERS.index("厂家订单号")] for r in wb[PENDING_TITLE].iter_rows(min_row=2, values_only=True)}
    listed |= {r[0] for r in wb[UNRESOLVED_TITLE].iter_rows(min_row=2, values_only=True)}
    unresolved_headers = [c.value for c in next(wb[UNRESOLVED_TITLE].iter_rows(max_row=1))]
    reason_col, remedy_col = unresolved_headers.index("原因"), unresolved_headers.index("处理方式")
    reasons = {r[0]: r[reason_col] for r in wb[UNRESOLVED_TITLE].iter_rows(min_row=2, values_only=True)}
    remedies = {r[0]: r[remedy_col] for r in wb[UNRESOLVED_TITLE].iter_rows(min_row=2, values_only=True)}
    rejected_at_read = {r["record_key"] for r in store.iter_open_rejects(OEM_ORDER)}
    for no, order in truth_orders.items():
        if no in after or (order["status"] == "已取消" and no not in before):
            continue
        assert no in listed, f"{no} is neither in the DMS nor listed for review"
        if no in reasons and no not in rejected_at_read:
            if order["model_code"] == "EV9-AWD-LTD":
                assert "未映射的车型代码 EV9-AWD-LTD" in reasons[no] and remedies[no].startswith("请管理员")
            elif consent.get(order["id_number"]) == "未授权":
                assert "未授权" in reasons[no] and remedies[no].startswith("无需处理")
    assert any("未映射的车型代码" in r for r in reasons.values())
    assert any("未授权" in r for r in reasons.values())

    # A second sync finds everything in place: no write, the DMS unchanged.
    audit_before = len(store.audit_rows(10_000))
    contracts_before = clean_sandbox.contracts()
    second = await sync(settings, passwords=PASSWORDS)
    assert second.ok
    assert second.plan.planned == 0 and not second.plan.ready
    assert all(r.bot != "dms-rekey" for r in second.runs)
    assert len(store.audit_rows(10_000)) == audit_before
    assert clean_sandbox.contracts() == contracts_before


def _entities():
    from dealerbot.running.registry import entity_of_bots

    return entity_of_bots()


def exported_pending(store: Store, path: Path):
    """Export the review workbook to ``path``; its 待处理 sheet (editable), the column numbers by
    header, and the rows of new contracts whose customer is decided."""
    export_runs(store, latest_runs(store), path, _entities())
    wb = load_workbook(path)
    ws = wb[PENDING_TITLE]
    col = {h: i + 1 for i, h in enumerate(PENDING_HEADERS)}
    rows = [r for r in range(2, ws.max_row + 1) if ws.cell(r, col["操作"]).value == "新建合同"
            and ws.cell(r, col["客户编号"]).value]
    return wb, ws, col, rows


def _config(tmp_path: Path, sandbox) -> None:
    (tmp_path / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sandbox.oem_url}"\n[dms]\nurl = "{sandbox.dms_url}"\n'
        f'[run]\nbackoff_seconds = 0.05\ntimeout_seconds = 15\n[rekey]\nconcurrency = 2\n',
        encoding="utf-8",
    )


def rekey_process(cwd: Path, failpoint: str | None = None, bot: str = "dms-rekey") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, COLUMNS="160", NO_COLOR="1")
    if failpoint:
        env["DEALERBOT_FAILPOINTS"] = failpoint
    return subprocess.run([sys.executable, "-m", "dealerbot.cli", "run", bot], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("point", [
    pytest.param("rekey.before_submit:3", marks=pytest.mark.slow),     # marked "submitted", nothing sent yet
    "rekey.after_submit:3",      # the DMS saved it, the ledger does not know
    pytest.param("rekey.before_read_back:2", marks=pytest.mark.slow),  # recorded as written, not yet checked
    "rekey.after_customer:1",    # a new customer saved, not recorded
])
async def test_killed_at_any_step_then_rerun_no_duplicate_nothing_missing(
    read_store, point, settings, store, clean_sandbox, sandbox, tmp_path,
):
    _config(tmp_path, sandbox)
    read_store.copy_into(settings)
    plan(settings, store)
    news = [a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.customer.mode == "new"][:3]
    olds = [a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.customer.mode == "existing"][:3]
    chosen = news + olds
    assert len(chosen) == 6
    assert not store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in chosen], "t")
    customers_before = len(clean_sandbox.customers())

    killed = rekey_process(tmp_path, point)
    assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILL: nothing cleaned up
    assert f"failpoint {point.split(':')[0]}" in killed.stderr
    half = [store.action(a.id).state for a in chosen]
    assert "verified" not in half or half.count("verified") < len(chosen)

    again = rekey_process(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_written_as_planned(clean_sandbox, store, chosen)
    assert len(clean_sandbox.customers()) == customers_before + len(news)  # each new customer once
    if point.startswith("rekey.after_submit"):
        found = [r for r in store.audit_rows(100) if "找到已保存的记录" in r["note"]]
        assert len(found) == 1  # the contract saved before the kill was found, not keyed again


async def test_an_edited_workbook_writes_the_edited_values_and_skips_what_was_skipped(
    read_store, settings, store, clean_sandbox, tmp_path,
):
    from dealerbot.review.sheets import apply_review, read_review

    read_store.copy_into(settings)
    plan(settings, store)
    path = tmp_path / "review.xlsx"
    wb, ws, col, rows = exported_pending(store, path)
    edited, skipped, plain = rows[0], rows[1], rows[2]
    ws.cell(edited, col["审核"]).value = APPROVE_EDITED
    ws.cell(edited, col["颜色"]).value = "曜石黑"
    ws.cell(edited, col["车价"]).value = 123456
    ws.cell(edited, col["审核备注"]).value = "客户改选黑色，特价"
    ws.cell(skipped, col["审核"]).value = SKIP
    ws.cell(plain, col["审核"]).value = APPROVE
    wb.save(path)
    key = {r: ws.cell(r, col["厂家订单号"]).value for r in (edited, skipped, plain)}

    review = read_review(path, store, load_dictionary(settings.dictionary_path))
    assert not review.problems, review.problems
    apply_review(store, review, "王会计")
    result = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert result.ok and result.counts["failed"] == 0, (result.error, result.counts)
    assert [store.actions(natural_key=key[r])[-1].state for r in (edited, skipped, plain)] == ["verified", "skipped", "verified"]
    contracts = by_order(clean_sandbox.contracts())
    [c] = contracts[key[edited]]
    assert c["color"] == "曜石黑" and c["price"] == 123456.0
    assert key[plain] in contracts and key[skipped] not in contracts
    decision = [r for r in store.audit_rows(50) if r["event"] == "approve_edited"]
    assert decision and decision[0]["actor"] == "王会计" and decision[0]["new_values"]["color"] == "曜石黑"
    assert decision[0]["note"] == "客户改选黑色，特价"
    # The skipped one stays skipped while its data is unchanged; the edited one is not "corrected"
    # back to the OEM's colour by the next reconciliation (the DMS now knows the contract).
    assert (await run_bot("dms-contracts", settings, passwords=PASSWORDS)).ok
    report = plan(settings, store)
    assert [a.state for a in store.actions(natural_key=key[skipped])][-1] == "skipped"
    assert next(o for o in report.outcomes if o.order_no == key[edited]).reconcile_class == "in_sync"
    assert store.actions(natural_key=key[edited])[-1].state == "verified"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "dealerbot.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


async def test_stale_foreign_damaged_and_invalid_workbooks_are_refused_with_nothing_applied(
    read_store, settings, store, clean_sandbox, sandbox, tmp_path,
):
    _config(tmp_path, sandbox)
    read_store.copy_into(settings)
    plan(settings, store)
    path = tmp_path / "review.xlsx"
    wb, ws, col, rows = exported_pending(store, path)
    stale, fine = rows[0], rows[1]
    for r in (stale, fine):
        ws.cell(r, col["审核"]).value = APPROVE
    wb.save(path)
    planned_before = {a.id: a.state for a in store.actions()}

    # The OEM changes the order after the export: its row no longer matches the store.
    stale_no = ws.cell(stale, col["厂家订单号"]).value
    clean_sandbox.oem.patch(f"/__admin/orders/{stale_no}", json={"color": "赤焰红"}).raise_for_status()
    assert (await run_bot("oem-orders", settings, passwords=PASSWORDS)).ok
    plan(settings, store)
    planned_before = {a.id: a.state for a in store.actions()}

    refused = _cli(["import-review", str(path)], tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"第 {stale} 行（订单 {stale_no}）" in refused.stderr and "导出后数据已变化" in refused.stderr
    assert "未导入任何内容" in refused.stderr
    assert {a.id: a.state for a in store.actions()} == planned_before  # nothing applied

    partly = _cli(["import-review", str(path), "--apply-valid"], tmp_path)
    assert partly.returncode == 2 and "同意 1 条" in partly.stdout
    fine_no = ws.cell(fine, col["厂家订单号"]).value
    assert [a.state for a in store.actions(natural_key=fine_no)][-1] == "approved"

    # An edited value the DMS would refuse is named with its row and field.
    wb = load_workbook(path)
    ws = wb[PENDING_TITLE]
    other = rows[2]
    ws.cell(other, col["审核"]).value = APPROVE_EDITED
    ws.cell(other, col["VIN"]).value = "LGXGX3A10TH000005"  # a wrong check digit
    for r in (stale, fine):
        ws.cell(r, col["审核"]).value = None
    wb.save(path)
    bad_vin = _cli(["import-review", str(path)], tmp_path)
    assert bad_vin.returncode == 2 and f"第 {other} 行" in bad_vin.stderr and "VIN" in bad_vin.stderr

    # Approved but edited without saying so: refused, explained.
    ws.cell(other, col["审核"]).value = APPROVE
    ws.cell(other, col["VIN"]).value = None
    ws.cell(other, col["颜色"]).value = "曜石黑"
    wb.save(path)
    unclear = _cli(["import-review", str(path)], tmp_path)
    assert unclear.returncode == 2 and "修改后同意" in unclear.stderr

    # Not dealerbot's, damaged, or its layout changed: refused as a whole.
    from openpyxl import Workbook

    foreign = tmp_path / "foreign.xlsx"
    Workbook().save(foreign)
    damaged = tmp_path / "damaged.xlsx"
    damaged.write_bytes(path.read_bytes()[:2000])
    moved = tmp_path / "moved.xlsx"
    ws.insert_cols(3)
    wb.save(moved)
    for file, words in ((foreign, "不是 dealerbot"), (damaged, "损坏"), (moved, "表头被改动")):
        result = _cli(["import-review", str(file)], tmp_path)
        assert result.returncode == 2 and words in result.stderr, (file, result.stderr)
        assert "Traceback" not in result.stderr
    assert [a.state for a in store.actions(natural_key=fine_no)][-1] == "approved"
    assert {a.id: a.state for a in store.actions() if a.natural_key != fine_no} == {
        k: v for k, v in planned_before.items() if store.action(k).natural_key != fine_no}


async def test_a_dms_refusal_fails_that_record_only_and_is_listed(read_store, settings, store, clean_sandbox):
    read_store.copy_into(settings)
    plan(settings, store)
    chosen = [a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.new_values["vin"]
              and a.customer.mode == "existing"][:4]
    assert not store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in chosen], "t")
    # A clerk keys a contract with the first order's VIN before the bot gets to it.
    victim = chosen[0]
    clean_sandbox.dms.post("/__admin/contracts", json={
        "customer_no": victim.customer.customer_no, "model_code": victim.new_values["model_code"], "color": "白",
        "vin": victim.new_values["vin"], "price": "100000", "oem_order_no": "", "status": "待配车",
    }).raise_for_status()
    result = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert result.ok, result.error  # a refused record is not a failed run
    assert result.counts["failed"] == 1
    assert [store.action(a.id).state for a in chosen[1:]] == ["verified"] * 3
    failed = store.action(victim.id)
    assert failed.state == "failed" and "该VIN已存在于合同" in failed.failure_reason
    assert failed.evidence_dir and any(Path(failed.evidence_dir).glob("*screenshot.png"))
    # The next review workbook shows it, with the DMS's reason, for a person to decide.
    plan(settings, store)
    path = settings.path("out") / "after.xlsx"
    export_runs(store, latest_runs(store), path, _entities())
    rows = list(load_workbook(path, read_only=True)[PENDING_TITLE].iter_rows(min_row=2, values_only=True))
    row = next(r for r in rows if r[PENDING_HEADERS.index("厂家订单号")] == victim.natural_key)
    assert "该VIN已存在于合同" in row[-1] and row[PENDING_HEADERS.index("状态")] == "失败"


async def test_a_slow_dms_save_is_never_submitted_twice(read_store, settings, store, clean_sandbox):
    read_store.copy_into(settings)
    plan(settings, store)
    chosen = approve(store, 3)
    clean_sandbox.behave("dms", save_delay_ms=4000)  # saved at once, answered after 4 s
    impatient = settings.model_copy(update={"run": settings.run.model_copy(update={"timeout_seconds": 1.5})})
    result = await run_bot("dms-rekey", impatient, passwords=PASSWORDS)
    clean_sandbox.behave("dms", save_delay_ms=0)
    assert result.ok, result.error
    assert_written_as_planned(clean_sandbox, store, chosen)  # one contract each, no second submit
    assert result.counts["found"] >= 1  # no answer in time: searched, found, checked


async def test_dry_run_fills_every_form_and_saves_nothing(read_store, settings, store, clean_sandbox):
    read_store.copy_into(settings)
    plan(settings, store)
    approve(store, 4)
    # One with a model the DMS's dropdown does not offer: the dry run says it would fail, and goes on.
    odd = next(a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.customer.mode == "existing")
    assert not store.review([{"id": odd.id, "checksum": odd.stored_checksum, "decision": "approve",
                              "new_values": dict(odd.new_values, model_code="DMS-NOPE")}], "t")
    ready = store.actions(["approved"])  # those, and the status updates that need no approval
    contracts, customers = clean_sandbox.contracts(), clean_sandbox.customers()
    result = await run_bot("dms-rekey", settings, passwords=PASSWORDS, options={"dry_run": True})
    assert result.ok, result.error
    assert result.counts["rehearsed"] == len(ready) - 1 and result.counts["failed"] == 1
    assert result.counts["done"] == len(ready)
    log = (result.run_dir / "run.log").read_text(encoding="utf-8")
    assert f"{odd.natural_key} would fail" in log and "DMS-NOPE" in log
    assert clean_sandbox.contracts() == contracts and clean_sandbox.customers() == customers
    assert {store.action(a.id).state for a in ready} == {"approved"}
    assert not store.audit_rows(100, run_id=result.run_id)


async def test_status_changes_flow_staff_edits_are_kept_and_cancellation_waits(read_store, settings, store, clean_sandbox):
    read_store.copy_into(settings)
    plan(settings, store)
    assert (await run_bot("dms-rekey", settings, passwords=PASSWORDS)).ok  # the automatic updates
    synced = {c["oem_order_no"]: c for c in clean_sandbox.contracts() if c["oem_order_no"]}
    truth = {o["order_no"]: o for o in clean_sandbox.orders()}
    moving = [no for no, c in synced.items() if truth[no]["status"] == "已配车" and c["status"] == "已配车"][:2]
    cancelled = next(no for no, c in synced.items() if truth[no]["status"] in ("在途", "已到店") and no not in moving)
    for no in moving:
        clean_sandbox.oem.patch(f"/__admin/orders/{no}", json={"status": "在途"}).raise_for_status()
    clean_sandbox.oem.patch(f"/__admin/orders/{cancelled}", json={"status": "已取消"}).raise_for_status()
    assert (await run_bot("oem-orders", settings, passwords=PASSWORDS)).ok
    report = plan(settings, store)
    updates = {a.natural_key: a for a in store.actions(["approved"])}
    assert set(moving) <= set(updates) and updates[moving[0]].changes == {"status": ("已配车", "运输中")}
    cancel = [a for a in store.actions(["planned"]) if a.natural_key == cancelled]
    assert cancel and cancel[0].kind == "cancel_contract" and report.counts["update"] >= 3
    # A clerk moves one contract on in the DMS after the plan was made: not overwritten.
    staff = synced[moving[1]]["contract_no"]
    clean_sandbox.dms.patch(f"/__admin/contracts/{staff}", json={"status": "待交车"}).raise_for_status()
    approve(store, kinds=("cancel_contract",))
    result = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    after = {c["oem_order_no"]: c for c in clean_sandbox.contracts() if c["oem_order_no"]}
    assert after[moving[0]]["status"] == "运输中"
    assert after[moving[1]]["status"] == "待交车"
    assert store.actions(natural_key=moving[1])[-1].failure_code == "dms_changed"
    # Cancelling is not enabled by default: approved, but not written.
    assert after[cancelled]["status"] != "已取消"
    assert store.actions(natural_key=cancelled)[-1].state == "approved"
    enabled = settings.model_copy(update={"rekey": settings.rekey.model_copy(
        update={"enabled": ["create_contract", "update_contract", "cancel_contract"]})})
    assert (await run_bot("dms-rekey", enabled, passwords=PASSWORDS)).ok
    assert {c["oem_order_no"]: c for c in clean_sandbox.contracts()}[cancelled]["status"] == "已取消"


async def test_a_stop_request_lets_the_re_key_finish_its_current_record_and_nothing_is_half_done(
    read_store, settings, store, clean_sandbox,
):
    """What a SIGTERM to the scheduler does to a re-key in progress."""
    import asyncio

    read_store.copy_into(settings)
    plan(settings, store)
    chosen = approve(store, 12)
    stop = asyncio.Event()

    def stop_after_the_first(counts: dict[str, int]) -> None:
        if counts.get("verified", 0) >= 1:
            stop.set()

    first = await run_bot("dms-rekey", settings, passwords=PASSWORDS, on_progress=stop_after_the_first, stop=stop)
    assert first.status == "interrupted" and "当前记录已完成" in first.error
    states = Counter(store.action(a.id).state for a in chosen)
    assert set(states) <= {"verified", "approved"}, states  # none left in progress, none failed
    assert 1 <= states["verified"] < len(chosen)
    second = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert second.ok, second.error
    assert_written_as_planned(clean_sandbox, store, chosen)  # all once, nothing doubled


def _approve_shared_customers(store: Store) -> list:
    """Approve every planned creation of a new customer who has several orders (the re-key
    creates the customer for the first and uses it for the others), and three of existing
    customers: what a reviewer approving a morning's orders does."""
    planned = [a for a in store.actions(["planned"]) if a.kind == "create_contract"]
    people = Counter(a.customer.values["id_number"] for a in planned if a.customer.mode == "new")
    shared = [a for a in planned if a.customer.mode == "new" and people[a.customer.values["id_number"]] > 1]
    chosen = shared + [a for a in planned if a.customer.mode == "existing"][:3]
    assert len({a.customer.values["id_number"] for a in shared}) >= 3, "the data set has too few shared customers"
    assert not store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in chosen], "测试审核员")
    return chosen


def _wait_for(check, what: str, timeout: float = 180.0) -> None:
    import time

    until = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < until, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("second", [
    ["reconcile"],
    pytest.param(["sync"], marks=pytest.mark.slow),  # the timetable's daily sync firing meanwhile
])
async def test_a_plan_made_while_the_re_key_writes_waits_and_every_approved_action_is_written(
    read_store, second, settings, store, clean_sandbox, sandbox, tmp_path,
):
    """Issue 20: a reconcile (or a sync) started while `run dms-rekey` writes, at the moment the
    re-key has just created a customer with more approved orders to come, once dropped those
    approvals (作废, back to 待审核) and the re-key skipped them. Now it waits for the re-key."""
    (tmp_path / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sandbox.oem_url}"\n[dms]\nurl = "{sandbox.dms_url}"\n'
        f'[run]\nbackoff_seconds = 0.05\ntimeout_seconds = 15\n[rekey]\nconcurrency = 1\n',
        encoding="utf-8",
    )
    read_store.copy_into(settings)
    plan(settings, store)
    chosen = _approve_shared_customers(store)
    customers_before = len(clean_sandbox.customers())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, DEALERBOT_OEM_PASSWORD=PASSWORDS["oem"], COLUMNS="200",
               NO_COLOR="1", PYTHONUNBUFFERED="1")
    resume = tmp_path / "resume"
    logs = {name: (tmp_path / f"{name}.out").open("w+", encoding="utf-8") for name in ("rekey", "second")}
    cli = [sys.executable, "-m", "dealerbot.cli"]
    rekey = subprocess.Popen(
        [*cli, "run", "dms-rekey"], cwd=tmp_path, stdout=logs["rekey"], stderr=subprocess.STDOUT,
        env={**env, "DEALERBOT_FAILPOINTS": "rekey.customer_recorded:1:pause", "DEALERBOT_FAILPOINTS_RESUME": str(resume)},
    )
    other = None
    try:
        out = lambda name: (tmp_path / f"{name}.out").read_text(encoding="utf-8")  # noqa: E731
        _wait_for(lambda: "failpoint rekey.customer_recorded: paused" in out("rekey") or rekey.poll() is not None,
                  "the re-key to create its first customer")
        assert rekey.poll() is None, out("rekey")
        # The re-key has created a customer, recorded it, and has more approved orders of that person to come.
        other = subprocess.Popen([*cli, *second], cwd=tmp_path, stdout=logs["second"], stderr=subprocess.STDOUT, env=env)
        _wait_for(lambda: "waiting for dms-rekey" in out("second") or other.poll() is not None,
                  f"{second[0]} to plan or to wait")
        resume.touch()
        assert rekey.wait(300) == 0, out("rekey")
        assert other.wait(300) == 0, out("second")
    finally:
        resume.touch()
        for p in (rekey, other):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for f in logs.values():
            f.close()
    # Every approved action was written, once, as approved; none went back to 待审核.
    assert_written_as_planned(clean_sandbox, store, chosen)
    assert not [a for a in store.actions(["planned", "superseded"]) if a.natural_key in {c.natural_key for c in chosen}]
    people = {a.customer.values["id_number"] for a in chosen if a.customer.mode == "new"}
    assert len(clean_sandbox.customers()) == customers_before + len(people)  # each new customer once
    contracts = by_order(clean_sandbox.contracts())
    assert all(len(contracts[a.natural_key]) == 1 for a in chosen)
    assert "waiting for dms-rekey" in out("second")  # it waited, and said so


async def test_a_dms_changed_overnight_stops_the_re_key_before_any_write_and_the_next_run_writes_once(
    read_store, settings, store, clean_sandbox, monkeypatch,
):
    """Issue 23, the canary before writing: the DMS's contract form changed overnight (two ids
    renamed). The re-key run (and a dry run) ends "portal_changed" before touching anything: no
    contract, no customer, the ledger as it was, the screen and the missing names on the
    console's 状态 page and in the integrator's message, plain Chinese in the operator's (the
    same miss not told the integrator twice). Switched back, the next run writes each once."""
    import httpx

    from .test_console import CONSOLE_PASSWORD, _login, serving
    from .test_scheduler import Receiver

    read_store.copy_into(settings)
    plan(settings, store)
    chosen = approve(store, 3)
    operator, integrator = Receiver(), Receiver()
    settings.notify.urls, settings.notify.integrator_urls = [operator.url], [integrator.url]
    ledger = {a.id: (a.state, a.run_id) for a in store.actions()}
    contracts, customers = clean_sandbox.contracts(), clean_sandbox.customers()
    clean_sandbox.behave("dms", dms_form_changed=True)
    try:
        changed = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
        assert changed.status == "portal_changed", (changed.status, changed.error)
        assert changed.changed["screen"] == "contract_new"
        assert changed.changed["missing"] == ["contract_form.customer_no", "contract_form.form"]
        assert clean_sandbox.contracts() == contracts and clean_sandbox.customers() == customers
        assert {a.id: (a.state, a.run_id) for a in store.actions()} == ledger  # nothing claimed
        assert not store.audit_rows(100, run_id=changed.run_id)
        assert any(p.suffix == ".png" for p in changed.evidence)  # the changed screen, masked
        [said] = operator.messages
        assert "门户页面改版" in said["title"] and "「新建合同」页面有 2 项找不到，本次没有写入任何数据" in said["message"]
        assert "contract_form" not in said["message"]  # the operator reads Chinese, not selector names
        [told] = integrator.messages
        assert "contract_form.customer_no、contract_form.form" in told["message"] and "contract_new" in told["message"]
        # A dry run would type into the forms: the canary runs first there too; the same miss
        # again: the operator is told (the run failed), the integrator not twice.
        dry = await run_bot("dms-rekey", settings, passwords=PASSWORDS, options={"dry_run": True})
        assert dry.status == "portal_changed" and dry.changed["news"] is False
        assert len(operator.messages) == 2 and len(integrator.messages) == 1
        monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
        with serving(settings) as (url, _), httpx.Client(base_url=url, timeout=30) as web:
            assert _login(web).status_code == 303
            health = web.get("/health").text
        section = health[health.index('id="portal-dms"'):]
        section = section[:section.index("</section>")]
        assert "门户已改版" in section and "新建合同" in section
        assert "contract_form.customer_no、contract_form.form" in section
    finally:
        clean_sandbox.behave("dms", dms_form_changed=False)
        operator.close()
        integrator.close()
    fixed = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert fixed.ok, fixed.error
    assert_written_as_planned(clean_sandbox, store, chosen)  # each once
    state = json.loads((settings.path("state") / "canary-dms.json").read_text(encoding="utf-8"))
    assert state["ok"] is True and state["run_id"] == fixed.run_id and state["checked"] == ["contract_new", "customer_new"]

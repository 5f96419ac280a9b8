"""Rolling back a re-key run (``dealerbot rollback --run ID``, the console's 回滚此次写入), in real
Chromium against the sandbox, checked through the DMS's admin ground truth: a run that wrote
with a wrong dictionary entry, rolled back (plan -> approve -> write), leaves the DMS as it was."""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook
from typer.testing import CliRunner

from dealerbot.cli import app
from dealerbot.data.dictionary import load_dictionary
from dealerbot.rekey.reconcile import reconcile
from dealerbot.review.export import export_runs, latest_runs
from dealerbot.review.sheets import APPROVE, PENDING_HEADERS, PENDING_TITLE, apply_review, read_review
from dealerbot.running.runner import run_bot
from dealerbot.store import Store

from .conftest import PASSWORDS
from .test_rekey import _entities
from .test_run_page import _browser_page, console  # noqa: F401  (the console fixture)

FIELDS = ("customer_no", "model_code", "color", "vin", "price", "deposit", "delivery_date", "status", "oem_order_no")


def _dms(admin) -> dict[str, dict]:
    """The DMS's contracts by number, the fields a re-key writes (the ground truth)."""
    return {c["contract_no"]: {f: c[f] for f in FIELDS} for c in admin.contracts()}


def _approve_in_workbook(store: Store, path: Path, ids: set[int], dictionary) -> None:
    """A reviewer's 同意 on the rows of ``ids`` in the review workbook, imported back."""
    export_runs(store, latest_runs(store), path, _entities())
    wb = load_workbook(path)
    ws = wb[PENDING_TITLE]
    col = {h: i + 1 for i, h in enumerate(PENDING_HEADERS)}
    rows = [r for r in range(2, ws.max_row + 1) if ws.cell(r, col["行键"]).value in ids]
    assert len(rows) == len(ids)
    for r in rows:
        ws.cell(r, col["审核"]).value = APPROVE
    wb.save(path)
    review = read_review(path, store, dictionary)
    assert not review.problems, review.problems
    apply_review(store, review, "李经理")


async def test_a_run_written_with_a_wrong_dictionary_entry_is_rolled_back_to_the_dms_as_it_was(
    read_store, console, settings, store, clean_sandbox, tmp_path,  # noqa: F811 - the console fixture
):
    read_store.copy_into(settings)
    # A store's dictionary overlay with a wrong entry: the OEM's 已配车 typed as 运输中.
    overlay = tmp_path / "store-dictionary.yaml"
    overlay.write_text("statuses:\n  已配车: 运输中\n", encoding="utf-8")
    wrong = load_dictionary(settings.dictionary_path, overlay)
    right = load_dictionary(settings.dictionary_path)
    policy = settings.rekey.policy()
    reconcile(store, wrong, policy)
    creations = [a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.customer.mode != "ambiguous"]
    chosen = [a for a in creations if a.customer.mode == "new"][:1] + [a for a in creations if a.customer.mode == "existing"][:2]
    assert len(chosen) == 3 and not store.review(
        [{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in chosen], "审核员")
    before = _dms(clean_sandbox)
    customers_before = {c["customer_no"] for c in clean_sandbox.customers()}

    wrote = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert wrote.ok and wrote.counts["failed"] == 0, (wrote.error, wrote.counts)
    done = [a for a in store.actions(run_id=wrote.run_id) if a.state == "verified"]
    updated = {a.contract_no: a for a in done if a.kind == "update_contract"}
    created = {a.contract_no: a for a in done if a.kind == "create_contract"}
    wrong_ones = [no for no, a in updated.items() if a.changes.get("status", ("", ""))[1] == "运输中"
                  and before[no]["status"] in ("待配车", "已配车")]
    assert len(created) == 3 and len(updated) >= 4 and len(wrong_ones) >= 3, (len(created), len(updated), len(wrong_ones))
    new_customers = {c["customer_no"] for c in clean_sandbox.customers()} - customers_before
    assert len(new_customers) == 1
    idle = await run_bot("dms-rekey", settings, passwords=PASSWORDS)  # nothing approved left: writes nothing
    assert idle.ok and not idle.counts.get("verified")

    # Staff move one written contract on after the run; the store reads the DMS again.
    kept, late = wrong_ones[0], wrong_ones[1]
    clean_sandbox.dms.patch(f"/__admin/contracts/{kept}", json={"status": "待交车"}).raise_for_status()
    assert (await run_bot("dms-contracts", settings, passwords=PASSWORDS)).ok
    after_run = _dms(clean_sandbox)
    audit_before = len(store.audit_rows(100_000))

    # The console: 回滚此次写入 on the run's page shows the plan, changes nothing; 确认 plans it.
    async with _browser_page(console) as page:
        await page.goto(f"{console}/runs/{wrote.run_id}")
        forged = await page.request.post(f"{console}/runs/{wrote.run_id}/rollback/confirm", form={})
        assert forged.status == 403
        await page.click("#rollback")
        plan_text = await page.inner_text("#rollback-plan")
        await page.screenshot(path=str(tmp_path / "rollback-plan.png"), full_page=True)
        conflict_line = next(li for li in plan_text.splitlines() if kept in li)
        assert "冲突" in conflict_line and "运输中" in conflict_line and "待交车" in conflict_line, conflict_line
        assert "取消合同未启用" in plan_text and "cancel_contract" in plan_text
        assert next(iter(new_customers)) in plan_text and "人工处理" in plan_text
        assert len(store.audit_rows(100_000)) == audit_before and _dms(clean_sandbox) == after_run
        assert not store.rollback_rows(wrote.run_id)
        await page.click("#rollback-confirm")
        assert page.url.endswith(f"/review?rollback={wrote.run_id}")
        assert wrote.run_id in await page.inner_text("#rollback-planned")
        listed = await page.locator("#reversals tr").count() - 1
        await page.screenshot(path=str(tmp_path / "rollback-review.png"), full_page=True)
        await page.goto(f"{console}/runs/{wrote.run_id}")
        assert "计划回滚" in await page.inner_text("#rolled-back") and not await page.locator("#rollback").count()

    reverse = store.reverse_actions()
    reverses = [a for a in store.actions(["planned"]) if a.id in reverse]
    assert len(reverses) == listed == len(updated) - 1 + len(created)  # the conflict is a person's: no action
    assert {a.kind for a in reverses if a.contract_no in created} == {"cancel_contract"}
    assert kept not in {a.contract_no for a in reverses}
    assert all(a.note.startswith(f"回滚运行 {wrote.run_id}") for a in reverses)
    # Bad input: a clear message, exit 2, nothing changed.
    runner = CliRunner()
    reading_run = store.runs(5, "dms-contracts")[0].run_id
    ledger = [(a.id, a.state) for a in store.actions()]
    for args, words in ((["rollback", "--run", wrote.run_id], "已于"), (["rollback", "--run", "no-such-run"], "没有这次运行"),
                        (["rollback", "--run", reading_run], "不是写入DMS的运行"),
                        (["rollback", "--run", idle.run_id], "没有写入DMS的记录")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        said = result.output.replace("\n", "")  # as a terminal of any width wraps it
        assert words in said and "未做任何改动" in said, result.output
    assert [(a.id, a.state) for a in store.actions()] == ledger
    # A reconciliation meanwhile (the wrong entry still there) leaves the reverse actions alone.
    reconcile(store, wrong, policy)
    assert {store.action(a.id).state for a in reverses} == {"planned"}

    # Approved in the review workbook; staff change one more after the plan; written.
    _approve_in_workbook(store, tmp_path / "review.xlsx", {a.id for a in reverses}, wrong)
    clean_sandbox.dms.patch(f"/__admin/contracts/{late}", json={"status": "待交车"}).raise_for_status()
    back = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert back.ok, back.error
    now = _dms(clean_sandbox)
    for no in updated:
        if no in (kept, late):
            assert now[no]["status"] == "待交车", no  # staff's value, never overwritten
        else:
            assert now[no] == before[no], no
    late_action = next(a for a in reverses if a.contract_no == late)
    assert store.action(late_action.id).failure_code == "dms_changed"
    # Cancelling is not enabled: approved, held back; enabled, the created contracts are cancelled.
    assert all(now[no]["status"] != "已取消" for no in created)
    enabled = settings.model_copy(update={"rekey": settings.rekey.model_copy(
        update={"enabled": ["create_contract", "update_contract", "cancel_contract"]})})
    cancelled = await run_bot("dms-rekey", enabled, passwords=PASSWORDS)
    assert cancelled.ok and cancelled.counts["verified"] == len(created), (cancelled.error, cancelled.counts)
    now = _dms(clean_sandbox)
    assert {no: now[no]["status"] for no in created} == {no: "已取消" for no in created}
    assert {no: c for no, c in now.items() if no not in created and no not in (kept, late)} == {
        no: c for no, c in before.items() if no not in (kept, late)}
    assert [r for r in store.audit_rows(100, run_id=back.run_id) if r["event"] == "update_contract"]

    # The next reconciliation does not plan the same wrong write again; the entry corrected, in sync.
    reconcile(store, wrong, policy)
    restored = {updated[no].natural_key for no in updated if no not in (kept, late)}
    assert not [a for a in store.actions(["planned", "approved"]) if a.natural_key in restored]
    report = reconcile(store, right, policy)
    classes = {o.order_no: o.reconcile_class for o in report.outcomes}
    planned = {a.natural_key: a for a in store.actions(["planned", "approved"])}
    for no in wrong_ones[2:]:
        order = updated[no].natural_key
        if before[no]["status"] == "已配车":
            assert classes[order] == "in_sync" and order not in planned, order
        else:  # 待配车 before: now the right step forward
            assert planned[order].changes == {"status": ("待配车", "已配车")}, order

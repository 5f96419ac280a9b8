"""The review workbook round trip on a real SQLite store and real .xlsx files (no browser):
what a reviewer may change, and what is refused with its row named."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from dealerbot.data.dictionary import load_dictionary
from dealerbot.data.records import DMS_CUSTOMER
from dealerbot.rekey.ledger import CustomerPlan, PlannedAction, Policy
from dealerbot.review.export import default_workbook_path
from dealerbot.review.sheets import PENDING_HEADERS, PENDING_TITLE, apply_review, read_review, review_sheets
from dealerbot.review.workbook import write_workbook
from dealerbot.store import Store

D = load_dictionary(Path(__file__).resolve().parents[2] / "dictionary.yaml")
ID = "11010519491231002X"
VALUES = {"model_code": "DMS-GX7L", "color": "曜石黑", "vin": "", "price": "239800.00", "deposit": "0.00",
          "delivery_date": "2026-12-20", "oem_order_no": "", "status": "待配车"}
NEW = {"name": "王芳", "mobile": "13812345678", "id_number": ID, "address": "杭州市"}


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    w = s.writer("run-1")
    w.add(DMS_CUSTOMER, {"customer_no": "KH000001", "name": "李强", "mobile": "13900000000", "id_number": "E12345678",
                         "address": "上海市", "created_at": datetime(2026, 1, 1)}, [])
    w.flush()
    plans = [
        PlannedAction("create_contract", "XS2026000001", dict(VALUES, oem_order_no="XS2026000001"),
                      customer=CustomerPlan("existing", "KH000001")),
        PlannedAction("create_contract", "XS2026000002", dict(VALUES, oem_order_no="XS2026000002"),
                      customer=CustomerPlan("ambiguous", values=NEW, candidates=("KH000001", "KH000009"))),
        PlannedAction("create_contract", "XS2026000003", dict(VALUES, oem_order_no="XS2026000003"),
                      customer=CustomerPlan("new", values=NEW)),
    ]
    s.save_plan([], [(p, True) for p in plans], [{"oem_order_no": p.natural_key, "contract_no": None, "reconcile_class": "create",
                                                   "reason": "", "changes": "[]", "base": "{}"} for p in plans])
    yield s
    s.close()


def _workbook(store: Store, path: Path) -> tuple:
    sheets, _ = review_sheets(store)
    write_workbook(path, [], sheets)
    wb = load_workbook(path)
    ws = wb[PENDING_TITLE]
    col = {h: i + 1 for i, h in enumerate(PENDING_HEADERS)}
    rows = {ws.cell(r, col["厂家订单号"]).value: r for r in range(2, ws.max_row + 1)}
    return wb, ws, col, rows


def test_what_a_reviewer_may_not_do_is_refused_naming_the_row(store, tmp_path):
    path = tmp_path / "review.xlsx"
    wb, ws, col, rows = _workbook(store, path)
    existing, unclear, new = rows["XS2026000001"], rows["XS2026000002"], rows["XS2026000003"]
    ws.cell(existing, col["审核"]).value = "修改后同意"
    ws.cell(existing, col["手机号"]).value = "13911112222"  # an existing customer's details
    ws.cell(unclear, col["审核"]).value = "修改后同意"  # the customer left undecided
    ws.cell(new, col["审核"]).value = "OK"
    wb.save(path)
    review = read_review(path, store, D)
    problems = "\n".join(review.problems)
    assert f"第 {existing} 行（订单 XS2026000001）：现有客户 KH000001 的资料不在这里修改" in problems
    assert f"第 {unclear} 行（订单 XS2026000002）：客户未确定" in problems and "KH000009" in problems
    assert f"第 {new} 行（订单 XS2026000003）：审核应为" in problems
    assert not review.decisions


def test_a_mobile_written_as_people_do_is_accepted_and_edits_are_audited(store, tmp_path):
    path = tmp_path / "review.xlsx"
    wb, ws, col, rows = _workbook(store, path)
    unclear, new = rows["XS2026000002"], rows["XS2026000003"]
    ws.cell(unclear, col["审核"]).value = "修改后同意"
    ws.cell(unclear, col["客户编号"]).value = "KH000001"  # the reviewer picks the customer
    ws.cell(new, col["审核"]).value = "修改后同意"
    ws.cell(new, col["手机号"]).value = "+86 138 1234 5678"
    ws.cell(new, col["颜色"]).value = "珍珠白"
    wb.save(path)
    review = read_review(path, store, D)
    assert not review.problems, review.problems
    apply_review(store, review, "王会计")
    picked = store.actions(natural_key="XS2026000002")[-1]
    assert picked.state == "approved" and picked.customer == CustomerPlan("existing", "KH000001")
    assert picked.note == "客户：DMS现有客户 KH000001"
    edited = store.actions(natural_key="XS2026000003")[-1]
    assert edited.customer.values["mobile"] == "13812345678" and edited.new_values["color"] == "珍珠白"
    assert edited.plan_values["color"] == "曜石黑"  # what was planned stays known
    entry = next(r for r in store.audit_rows(10) if r["natural_key"] == "XS2026000002")
    assert entry["event"] == "approve_edited" and entry["new_values"]["customer_no"] == "KH000001"


def test_a_new_export_never_overwrites_a_workbook_being_filled_in(tmp_path):
    now = datetime(2026, 11, 25, 8, 30, 15)
    first = default_workbook_path(tmp_path, [], now)
    first.write_bytes(b"staff are filling this in")
    second = default_workbook_path(tmp_path, [], now)
    assert first.name == "review-20261125-083015.xlsx" and second.name == "review-20261125-083015-2.xlsx"


def test_updates_beyond_status_and_vin_wait_for_a_person():
    status = PlannedAction("update_contract", "XS1", {"status": "运输中", "vin": "X"}, {"status": "已配车", "vin": ""})
    model = PlannedAction("update_contract", "XS1", {"model_code": "DMS-GX7X"}, {"model_code": "DMS-GX7S"})
    assert not Policy().needs_approval(status)
    assert Policy().needs_approval(model)  # e.g. after a dictionary edit: never rewritten unseen
    assert not Policy(auto_update_fields=frozenset({"model_code"})).needs_approval(model)

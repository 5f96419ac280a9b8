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
                      customer=CustomerPlan("existing", "KH000001"), note="客户：DMS现有客户 KH000001"),
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


def _with_unresolved(store: Store) -> None:
    """Orders reconciliation could not plan, as they sit in the store (reasons as reconcile words them)."""
    rows = [("XS2026000011", "rejected", "客户 CU0000008 未授权数据共享（未授权）：按个人信息保护法不录入DMS"),
            ("XS2026000012", "rejected", "未映射的车型代码 EV9-AWD-LTD（请在 dictionary.yaml 的 models 中添加）"),
            ("XS2026000013", "rejected", "读取时被拒绝：VIN校验位错误：应为 9，实为 0（LGXGX7A10SZ000123）"),
            ("XS2026000014", "conflict", "VIN LGXGX7A18TN000123 已在DMS合同 HT2026110099 中，请人工核对后在DMS中处理"),
            ("XS2026000010", "rejected", "客户 CU0000009 未授权数据共享（未授权）：按个人信息保护法不录入DMS")]
    store.save_plan([], [], [{"oem_order_no": no, "contract_no": None, "reconcile_class": reconcile_class, "reason": reason,
                              "changes": "[]", "base": "{}"} for no, reconcile_class, reason in rows])


def test_every_sheet_prints_a4_landscape_one_page_wide_with_its_header_row_on_each_page(store, tmp_path):
    """The page layout as the saved file holds it (read back, as Excel and LibreOffice read it)."""
    path = tmp_path / "review.xlsx"
    sheets, summary = review_sheets(store)
    write_workbook(path, summary, sheets)
    wb = load_workbook(path)
    visible = [ws for ws in wb.worksheets if ws.sheet_state == "visible"]
    assert [ws.title for ws in visible] == ["概要", "待处理", "无法处理", "写入结果"]
    # 待处理 (22 columns) is too wide for one page at a readable scale: two pages across, with
    # 审核 and the order number (and the hidden key columns before them) repeated on each.
    across = {"待处理": 2}
    for ws in visible:
        setup = ws.page_setup
        assert (setup.orientation, setup.paperSize, setup.fitToWidth, setup.fitToHeight) == (
            "landscape", 9, across.get(ws.title, 1), 0), ws.title
        assert ws.print_title_cols == ("$A:$D" if ws.title in across else None), ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert ws.print_title_rows == "$1:$1", ws.title
        assert ws.oddHeader.center.text == "&A" and "&P" in ws.oddFooter.center.text and "&N" in ws.oddFooter.center.text
        assert ws.page_margins.left < 0.75 and ws.print_area, ws.title
    assert wb["概要"].freeze_panes == "A2" and wb["概要"].print_area == f"'概要'!$A$1:$B${wb['概要'].max_row}"
    assert wb["概要"].column_dimensions["B"].width <= 90  # both columns on one landscape page, long text wraps


def test_decision_and_order_stay_in_view_the_drop_down_says_what_to_pick_and_hard_rows_stand_out(store, tmp_path):
    path = tmp_path / "review.xlsx"
    wb, ws, col, rows = _workbook(store, path)
    assert ws.freeze_panes == "E2"  # the header row, the hidden key and checksum, 审核 and 厂家订单号
    assert (ws["C1"].value, ws["D1"].value) == ("审核", "厂家订单号")
    assert ws.column_dimensions["A"].hidden and ws.column_dimensions["B"].hidden
    [decision] = [dv for dv in ws.data_validations.dataValidation if "C2" in str(dv.sqref)]
    assert decision.showInputMessage and decision.promptTitle == "审核"
    assert all(word in decision.prompt for word in ("请选择", "同意", "跳过", "修改后同意"))
    hint = {no: ws.cell(r, col["提示"]).value for no, r in rows.items()}
    assert hint == {"XS2026000001": "常规", "XS2026000002": "需判断", "XS2026000003": "常规"}  # 2: no customer yet
    unsettled, routine = rows["XS2026000002"], rows["XS2026000001"]
    assert ws.cell(unsettled, col["厂家订单号"]).fill.fgColor.rgb.endswith("DDEBF7")
    assert ws.cell(routine, col["厂家订单号"]).fill.fill_type is None
    checked = {r[-2] for r in ws.iter_rows(min_row=2, values_only=True)}  # 校验结果: never the 待审核-like 待复核
    assert "需核对" in checked and "待复核" not in checked
    # Which customer a routine row writes to is information, not a value to check: no yellow.
    assert [c.value for c in ws[routine][-2:]] == ["通过", "客户：DMS现有客户 KH000001"]
    assert ws[unsettled][-2].value == "需核对"


def test_orders_that_cannot_be_written_are_grouped_by_what_to_do_about_them(store, tmp_path):
    _with_unresolved(store)
    path = tmp_path / "review.xlsx"
    sheets, summary = review_sheets(store)
    write_workbook(path, summary, sheets)
    ws = load_workbook(path)["无法处理"]
    assert [c.value for c in ws[1]][:2] == ["厂家订单号", "处理方式"] and ws.freeze_panes == "B2"
    listed = [(r[0], r[1]) for r in ws.iter_rows(min_row=2, values_only=True)]
    assert listed == [
        ("XS2026000014", "人工核对：两边数据冲突，在DMS中核对处理"),
        ("XS2026000012", "请管理员：在字典中补充代码"),
        ("XS2026000013", "请厂家更正数据（更正后自动重试）"),
        ("XS2026000010", "无需处理：客户未授权，依法不录入"),
        ("XS2026000011", "无需处理：客户未授权，依法不录入"),
    ]
    line = dict(summary)["无法处理"]
    assert "无需处理：客户未授权，依法不录入 2 条" in line and "请管理员：在字典中补充代码 1 条" in line


def test_a_workbook_exported_before_the_columns_moved_still_imports(store, tmp_path):
    """Marker version 1 had 审核备注, 操作, 状态 before 厂家订单号 and no 提示 column."""
    path = tmp_path / "review.xlsx"
    wb, ws, col, rows = _workbook(store, path)
    v1 = ("行键", "校验和", "审核", "审核备注", "操作", "状态", "厂家订单号", "合同号", "客户编号",
          *PENDING_HEADERS[PENDING_HEADERS.index("客户编号") + 1:], "校验结果", "问题说明")
    now = [c.value for c in ws[1]]
    table = [[row[now.index(h)] for h in v1] for row in ws.iter_rows(values_only=True)]
    old = wb.create_sheet("old")
    for row in table:
        old.append(row)
    wb.remove(ws)
    old.title = PENDING_TITLE
    marker = wb["_dealerbot"]
    next(r for r in marker.iter_rows(min_row=2) if r[0].value == "version")[1].value = "1"
    order_col = v1.index("厂家订单号")
    row = next(i for i, r in enumerate(table, 1) if r[order_col] == "XS2026000001")
    old.cell(row, v1.index("审核") + 1).value = "同意"
    wb.save(path)
    review = read_review(path, store, D)
    assert not review.problems, review.problems
    assert review.counts["approve"] == 1 and [d["id"] for d in review.decisions] == [
        store.actions(natural_key="XS2026000001")[-1].id]

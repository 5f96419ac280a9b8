"""The review's edit checks row by row, on a real SQLite store: each problem a reviewer can make
is refused naming the row with exact words, and nothing of that row becomes a decision; what is
accepted becomes exactly the decision the store applies (docs/testing.md, "Mutation testing").

The rows are given as the cells read back from the 待处理 sheet (the workbook round trip itself is
tested in test_review.py and tests/integration)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from dealerbot.data.dictionary import load_dictionary
from dealerbot.data.records import DMS_CUSTOMER
from dealerbot.rekey.ledger import OPEN_STATES, Action, CustomerPlan, PlannedAction
from dealerbot.review.sheets import ReviewImport, _cell_text, _read_row, apply_review, exported_values
from dealerbot.store import Store

D = load_dictionary(Path(__file__).resolve().parents[2] / "dictionary.yaml")
ID = "11010519491231002X"
VALUES = {"model_code": "DMS-GX7L", "color": "曜石黑", "vin": "", "price": "239800.00", "deposit": "0.00",
          "delivery_date": "2026-12-20", "oem_order_no": "", "status": "待配车"}
NEW = {"name": "王芳", "mobile": "13812345678", "id_number": ID, "address": "杭州市"}
KH1 = {"customer_no": "KH000001", "name": "李强", "mobile": "13900000000", "id_number": "E12345678", "address": "上海市",
       "created_at": datetime(2026, 1, 1)}
PATH = Path("review.xlsx")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    s = Store.open(f"sqlite:///{tmp_path_factory.mktemp('review') / 'db.sqlite'}")
    w = s.writer("run-1")
    w.add(DMS_CUSTOMER, KH1, [])
    w.flush()
    plans = [
        PlannedAction("create_contract", "XS1", dict(VALUES, oem_order_no="XS1"), customer=CustomerPlan("existing", "KH000001"),
                      note="客户：DMS现有客户 KH000001"),
        PlannedAction("create_contract", "XS2", dict(VALUES, oem_order_no="XS2"),
                      customer=CustomerPlan("ambiguous", values=NEW, candidates=("KH000001", "KH000009"))),
        PlannedAction("create_contract", "XS3", dict(VALUES, oem_order_no="XS3"), customer=CustomerPlan("ambiguous", values=NEW)),
        PlannedAction("update_contract", "XS4", dict(VALUES, oem_order_no="XS4", status="运输中"),
                      dict(VALUES, oem_order_no="XS4", customer_no="KH000001"), contract_no="HT1", note="更新"),
        PlannedAction("create_contract", "XS5", dict(VALUES, oem_order_no="XS5"), customer=CustomerPlan("new", values=NEW)),
    ]
    s.save_plan([], [(p, True) for p in plans], [{"oem_order_no": p.natural_key, "contract_no": None, "reconcile_class": "create",
                                                   "reason": "", "changes": "[]", "base": "{}"} for p in plans])
    first = {a.natural_key: a for a in s.actions(OPEN_STATES)}["XS5"]
    apply_review(s, ReviewImport([{"id": first.id, "checksum": first.stored_checksum, "note": None, "decision": "approve"}]), "me")
    yield s
    s.close()


def _action(store: Store, order_no: str) -> Action:
    return next(a for a in store.actions() if a.natural_key == order_no)


def _row(store: Store, order_no: str, decision: str | None, **edits: object) -> tuple[ReviewImport, Action]:
    a = _action(store, order_no)
    cells = {"_key": a.id, "_checksum": a.stored_checksum, "_decision": decision, "_review_note": None,
             "_order_no": order_no, **exported_values(a, {"KH000001": KH1}), **edits}
    result = ReviewImport()
    _read_row(PATH, 7, cells, store, D, {"KH000001": KH1}, result)
    return result, a


def _refused(store: Store, order_no: str, decision: str, **edits: object) -> str:
    result, _ = _row(store, order_no, decision, **edits)
    assert not result.decisions and result.counts == {"approve": 0, "approve_edited": 0, "skip": 0}
    (problem,) = result.problems
    return problem


def test_a_row_without_a_decision_is_counted_as_undecided(store) -> None:
    result, _ = _row(store, "XS1", "  ")
    assert (result.undecided, result.problems, result.decisions) == (1, [], [])


def test_counts_add_up_over_the_rows_of_a_sheet(store) -> None:
    a1, a2 = _action(store, "XS1"), _action(store, "XS2")
    result = ReviewImport()
    rows = [
        ({"_decision": None}, a1), ({"_decision": ""}, a1), ({"_decision": "同意"}, a1), ({"_decision": "同意"}, a1),
        ({"_decision": "跳过"}, a1), ({"_decision": "跳过"}, a1),
        ({"_decision": "修改后同意", "customer_no": "KH000001"}, a2), ({"_decision": "修改后同意", "customer_no": "新建"}, a2),
    ]
    for n, (edits, a) in enumerate(rows, start=2):
        cells = {"_key": a.id, "_checksum": a.stored_checksum, "_review_note": None, "_order_no": a.natural_key,
                 **exported_values(a, {"KH000001": KH1}), **edits}
        _read_row(PATH, n, cells, store, D, {"KH000001": KH1}, result)
    assert (result.undecided, result.counts, result.problems) == (2, {"approve": 2, "approve_edited": 2, "skip": 2}, [])
    assert len(result.decisions) == 6


def test_rows_that_cannot_be_matched_to_their_action_are_refused(store) -> None:
    assert _refused(store, "XS1", "好") == "待处理表第 7 行（订单 XS1）：审核应为 同意 / 跳过 / 修改后同意，实为「好」"
    assert _refused(store, "XS1", "同意", _key="x", _order_no=None) == (
        "待处理表第 7 行（订单 ?）：隐藏的行键缺失或被修改，无法对应到操作")
    other = _action(store, "XS2").id
    assert _refused(store, "XS1", "同意", _key=other) == f"待处理表第 7 行（订单 XS1）：行键 {other} 不对应这个订单（行键被修改？）"
    assert _refused(store, "XS1", "同意", _key=99999) == "待处理表第 7 行（订单 XS1）：行键 99999 不对应这个订单（行键被修改？）"
    assert _refused(store, "XS1", "同意", _checksum="0") == (
        "待处理表第 7 行（订单 XS1）：导出后数据已变化或已处理（待审核），请重新导出后再审核")
    assert _refused(store, "XS5", "同意") == "待处理表第 7 行（订单 XS5）：导出后数据已变化或已处理（已批准待写入），请重新导出后再审核"


def test_a_skip_and_a_plain_approval_become_exactly_those_decisions(store) -> None:
    result, a = _row(store, "XS1", "跳过", _review_note=" 客户改天再来 ")
    assert result.decisions == [{"id": a.id, "checksum": a.stored_checksum, "note": "客户改天再来", "decision": "skip"}]
    assert result.counts == {"approve": 0, "approve_edited": 0, "skip": 1} and not result.problems
    result, a = _row(store, "XS1", "同意")
    assert result.decisions == [{"id": a.id, "checksum": a.stored_checksum, "note": None, "decision": "approve"}]
    assert result.counts == {"approve": 1, "approve_edited": 0, "skip": 0} and not result.problems


def test_edits_that_are_not_allowed_are_refused_with_words_that_say_what_to_do(store) -> None:
    assert _refused(store, "XS1", "同意", color="珍珠白", price=239000) == (
        "待处理表第 7 行（订单 XS1）：改动了 颜色、车价，但审核选的是“同意”；请改选“修改后同意”，或恢复原值")
    assert _refused(store, "XS1", "修改后同意", name="李小强") == (
        "待处理表第 7 行（订单 XS1）：现有客户 KH000001 的资料不在这里修改（DMS中的客户档案不会被改写）；"
        "请恢复原值，或在“客户编号”填“新建”以新建客户")
    assert _refused(store, "XS2", "修改后同意") == (
        "待处理表第 7 行（订单 XS2）：客户未确定，请在“客户编号”列填写客户编号（如 KH000001、KH000009）或“新建”，并选择“修改后同意”")
    assert _refused(store, "XS3", "修改后同意") == (
        "待处理表第 7 行（订单 XS3）：客户未确定，请在“客户编号”列填写客户编号（如 KH000001）或“新建”，并选择“修改后同意”")
    assert _refused(store, "XS2", "修改后同意", customer_no="KH000404") == (
        "待处理表第 7 行（订单 XS2）：客户编号 KH000404 不在DMS客户中（先运行 dms-customers，或填“新建”）")
    assert _refused(store, "XS2", "修改后同意", customer_no="新建", mobile="12345", vin="LGXGX7A17TN000123") == (
        "待处理表第 7 行（订单 XS2）：VIN：VIN校验位错误：应为 8，实为 7（LGXGX7A17TN000123）；"
        "手机号：不是11位手机号（5 个字符），DMS无法建档")
    assert _refused(store, "XS2", "修改后同意", name="王小芳") == (  # no customer chosen yet: that is what to fix first
        "待处理表第 7 行（订单 XS2）：客户未确定，请在“客户编号”列填写客户编号（如 KH000001、KH000009）或“新建”，并选择“修改后同意”")
    assert _refused(store, "XS1", "修改后同意", price="二十万") == "待处理表第 7 行（订单 XS1）：无法解析价格：「二十万」"
    for edit in ({"customer_no": "KH000002"}, {"name": "李小强"}):
        assert _refused(store, "XS4", "修改后同意", **edit) == "待处理表第 7 行（订单 XS4）：更新合同时不能修改客户"


def test_an_accepted_edit_becomes_exactly_the_decision_applied(store) -> None:
    result, a = _row(store, "XS2", "修改后同意", customer_no="新建", mobile="138 1234 5679", vin=" lgxgx7a18tn000123 ")
    values = {**NEW, "mobile": "13812345679"}
    new_values = dict(a.new_values, vin="LGXGX7A18TN000123")
    assert result.decisions == [{"id": a.id, "checksum": a.stored_checksum, "note": None, "decision": "approve",
                                 "new_values": new_values, "customer": CustomerPlan("new", values=values),
                                 "plan_note": "客户：将在DMS新建客户档案"}]
    assert result.counts == {"approve": 0, "approve_edited": 1, "skip": 0} and not result.problems
    result, a = _row(store, "XS2", "修改后同意", customer_no="KH000001")
    assert result.decisions[0]["customer"] == CustomerPlan("existing", "KH000001")
    assert result.decisions[0]["plan_note"] == "客户：DMS现有客户 KH000001"
    result, a = _row(store, "XS4", "修改后同意", price="238,000")
    assert result.decisions == [{"id": a.id, "checksum": a.stored_checksum, "note": None, "decision": "approve",
                                 "new_values": dict(a.new_values, price="238000.00"), "customer": a.customer,
                                 "plan_note": "更新"}]


@pytest.mark.parametrize(("key", "value", "text"), [
    ("mobile", "+86 138-1234-5678", "13812345678"),
    ("mobile", "12345", "12345"),
    ("id_number", " １１０１０５１９４９１２３１００２x ", ID),
    ("vin", "lgx gx7a18 tn000123", "LGXGX7A18TN000123"),
    ("price", 239800, "239800.00"),
    ("delivery_date", datetime(2026, 12, 20), "2026-12-20"),
    ("name", " 王芳 ", "王芳"),
])
def test_a_reviewed_cell_is_read_as_form_text(key: str, value: object, text: str) -> None:
    assert _cell_text(key, value) == text

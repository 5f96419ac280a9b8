"""Mapping and reconciliation as pure functions: what would be written, and why not."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from dealerbot.data.dictionary import load_dictionary
from dealerbot.data.mapping import check_contract, check_customer, contract_values, form_text
from dealerbot.rekey.ledger import CustomerPlan, PlannedAction, Policy
from dealerbot.rekey.reconcile import Indexes, classify

D = load_dictionary(Path(__file__).resolve().parents[2] / "dictionary.yaml")
VIN = "LGXGX7A18TN000123"  # a valid check digit
ID = "11010519491231002X"


def order(**changes: object) -> dict:
    base = {
        "order_no": "XS2026000001", "customer_name": "王芳", "mobile": "13812345678", "id_type": "身份证",
        "id_number": ID, "model_code": "GX7-25T-LUX", "color": "曜石黑", "vin": VIN,
        "price": Decimal("239800.00"), "status": "在途", "planned_delivery_date": date(2026, 12, 20),
        "updated_at": datetime(2026, 11, 20, 10, 0, 0),
    }
    return {**base, **changes}


OEM_CUSTOMER = {"customer_no": "CU0000001", "name": "王芳", "mobile": "13812345678", "id_number": ID,
                "city": "杭州市", "consent": True}
DMS_CUSTOMER = {"customer_no": "KH000001", "name": "王芳", "mobile": "13812345678", "id_number": ID,
                "address": "杭州市西湖区"}


def contract(**changes: object) -> dict:
    base = {"contract_no": "HT2026110001", "customer_no": "KH000001", "model_code": "DMS-GX7L", "color": "曜石黑",
            "vin": VIN, "price": Decimal("234800.00"), "deposit": Decimal("10000.00"),
            "delivery_date": date(2026, 12, 20), "oem_order_no": "XS2026000001", "status": "运输中"}
    return {**base, **changes}


def ix(oem=(OEM_CUSTOMER,), dms=(DMS_CUSTOMER,), contracts=()) -> Indexes:
    return Indexes(list(oem), list(dms), list(contracts))


def test_form_text_is_what_is_typed():
    assert form_text(Decimal("239800"), "decimal") == "239800.00"
    assert form_text("239,800.5", "decimal") == "239800.50"
    assert form_text(239800.0, "decimal") == "239800.00"
    assert form_text(datetime(2026, 12, 20, 0, 0), "date") == "2026-12-20"
    assert form_text("2026/12/20", "date") == "2026-12-20"
    assert form_text(13812345678.0) == "13812345678"  # a mobile Excel turned into a number
    assert form_text(None) == "" and form_text("  白 ") == "白"


def test_a_new_order_of_a_known_customer_becomes_a_creation_with_that_customer():
    out = classify(order(), ix(), D)
    assert out.reconcile_class == "create"
    a = out.action
    assert a.kind == "create_contract" and a.customer == CustomerPlan("existing", "KH000001")
    assert a.new_values == {
        "model_code": "DMS-GX7L", "color": "曜石黑", "vin": VIN, "price": "239800.00", "deposit": "0",
        "delivery_date": "2026-12-20", "oem_order_no": "XS2026000001", "status": "运输中",
    } | {"deposit": "0.00"}


def test_customer_matching_mobile_then_id_then_name_never_guesses():
    # By ID number when the DMS has an older mobile.
    moved = dict(DMS_CUSTOMER, mobile="13900000000")
    assert classify(order(), ix(dms=[moved]), D).action.customer == CustomerPlan("existing", "KH000001")
    # The same mobile but another ID number: a person must decide.
    other = dict(DMS_CUSTOMER, id_number="110105194912310021".replace("0021", "0013"))
    amb = classify(order(), ix(dms=[other]), D).action
    assert amb.customer.mode == "ambiguous" and amb.customer.candidates == ("KH000001",)
    assert Policy().needs_approval(amb)
    # Two customers with the mobile, one with the ID number: that one.
    twin = dict(DMS_CUSTOMER, customer_no="KH000002", id_number="E12345678")
    assert classify(order(), ix(dms=[DMS_CUSTOMER, twin]), D).action.customer.customer_no == "KH000001"
    # Only the name matches: never picked.
    namesake = dict(DMS_CUSTOMER, mobile="13900000000", id_number="E12345678")
    assert classify(order(), ix(dms=[namesake]), D).action.customer.mode == "ambiguous"
    # Nobody: a new customer from the OEM's data, its address from the OEM customer's city.
    new = classify(order(), ix(dms=[]), D).action.customer
    assert new == CustomerPlan("new", values={"name": "王芳", "mobile": "13812345678", "id_number": ID, "address": "杭州市"})


@pytest.mark.parametrize(("changes", "oem", "words"), [
    ({"model_code": "EV9-AWD-LTD"}, (OEM_CUSTOMER,), "未映射的车型代码 EV9-AWD-LTD"),
    ({"color": "玫瑰金"}, (OEM_CUSTOMER,), "未映射的颜色 玫瑰金"),
    ({}, (dict(OEM_CUSTOMER, consent=False),), "未授权"),
    ({}, (), "找不到该订单"),  # no OEM customer record: no consent known
    ({"mobile": "021-6234 5678"}, (dict(OEM_CUSTOMER, mobile="021-6234 5678"),), "不是11位手机号"),
])
def test_what_cannot_be_written_is_rejected_with_the_reason(changes, oem, words):
    out = classify(order(**changes), ix(oem=oem, dms=[]), D)
    assert out.reconcile_class == "rejected" and words in out.reason and out.action is None


def test_consent_of_a_customer_entered_twice_must_hold_for_both():
    twice = [OEM_CUSTOMER, dict(OEM_CUSTOMER, customer_no="CU0000009", mobile="138 1234 5678", consent=False)]
    assert classify(order(), ix(oem=twice), D).reconcile_class == "rejected"


def test_a_cancelled_order_without_contract_needs_nothing_and_a_vin_clash_is_a_conflict():
    assert classify(order(status="已取消"), ix(), D).reconcile_class == "in_sync"
    clash = contract(contract_no="HT2026110099", oem_order_no="")
    out = classify(order(), ix(contracts=[clash]), D)
    assert out.reconcile_class == "conflict" and "HT2026110099" in out.reason and out.action is None


def test_status_moves_forward_only_and_a_vin_fills_an_empty_field():
    behind = contract(status="已配车", vin="")
    out = classify(order(), ix(contracts=[behind]), D)
    assert out.reconcile_class == "update" and out.action.kind == "update_contract"
    assert out.action.changes == {"status": ("已配车", "运输中"), "vin": ("", VIN)}
    assert out.action.old_values["price"] == "234800.00"  # the dealer's price: never overwritten
    ahead = contract(status="已交车")  # delivered before the portal caught up
    assert classify(order(), ix(contracts=[ahead]), D).reconcile_class == "in_sync"


def test_cancellation_is_its_own_action_and_waits_for_a_person():
    out = classify(order(status="已取消"), ix(contracts=[contract()]), D)
    assert out.action.kind == "cancel_contract" and out.action.changes == {"status": ("运输中", "已取消")}
    assert Policy().needs_approval(out.action)
    assert "cancel_contract" not in Policy().enabled


def test_three_way_sync_keeps_staff_changes_and_flags_both_sides_changing():
    moved = order(planned_delivery_date=date(2027, 1, 5))
    base = {"delivery_date": {"oem": "2026-12-20", "dms": "2026-12-20"}}
    # Only the OEM changed since both agreed: write it.
    out = classify(moved, ix(contracts=[contract()]), D, base)
    assert out.reconcile_class == "update" and out.action.changes == {"delivery_date": ("2026-12-20", "2027-01-05")}
    # Only staff changed the DMS: keep theirs.
    staff = contract(delivery_date=date(2026, 12, 28))
    assert classify(order(), ix(contracts=[staff]), D, base).reconcile_class == "in_sync"
    # Both changed: a conflict for a person, proposing the OEM's value.
    both = classify(moved, ix(contracts=[staff]), D, base)
    assert both.reconcile_class == "conflict" and both.action.conflict and "双方都已修改" in both.reason
    assert Policy().needs_approval(both.action)
    # They differ and nothing records an agreement: not settled by any rule.
    assert classify(moved, ix(contracts=[contract()]), D).reconcile_class == "conflict"
    # A VIN that differs on both sides is a conflict, never overwritten silently.
    assert classify(order(), ix(contracts=[contract(vin="LGXGX7A17TN000999")]), D).reconcile_class == "conflict"


def test_checks_mirror_the_dms_rules():
    good = classify(order(), ix(), D).action.new_values
    assert check_contract(good, D) == []
    bad = dict(good, model_code="GX7-25T-LUX", vin="LGXGX7A15TN000123", deposit="300000.00", status="到店")
    assert {i.field for i in check_contract(bad, D)} == {"model_code", "vin", "deposit", "status"}
    assert check_customer({"name": "王芳", "mobile": "13812345678", "id_number": ID, "address": "杭州"}) == []
    assert check_customer({"name": "王芳", "mobile": "13812345678", "id_number": "E12345678", "address": "杭州"}) == []
    wrong = {i.field for i in check_customer({"name": "", "mobile": "1381234567", "id_number": "110105194912310021",
                                              "address": ""})}
    assert wrong == {"name", "mobile", "id_number", "address"}


def test_checksum_covers_what_a_reviewer_approves():
    a = classify(order(), ix(), D).action
    assert a.checksum() == PlannedAction(a.kind, a.natural_key, dict(a.new_values), customer=a.customer).checksum()
    assert a.checksum() != PlannedAction(a.kind, a.natural_key, dict(a.new_values, color="白"), customer=a.customer).checksum()
    assert a.checksum() != PlannedAction(a.kind, a.natural_key, a.new_values, customer=CustomerPlan("new")).checksum()
    assert contract_values(order(), OEM_CUSTOMER, D)["status"] == "运输中"


def test_a_difference_a_reviewer_chose_stays_until_one_side_moves():
    # The reviewer wrote 曜石黑 where the OEM says 珍珠白 (修改后同意): both sides recorded so.
    base = {"color": {"oem": "珍珠白", "dms": "曜石黑"}}
    oem_white = order(color="珍珠白")
    assert classify(oem_white, ix(contracts=[contract(color="曜石黑")]), D, base).reconcile_class == "in_sync"
    # The OEM changes the colour again: that reaches the DMS.
    out = classify(order(color="星空灰"), ix(contracts=[contract(color="曜石黑")]), D, base)
    assert out.reconcile_class == "update" and out.action.changes == {"color": ("曜石黑", "星空灰")}
    # Staff change it in the DMS: theirs stays.
    assert classify(oem_white, ix(contracts=[contract(color="冰川银")]), D, base).reconcile_class == "in_sync"


# -- approvals and plan changes, over a real SQLite store ----------------------------------------

def _stored(tmp_path, orders, dms_customers=()):
    """A store holding ``orders`` of the OEM customer OEM_CUSTOMER (who consents) and the DMS's
    ``dms_customers``, as the reading bots would leave it."""
    from dealerbot.data.records import DMS_CUSTOMER as DMS_CUSTOMERS
    from dealerbot.data.records import OEM_CUSTOMER as OEM_CUSTOMERS
    from dealerbot.data.records import OEM_ORDER
    from dealerbot.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    read(store, "read-1", OEM_ORDER, orders)
    read(store, "read-1", OEM_CUSTOMERS, [OEM_CUSTOMER])
    read(store, "read-1", DMS_CUSTOMERS, dms_customers)
    return store


def read(store, run_id, entity, rows) -> None:
    w = store.writer(run_id)
    for r in rows:
        w.add(entity, {f.name: r.get(f.name) for f in entity.fields}, [])
    w.flush()


NEW_PERSON = {"mobile": "13987654321", "id_number": "330106198001010013", "customer_name": "李雷"}
NEW_CUSTOMER = dict(OEM_CUSTOMER, customer_no="CU0000002", name="李雷", mobile="13987654321", id_number="330106198001010013")


def _two_orders_of_a_new_customer(tmp_path):
    """Orders A and B of one person the DMS does not know, both approved by a person."""
    from dealerbot.rekey.reconcile import reconcile

    orders = [order(order_no=no, vin="", status="已下单", **NEW_PERSON) for no in ("XS2026000001", "XS2026000002")]
    store = _stored(tmp_path, orders)
    from dealerbot.data.records import OEM_CUSTOMER as OEM_CUSTOMERS

    read(store, "read-1", OEM_CUSTOMERS, [NEW_CUSTOMER])
    reconcile(store, D, Policy())
    a, b = store.actions(["planned"])
    assert a.customer.mode == b.customer.mode == "new"
    assert not store.review([{"id": x.id, "checksum": x.stored_checksum, "decision": "approve"} for x in (a, b)], "王经理")
    return store, orders, a, b


def test_an_approval_carries_over_when_its_new_customer_now_exists_with_the_same_id_number(tmp_path):
    from dealerbot.rekey.reconcile import reconcile

    store, _orders, a, b = _two_orders_of_a_new_customer(tmp_path)
    # A re-key takes A and creates the customer (KH000900); B is still waiting in its list.
    store.start_run("rekey-1", "dms-rekey", "manual")
    assert store.claim(a.id, "rekey-1")
    store.record_customer(store.action(a.id), "rekey-1", "KH000900", created=True, actor="dms-rekey")
    report = reconcile(store, D, Policy())
    after = store.action(b.id)
    assert after.state == "approved" and after.reviewed_by == "王经理"  # the approval stands, unchanged
    assert after.customer.mode == "new"  # the re-key's search by ID number finds KH000900
    assert report.carried_over == 1 and report.dropped == [] and report.superseded == 0
    [outcome] = [o for o in report.outcomes if o.order_no == b.natural_key]
    assert "沿用原审核" in outcome.reason and "KH000900" in outcome.reason
    again = reconcile(store, D, Policy())  # stable: nothing planned or superseded the next time
    assert again.planned == again.superseded == 0 and store.action(b.id).state == "approved"
    store.close()


def test_an_approval_carries_over_when_staff_keyed_the_customer_in_the_dms(tmp_path):
    from dealerbot.data.records import DMS_CUSTOMER as DMS_CUSTOMERS
    from dealerbot.rekey.reconcile import reconcile

    store, _orders, a, b = _two_orders_of_a_new_customer(tmp_path)
    keyed = {"customer_no": "KH000777", "name": "李雷", "mobile": "13987654321", "id_number": "330106198001010013",
             "address": "杭州市"}
    read(store, "read-2", DMS_CUSTOMERS, [keyed])
    report = reconcile(store, D, Policy())
    assert report.carried_over == 2 and not report.dropped
    assert {store.action(x.id).state for x in (a, b)} == {"approved"}
    store.close()


def test_a_plan_change_that_drops_a_persons_approval_says_so_with_the_reason(tmp_path):
    from openpyxl import load_workbook

    from dealerbot.data.records import OEM_ORDER
    from dealerbot.rekey.reconcile import reconcile
    from dealerbot.review.sheets import PENDING_HEADERS, PENDING_TITLE, review_sheets
    from dealerbot.review.workbook import write_workbook
    from dealerbot.running.notify import review_message

    store, orders, a, b = _two_orders_of_a_new_customer(tmp_path)
    # The customer now exists (created for A) AND the OEM changed B's colour: not only the
    # customer differs, so B's approval cannot stand.
    store.start_run("rekey-1", "dms-rekey", "manual")
    assert store.claim(a.id, "rekey-1")
    store.record_customer(store.action(a.id), "rekey-1", "KH000900", created=True, actor="dms-rekey")
    read(store, "read-2", OEM_ORDER, [dict(orders[1], color="星空灰")])
    report = reconcile(store, D, Policy())
    assert store.action(b.id).state == "superseded"
    [replacement] = store.actions(["planned"], natural_key=b.natural_key)
    assert replacement.note.startswith("原已审核（王经理），因计划已变化需重新审核：")
    assert "客户 新建客户→DMS现有客户 KH000900" in replacement.note and "颜色 曜石黑→星空灰" in replacement.note
    assert report.carried_over == 0 and [k for k, _ in report.dropped] == [b.natural_key]
    [(_, why)] = report.dropped
    assert "星空灰" in why
    # The audit trail keeps it.
    [row] = [r for r in store.audit_rows(50) if r["event"] == "approval_dropped"]
    assert row["natural_key"] == b.natural_key and row["action_id"] == b.id and "星空灰" in row["note"]
    # The review workbook's row says it (a real .xlsx, read back).
    sheets, summary = review_sheets(store)
    path = write_workbook(tmp_path / "review.xlsx", summary, sheets[:1]).path
    ws = load_workbook(path, read_only=True)[PENDING_TITLE]
    rows = [dict(zip(ws_headers(ws), r, strict=False)) for r in ws.iter_rows(min_row=2, values_only=True)]
    [mine] = [r for r in rows if r["厂家订单号"] == b.natural_key]
    assert any("原已审核（王经理），因计划已变化需重新审核" in str(v) and "星空灰" in str(v) for v in mine.values())
    assert PENDING_HEADERS[0] in ws_headers(ws)
    # And the message to people names the order and why.
    message = review_message(report.awaiting_approval, dropped=report.dropped)
    assert "原已审核" in message.body and b.natural_key in message.body and "星空灰" in message.body
    # A later plan, before anyone reviewed it, keeps saying so.
    read(store, "read-3", OEM_ORDER, [dict(orders[1], color="冰川银")])
    reconcile(store, D, Policy())
    [newer] = store.actions(["planned"], natural_key=b.natural_key)
    assert newer.note.startswith("原已审核（王经理），因计划已变化需重新审核：") and "星空灰" in newer.note
    store.close()


def test_a_policy_approval_or_an_unchanged_plan_drops_nobodys_approval(tmp_path):
    from dealerbot.data.records import OEM_ORDER
    from dealerbot.rekey.reconcile import reconcile

    policy = Policy.of([], ["create_contract", "update_contract"])  # creations need no approval here
    orders = [order(order_no="XS2026000001", vin="", status="已下单", **NEW_PERSON)]
    store = _stored(tmp_path, orders)
    from dealerbot.data.records import OEM_CUSTOMER as OEM_CUSTOMERS

    read(store, "read-1", OEM_CUSTOMERS, [NEW_CUSTOMER])
    reconcile(store, D, policy)
    [a] = store.actions(["approved"])
    assert a.reviewed_by == "policy"
    assert reconcile(store, D, policy).dropped == []  # unchanged: kept as it was
    read(store, "read-2", OEM_ORDER, [dict(orders[0], color="星空灰")])
    report = reconcile(store, D, policy)
    assert report.superseded == 1 and report.dropped == []
    [b] = store.actions(["approved"])
    assert not b.note.startswith("原已审核")
    store.close()


def ws_headers(ws) -> list[str]:
    return [c for c in next(ws.iter_rows(min_row=1, max_row=1, values_only=True))]


@pytest.mark.parametrize(("changes", "oem", "contracts", "remedy_text"), [
    ({"model_code": "EV9-AWD-LTD"}, (OEM_CUSTOMER,), (), "请管理员：在字典中补充代码"),
    ({"color": "玫瑰金"}, (OEM_CUSTOMER,), (), "请管理员：在字典中补充代码"),
    ({}, (dict(OEM_CUSTOMER, consent=False),), (), "无需处理：客户未授权，依法不录入"),
    ({}, (), (), "请操作员：先读取厂家客户"),
    ({"mobile": "021-6234 5678"}, (dict(OEM_CUSTOMER, mobile="021-6234 5678"),), (), "请厂家更正数据（更正后自动重试）"),
    ({}, (OEM_CUSTOMER,), (contract(contract_no="HT2026110099", oem_order_no=""),), "人工核对：两边数据冲突，在DMS中核对处理"),
])
def test_each_order_that_cannot_be_written_says_who_acts_on_it(changes, oem, contracts, remedy_text):
    """The 无法处理 sheet's 处理方式, from the reasons reconciliation really gives."""
    from dealerbot.review.sheets import remedy

    out = classify(order(**changes), ix(oem=oem, dms=[], contracts=contracts), D)
    assert out.reconcile_class in ("rejected", "conflict")
    assert remedy(out.reconcile_class, out.reason) == remedy_text


def test_a_record_rejected_when_read_is_for_the_oem_to_correct():
    from dealerbot.data import validate
    from dealerbot.review.sheets import REMEDY_OEM_DATA, remedy

    issue = validate.normalize_vin("LGXGX7A10TH000005").issue  # a wrong check digit
    assert issue is not None and issue.severity == "reject"
    assert remedy("rejected", f"读取时被拒绝：{issue.message}") == REMEDY_OEM_DATA

"""Reconciliation pinned exactly: the whole Outcome of each kind of order (class, reason a person
reads, planned write, customer), and what the ledger does with it (docs/testing.md, "Mutation
testing")."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from dealerbot.data.dictionary import load_dictionary
from dealerbot.errors import RecordRejected
from dealerbot.rekey.ledger import Action, CustomerPlan, PlannedAction, Policy
from dealerbot.rekey.reconcile import Indexes, Outcome, ReconcileReport, _decide, classify, customer_note, match_customer

D = load_dictionary(Path(__file__).resolve().parents[2] / "dictionary.yaml")
VIN = "LGXGX7A18TN000123"
ID = "11010519491231002X"
ID2 = "110105194912310013"
KEY = "XS2026000001"
TARGET = {"model_code": "DMS-GX7L", "color": "曜石黑", "vin": VIN, "price": "239800.00", "deposit": "0.00",
          "delivery_date": "2026-12-20", "oem_order_no": KEY, "status": "运输中"}
NEW_VALUES = {"name": "王芳", "mobile": "13812345678", "id_number": ID, "address": "杭州市"}


def order(**changes: object) -> dict:
    return {"order_no": KEY, "customer_name": "王芳", "mobile": "13812345678", "id_type": "身份证", "id_number": ID,
            "model_code": "GX7-25T-LUX", "color": "曜石黑", "vin": VIN, "price": Decimal("239800.00"), "status": "在途",
            "planned_delivery_date": date(2026, 12, 20), **changes}


OEM = {"customer_no": "CU0000001", "name": "王芳", "mobile": "13812345678", "id_number": ID, "city": "杭州市", "consent": True}


def dms(no: str = "KH000001", **changes: object) -> dict:
    return {"customer_no": no, "name": "王芳", "mobile": "13812345678", "id_number": ID, "address": "杭州市西湖区", **changes}


def contract(**changes: object) -> dict:
    return {"contract_no": "HT2026110001", "customer_no": "KH000001", "model_code": "DMS-GX7L", "color": "曜石黑",
            "vin": VIN, "price": "239800.00", "deposit": "0.00", "delivery_date": "2026-12-20", "oem_order_no": KEY,
            "status": "运输中", **changes}


def ix(oem=(OEM,), dms_customers=(), contracts=()) -> Indexes:
    return Indexes(list(oem), list(dms_customers), list(contracts))


def created(customer: CustomerPlan) -> Outcome:
    note = customer_note(customer)
    return Outcome(KEY, "create", note, action=PlannedAction("create_contract", KEY, TARGET, customer=customer, note=note))


AMBIGUOUS = "客户匹配不唯一（{}），请在“客户编号”列填写其中一个，或填“新建”，并选择“修改后同意”"


# -- creations: which customer ------------------------------------------------------------------

@pytest.mark.parametrize(("customers", "the_order", "plan"), [
    ([dms()], order(), CustomerPlan("existing", "KH000001")),
    ([dms(mobile="+86 138-1234-5678")], order(), CustomerPlan("existing", "KH000001")),  # the DMS's written differently
    ([dms(id_number=ID2)], order(), CustomerPlan("ambiguous", candidates=("KH000001",), values=NEW_VALUES)),
    ([dms(), dms("KH000002", id_number=ID2)], order(), CustomerPlan("existing", "KH000001")),
    ([dms(id_number=ID2), dms("KH000002", id_number="E12345678")], order(),
     CustomerPlan("ambiguous", candidates=("KH000001", "KH000002"), values=NEW_VALUES)),
    ([dms(id_number=ID2), dms("KH000002", id_number="E12345678"), dms("KH000003", id_number="E7654321")], order(),
     CustomerPlan("ambiguous", candidates=("KH000001", "KH000002", "KH000003"), values=NEW_VALUES)),
    # no ID number on the order: one of two with the mobile and no ID number is no match by ID
    ([dms(id_number=""), dms("KH000002", id_number="")], order(id_number=""),
     CustomerPlan("ambiguous", candidates=("KH000001", "KH000002"), values={**NEW_VALUES, "id_number": ""})),
    ([dms(mobile="13900000000")], order(), CustomerPlan("existing", "KH000001")),
    ([dms(mobile="13900000000"), dms("KH000002", mobile="13700000000")], order(),
     CustomerPlan("ambiguous", candidates=("KH000001", "KH000002"), values=NEW_VALUES)),
    ([dms(mobile="13900000000", id_number="")], order(), CustomerPlan("ambiguous", candidates=("KH000001",), values=NEW_VALUES)),
    ([], order(), CustomerPlan("new", values=NEW_VALUES)),
    # cases only the mobile decides (another name, no ID number in the DMS)
    ([dms(name="王小芳", id_number="")], order(), CustomerPlan("existing", "KH000001")),
    ([dms(name="王小芳", id_number="", mobile="+86 138-1234-5678")], order(), CustomerPlan("existing", "KH000001")),
    ([dms(name="王小芳", id_number="")], order(mobile="+86 138 1234 5678"), CustomerPlan("existing", "KH000001")),
    ([dms(name="王小芳", id_number=ID2), dms("KH000002", name="王大芳", id_number="")], order(),
     CustomerPlan("ambiguous", candidates=("KH000001", "KH000002"), values=NEW_VALUES)),
    ([dms(name="王小芳", id_number=ID2), dms("KH000002", name="王大芳", id_number="")], order(id_number=""),
     CustomerPlan("ambiguous", candidates=("KH000001", "KH000002"), values={**NEW_VALUES, "id_number": ""})),
    # two with the ID number, neither by mobile nor by name
    ([dms(name="王小芳", mobile="13900000000"), dms("KH000002", name="王大芳", mobile="13700000000")], order(),
     CustomerPlan("ambiguous", candidates=("KH000001", "KH000002"), values=NEW_VALUES)),
])
def test_a_new_contract_gets_its_customer_by_mobile_then_id_then_name(customers, the_order, plan) -> None:
    assert classify(the_order, ix(dms_customers=customers), D) == created(plan)


def test_a_new_customer_the_dms_would_refuse_rejects_the_order_with_every_reason() -> None:
    out = classify(order(mobile="", id_number="护照"), ix(oem=[{**OEM, "mobile": "", "id_number": "护照"}]), D)
    assert out == Outcome(KEY, "rejected", "无法在DMS新建客户：手机号：不能为空；"
                                          "证件号码：不是有效证件号码（18位身份证号，或护照等证件号如 E12345678）")


def test_a_new_customer_the_dms_would_refuse_is_a_rejection_naming_the_first_field() -> None:
    with pytest.raises(RecordRejected) as rej:
        match_customer(order(mobile=""), OEM, ix(), D)
    assert (rej.value.code, rej.value.field) == ("mobile_invalid", "mobile")


def test_a_contract_field_read_from_the_oem_customer_is_planned_from_it(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "dictionary.yaml").read_text(encoding="utf-8")
    line = "  oem_order_no:  {from: order.order_no, update: never}"
    own = tmp_path / "dictionary.yaml"
    own.write_text(text.replace(line, "  oem_order_no:  {from: customer.customer_no, update: never}"), encoding="utf-8")
    out = classify(order(), ix(dms_customers=[dms()]), load_dictionary(own))
    assert out.action.new_values["oem_order_no"] == "CU0000001"


def test_customer_notes() -> None:
    assert customer_note(CustomerPlan("existing", "KH000001")) == "客户：DMS现有客户 KH000001"
    assert customer_note(CustomerPlan("new")) == "客户：将在DMS新建客户档案"
    assert customer_note(CustomerPlan("ambiguous", candidates=("KH1", "KH2"))) == AMBIGUOUS.format("KH1、KH2")
    assert customer_note(CustomerPlan("none")) == ""


# -- creations: why not ---------------------------------------------------------------------------

def test_orders_that_cannot_become_contracts_say_exactly_why() -> None:
    other = contract(contract_no="HT2026110009", oem_order_no="")
    assert classify(order(), ix(contracts=[other]), D) == Outcome(
        KEY, "conflict", f"VIN {VIN} 已在DMS合同 HT2026110009 中（厂家订单号 空），请人工核对后在DMS中处理",
        contract_no="HT2026110009")
    assert classify(order(), ix(contracts=[dict(other, oem_order_no="XS2026000099")]), D).reason == (
        f"VIN {VIN} 已在DMS合同 HT2026110009 中（厂家订单号 XS2026000099），请人工核对后在DMS中处理")
    assert classify(order(status="已取消"), ix(), D) == Outcome(KEY, "in_sync", "订单已取消且DMS中没有合同：无需处理")
    assert classify(order(), ix(oem=[]), D) == Outcome(
        KEY, "rejected", "厂家门户中找不到该订单客户的资料和授权（先运行 oem-customers）")
    assert classify(order(), ix(oem=[{**OEM, "consent": False}]), D) == Outcome(
        KEY, "rejected", "客户 CU0000001 未授权数据共享（未授权）：按个人信息保护法不录入DMS")
    assert classify(order(vin="LGXGX7A17TN000123"), ix(), D) == Outcome(
        KEY, "rejected", "DMS不会接受：VIN：VIN校验位错误：应为 8，实为 7（LGXGX7A17TN000123）")
    assert classify(order(model_code="GX1-NEW"), ix(), D) == Outcome(
        KEY, "rejected", "未映射的车型代码 GX1-NEW（请在 dictionary.yaml 的 models 中添加）")


def test_the_oem_customer_is_found_by_id_else_by_mobile_and_name_and_consent_must_hold_for_all() -> None:
    by_mobile = {**OEM, "id_number": ""}
    assert Indexes([by_mobile], [], []).oem_customer_for(order(id_number="")) == by_mobile
    assert Indexes([{**by_mobile, "name": "王小芳"}], [], []).oem_customer_for(order(id_number="")) is None
    assert Indexes([{**by_mobile, "mobile": ""}], [], []).oem_customer_for(order(id_number="", mobile="")) is None
    twice = [{**OEM, "customer_no": "CU0000002"}, {**OEM, "consent": False, "customer_no": "CU0000003"}, OEM]
    assert Indexes(twice, [], []).oem_customer_for(order())["customer_no"] == "CU0000003"


def test_a_dms_customer_is_indexed_once() -> None:
    first, again = dms(), dms(name="王芳芳", mobile="13900000000")
    i = Indexes([], [first, again], [])
    assert i.dms_customers == {"KH000001": first}
    assert dict(i.dms_by_mobile) == {"13812345678": [first]} and dict(i.dms_by_name) == {"王芳": [first]}
    assert dict(i.dms_by_id) == {ID: [first]}


# -- updates ------------------------------------------------------------------------------------

def test_an_order_as_the_contract_has_it_is_in_sync_with_every_field_agreed() -> None:
    out = classify(order(), ix(contracts=[contract()]), D)
    assert out == Outcome(KEY, "in_sync", contract_no="HT2026110001",
                          agreed={f: {"oem": v, "dms": v} for f, v in TARGET.items()})


def test_an_update_names_each_change_and_an_empty_side_as_empty() -> None:
    out = classify(order(planned_delivery_date=None), ix(contracts=[contract(status="已配车")]), D,
                   {"delivery_date": {"oem": "2026-12-20", "dms": "2026-12-20"}})
    current = {**TARGET, "status": "已配车"}
    action = PlannedAction("update_contract", KEY, {**current, "status": "运输中", "delivery_date": ""}, current,
                           contract_no="HT2026110001")
    assert out == Outcome(KEY, "update", "更新合同：交车日期 2026-12-20→空；合同状态 已配车→运输中", "HT2026110001", action,
                          {f: {"oem": v, "dms": v} for f, v in TARGET.items() if f not in ("status", "delivery_date")})


def test_conflicts_say_which_side_has_what_and_why() -> None:
    c = contract(color="", delivery_date="2027-01-05", status="未知状态")
    out = classify(order(), ix(contracts=[c]), D, {"delivery_date": {"oem": "2026-12-01", "dms": "2026-12-31"}})
    assert out.reconcile_class == "conflict" and out.action.conflict and out.reason == out.action.note
    assert out.reason == ("颜色 DMS为「空」，厂家为「曜石黑」（两边不一致且没有同步记录）；"
                          "交车日期 DMS为「2027-01-05」，厂家为「2026-12-20」（双方都已修改）；"
                          "合同状态 DMS为「未知状态」，厂家映射为「运输中」，不在 status_order 中")
    current = {**TARGET, "color": "", "delivery_date": "2027-01-05", "status": "未知状态"}
    assert out == Outcome(KEY, "conflict", out.reason, "HT2026110001", PlannedAction(
        "update_contract", KEY, TARGET, current, contract_no="HT2026110001", conflict=True, note=out.reason),
        {f: {"oem": v, "dms": v} for f, v in TARGET.items() if f not in ("color", "delivery_date", "status")})
    cancelled = classify(order(), ix(contracts=[contract(status="已取消")]), D)
    assert cancelled.reason == "DMS合同已取消，但厂家订单状态为 运输中"
    assert cancelled.action.new_values["status"] == "运输中"
    no_date = classify(order(planned_delivery_date=None), ix(contracts=[contract()]), D)
    assert no_date.reason == "交车日期 DMS为「2026-12-20」，厂家为「空」（两边不一致且没有同步记录）"


def test_a_difference_a_reviewer_chose_stays_while_later_fields_still_update() -> None:
    base = {"color": {"oem": "曜石黑", "dms": "珍珠白"}}
    out = classify(order(), ix(contracts=[contract(color="珍珠白", status="已配车")]), D, base)
    assert out.reconcile_class == "update" and out.action.changes == {"status": ("已配车", "运输中")}


def test_a_change_staff_made_in_the_dms_stays_while_later_fields_still_update() -> None:
    base = {"color": {"oem": "曜石黑", "dms": "曜石黑"}}
    out = classify(order(), ix(contracts=[contract(color="珍珠白", status="已配车")]), D, base)
    assert out.reconcile_class == "update" and out.action.changes == {"status": ("已配车", "运输中")}


def test_fill_empty_fields_are_filled_never_emptied_and_sync_fields_may_be_emptied() -> None:
    out = classify(order(vin=""), ix(contracts=[contract()]), D)
    assert out.reconcile_class == "in_sync"  # the OEM has no VIN (yet): the DMS's stays
    filled = classify(order(), ix(contracts=[contract(vin="")]), D)
    assert filled.reconcile_class == "update" and filled.action.changes == {"vin": ("", VIN)}
    assert filled.reason == f"更新合同：VIN 空→{VIN}"
    emptied = classify(order(planned_delivery_date=None), ix(contracts=[contract()]), D,
                       {"delivery_date": {"oem": "2026-12-20", "dms": "2026-12-20"}})
    assert emptied.action.changes == {"delivery_date": ("2026-12-20", "")}


def test_a_cancellation_is_its_own_kind() -> None:
    out = classify(order(status="已取消"), ix(contracts=[contract()]), D)
    assert out.reconcile_class == "update" and out.action.kind == "cancel_contract" and out.reason == "取消合同：合同状态 运输中→已取消"


# -- what the ledger does with an outcome ---------------------------------------------------------

def _action(planned: PlannedAction, state: str, **kw: object) -> Action:
    return Action(planned.kind, planned.natural_key, planned.new_values, planned.old_values, planned.contract_no,
                  planned.customer, planned.conflict, planned.note, id=7, state=state,
                  plan_checksum=kw.pop("plan_checksum", planned.checksum()), **kw)


def _decided(outcome: Outcome, latest: Action | None, policy: Policy = Policy()):
    supersede: list[int] = []
    new: list[tuple[PlannedAction, bool]] = []
    _decide(outcome, latest, policy, supersede, new, ReconcileReport(Counter(), []))
    return outcome, supersede, new


def test_a_new_plan_waits_for_approval_and_supersedes_an_open_one_with_other_content() -> None:
    out = classify(order(), ix(dms_customers=[dms()]), D)
    _, supersede, new = _decided(out, None)
    assert (supersede, new) == ([], [(out.action, True)])
    older = _action(replace(out.action, new_values={**TARGET, "color": "珍珠白"}), "approved")
    _, supersede, new = _decided(classify(order(), ix(dms_customers=[dms()]), D), older)
    assert (supersede, new) == ([7], [(out.action, True)])


def test_the_same_plan_keeps_its_approval_or_its_failure_and_a_skipped_one_stays_skipped() -> None:
    out = classify(order(), ix(dms_customers=[dms()]), D)
    reason = out.reason
    for state in ("planned", "approved"):
        done, supersede, new = _decided(classify(order(), ix(dms_customers=[dms()]), D), _action(out.action, state))
        assert (done.reason, supersede, new) == (reason, [], [])
    done, supersede, new = _decided(classify(order(), ix(dms_customers=[dms()]), D),
                                    _action(out.action, "failed", failure_reason="DMS拒绝"))
    assert (done.reason, supersede, new) == ("上次写入失败：DMS拒绝", [], [])
    done, supersede, new = _decided(classify(order(), ix(dms_customers=[dms()]), D), _action(out.action, "skipped"))
    assert (done.reason, supersede, new) == (f"{reason}；审核时已跳过", [], [])
    bare = Outcome(KEY, "create", "", action=out.action)
    assert _decided(bare, _action(out.action, "skipped"))[0].reason == "审核时已跳过"
    # skipped with other content, or superseded: planned anew
    done, supersede, new = _decided(classify(order(), ix(dms_customers=[dms()]), D),
                                    _action(out.action, "skipped", plan_checksum="0"))
    assert (supersede, new) == ([], [(out.action, True)])


def test_an_action_being_written_is_left_to_the_rekey_bot() -> None:
    out = classify(order(), ix(dms_customers=[dms()]), D)
    for state in ("in_progress", "written"):
        done, supersede, new = _decided(classify(order(), ix(dms_customers=[dms()]), D), _action(out.action, state))
        assert (done.reason, supersede, new) == (f"{out.reason}；正在写入DMS（上次运行未完成，下次运行继续）", [], [])
    bare = Outcome(KEY, "in_sync")
    assert _decided(bare, _action(out.action, "written"))[0].reason == "正在写入DMS（上次运行未完成，下次运行继续）"


def test_nothing_to_write_supersedes_an_open_action_only() -> None:
    out = classify(order(), ix(dms_customers=[dms()]), D)
    assert _decided(Outcome(KEY, "in_sync"), _action(out.action, "planned"))[1:] == ([7], [])
    assert _decided(Outcome(KEY, "in_sync"), _action(out.action, "verified"))[1:] == ([], [])
    assert _decided(Outcome(KEY, "in_sync"), None)[1:] == ([], [])


def test_a_kind_not_enabled_is_planned_for_a_person_saying_how_to_enable_it() -> None:
    out = classify(order(status="已取消"), ix(contracts=[contract()]), D)
    planned = out.action
    _, _, new = _decided(out, None, Policy(approval_required=frozenset(), enabled=frozenset({"update_contract"})))
    (action, needs_approval), = new
    assert needs_approval and action == replace(
        planned, note="取消合同未启用：在 dealerbot.toml 的 [rekey] enabled 中加入 cancel_contract 后才会写入")
    assert out.action is action
    conflict = replace(planned, conflict=True, natural_key="XS9", contract_no="HT9", old_values={"status": "x"})
    _, _, new = _decided(Outcome("XS9", "conflict", "", action=conflict), None, Policy(enabled=frozenset()))
    assert new[0][0] == replace(conflict, note=new[0][0].note)
    noted = Outcome(KEY, "update", "", action=replace(out.action, note="备注"))
    _, _, new = _decided(noted, None, Policy(approval_required=frozenset(), enabled=frozenset()))
    assert new[0][0].note == "备注；取消合同未启用：在 dealerbot.toml 的 [rekey] enabled 中加入 cancel_contract 后才会写入"
    update = classify(order(), ix(contracts=[contract(status="已配车")]), D)
    assert _decided(update, None)[2] == [(update.action, False)]  # a status moving on needs nobody

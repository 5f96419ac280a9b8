"""Pipeline steps compose into each entity's pipeline; rejects carry code, field and reason."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from dealerbot.data.pipeline import pipeline_for
from dealerbot.data.records import OEM_CUSTOMER, OEM_ORDER, Item
from dealerbot.errors import RecordRejected


def order(**overrides):
    data = {
        "order_no": "XS2026000001", "customer_name": " 王 芳 ", "mobile": "138 1234 5678",
        "id_type": "身份证", "id_number": "11010519491231002X", "model_code": "GX7-25T-LUX",
        "color": "白色", "vin": "lvshcamb1ce054249", "price": "189,800.00", "status": "已配车",
        "planned_delivery_date": "2026-12-01", "updated_at": "2026-11-20 10:31:05",
    }
    data.update(overrides)
    return Item(OEM_ORDER, data)


def test_order_is_normalised_typed_and_its_repairs_recorded():
    item = pipeline_for(OEM_ORDER).process(order())
    d = item.data
    assert d["customer_name"] == "王芳" and d["mobile"] == "13812345678" and d["vin"] == "LVSHCAMB1CE054249"
    assert d["price"] == Decimal("189800.00") and d["planned_delivery_date"] == date(2026, 12, 1)
    assert d["updated_at"] == datetime(2026, 11, 20, 10, 31, 5)
    assert {(i.field, i.severity) for i in item.issues} == {("customer_name", "repaired"), ("mobile", "repaired")}


def test_unrepairable_mobile_is_kept_and_flagged_not_rejected():
    item = pipeline_for(OEM_ORDER).process(order(mobile="021-6234 5678"))
    assert item.data["mobile"] == "021-6234 5678"
    assert [(i.field, i.code, i.severity) for i in item.issues if i.field == "mobile"] == [("mobile", "mobile_landline", "flag")]


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"vin": "LVSHCAMB5CE054249"}, "vin_check_digit", "vin"),
        ({"id_number": "110105194912310021"}, "id_check_code", "id_number"),
        ({"customer_name": "  "}, "required", "customer_name"),
        ({"price": "十八万"}, "bad_value", "price"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(overrides, code, field):
    with pytest.raises(RecordRejected) as err:
        pipeline_for(OEM_ORDER).process(order(**overrides))
    assert err.value.code == code and err.value.field == field and err.value.reason


def test_every_reject_reason_is_reported_together():
    with pytest.raises(RecordRejected) as err:
        pipeline_for(OEM_ORDER).process(order(vin="LVSHCAMB5CE054249", id_number="110105194912310021"))
    assert "VIN" in err.value.reason and "身份证" in err.value.reason


def test_same_customer_twice_in_one_run_is_flagged_as_duplicate():
    pipe = pipeline_for(OEM_CUSTOMER)
    base = {"name": "李雷", "id_type": "身份证", "id_number": "11010519491231002X", "city": "杭州", "consent": "已授权",
            "updated_at": "2026-11-20 10:31:05"}
    first = pipe.process(Item(OEM_CUSTOMER, {**base, "customer_no": "CU1", "mobile": "13812345678"}))
    second = pipe.process(Item(OEM_CUSTOMER, {**base, "customer_no": "CU2", "mobile": "+86 138 1234 5678"}))
    assert not [i for i in first.issues if i.code == "duplicate"]
    dup = [i for i in second.issues if i.code == "duplicate"]
    assert dup and "CU1" in dup[0].message and dup[0].severity == "flag"
    assert second.data["consent"] is True
    # A fresh pipeline (a new run) starts with no memory.
    assert not [i for i in pipeline_for(OEM_CUSTOMER).process(Item(OEM_CUSTOMER, {**base, "customer_no": "CU2", "mobile": "13812345678"})).issues if i.code == "duplicate"]


def test_control_characters_bidi_overrides_and_overlong_text_are_flagged_not_passed():
    from dealerbot.data.pipeline import pipeline_for
    from dealerbot.data.records import OEM_CUSTOMER, Item

    rows = {
        "CU0000001": {"name": "王\u202e芳", "city": "杭州市"},        # right-to-left override
        "CU0000002": {"name": "李强", "city": "杭州\x07市"},          # a bell in the city
        "CU0000003": {"name": "张三", "city": "杭" * 300},            # 300 characters
        "CU0000004": {"name": "赵四", "city": "杭州市"},
    }
    p = pipeline_for(OEM_CUSTOMER)
    flagged = {}
    for no, row in rows.items():
        item = p.process(Item(OEM_CUSTOMER, {"customer_no": no, "mobile": "13812345678", "id_type": "护照",
                                             "id_number": "E12345678", "consent": "已授权", **row}))
        flagged[no] = [i.message for i in item.issues if i.code == "suspicious_text"]
    assert "双向文字控制符" in flagged["CU0000001"][0] and flagged["CU0000001"][0].startswith("客户姓名")
    assert "控制字符" in flagged["CU0000002"][0] and "过长（300" in flagged["CU0000003"][0]
    assert flagged["CU0000004"] == []

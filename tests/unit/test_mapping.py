"""dealerbot.data.mapping pinned exactly: what the DMS would refuse, field by field, in the words a
reviewer reads (docs/testing.md, "Mutation testing")."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from dealerbot.data.dictionary import load_dictionary
from dealerbot.data.mapping import (
    check_contract,
    check_customer,
    contract_values,
    customer_values,
    dms_values,
    form_text,
    issues_text,
)
from dealerbot.data.validate import Issue
from dealerbot.errors import RecordRejected

SHIPPED = Path(__file__).resolve().parents[2] / "dictionary.yaml"
D = load_dictionary(SHIPPED)
VIN = "LGXGX7A18TN000123"
GOOD = {"model_code": "DMS-GX7L", "color": "曜石黑", "vin": VIN, "price": "239800.00", "deposit": "10000.00",
        "delivery_date": "2026-12-20", "oem_order_no": "XS2026000001", "status": "运输中"}
CUSTOMER = {"name": "王芳", "mobile": "13812345678", "id_number": "11010519491231002X", "address": "杭州市"}
STATUSES = "待配车、已配车、运输中、待交车、已交车、已取消"


def refused(field: str, code: str, message: str) -> Issue:
    return Issue(field, code, "reject", message)


def test_good_values_pass_both_checks() -> None:
    assert check_contract(GOOD, D) == [] and check_customer(CUSTOMER) == []


@pytest.mark.parametrize(("change", "issues"), [
    ({"model_code": "GX7-25T-LUX"},
     [refused("model_code", "dms_model", "DMS车型代码：「GX7-25T-LUX」不是DMS车型代码（见 dictionary.yaml 的 models）")]),
    ({"color": ""}, [refused("color", "required", "颜色：不能为空")]),
    ({"vin": "LGXGX7A17TN000123"}, [refused("vin", "vin_check_digit", "VIN：VIN校验位错误：应为 8，实为 7（LGXGX7A17TN000123）")]),
    ({"vin": VIN.lower()}, [refused("vin", "vin_format", f"VIN：「{VIN.lower()}」应为17位大写字母数字")]),
    ({"price": "0.00", "deposit": "0.00"}, [refused("price", "price", "车价：「0.00」不是大于0的金额")]),
    ({"price": "十万"}, [refused("price", "price", "车价：「十万」不是大于0的金额")]),
    ({"price": "1.00", "deposit": "1.00"}, []),  # a deposit may be the whole price
    ({"price": "1,000.00", "deposit": ""}, []),  # a thousands separator; no deposit is 0
    ({"deposit": "-1.00"}, [refused("deposit", "deposit", "定金：「-1.00」不是有效金额")]),
    ({"deposit": "239800.01"}, [refused("deposit", "deposit", "定金：不能大于车价")]),
    ({"delivery_date": "2026/12/20"}, [refused("delivery_date", "date", "交车日期：「2026/12/20」应为 YYYY-MM-DD")]),
    ({"delivery_date": ""}, []),
    ({"status": "交车"}, [refused("status", "dms_status", f"合同状态：「交车」不是DMS合同状态（{STATUSES}）")]),
    ({"oem_order_no": ""}, [refused("oem_order_no", "required", "厂家订单号：不能为空")]),
])
def test_each_contract_field_the_dms_would_refuse_is_named_with_its_value(change: dict, issues: list[Issue]) -> None:
    assert check_contract({**GOOD, **change}, D) == issues


def test_a_contract_without_any_value_lists_every_required_field() -> None:
    assert check_contract({}, D) == [
        refused("model_code", "dms_model", "DMS车型代码：「」不是DMS车型代码（见 dictionary.yaml 的 models）"),
        refused("color", "required", "颜色：不能为空"),
        refused("price", "price", "车价：「」不是大于0的金额"),
        refused("status", "dms_status", f"合同状态：「」不是DMS合同状态（{STATUSES}）"),
        refused("oem_order_no", "required", "厂家订单号：不能为空"),
    ]


@pytest.mark.parametrize(("change", "issues"), [
    ({"name": "王" * 30}, []),
    ({"name": "王" * 31}, [refused("name", "name_length", "客户姓名：超过30个字")]),
    ({"name": "=HYPERLINK(1)"}, [refused(
        "name", "suspicious_text", "客户姓名：「=HYPERLINK(1)」以「=」开头，像电子表格公式，不会录入DMS，请核对厂家门户中的客户资料")]),
    ({"mobile": "1381234567"}, [refused("mobile", "mobile_invalid", "手机号：不是11位手机号（10 个字符），DMS无法建档")]),
    ({"mobile": "12812345678"}, [refused("mobile", "mobile_invalid", "手机号：不是11位手机号（11 个字符），DMS无法建档")]),
    ({"id_number": "110105194912310021"},
     [refused("id_number", "id_check_code", "证件号码：身份证校验码错误：应为 X，实为 1（110105194912310021）")]),
    ({"id_number": "E12345678"}, []),  # a passport
    ({"id_number": "护照E123"},
     [refused("id_number", "id_format", "证件号码：不是有效证件号码（18位身份证号，或护照等证件号如 E12345678）")]),
    ({"address": ""}, [refused("address", "required", "地址：不能为空")]),
])
def test_each_customer_field_the_dms_would_refuse_is_named(change: dict, issues: list[Issue]) -> None:
    assert check_customer({**CUSTOMER, **change}) == issues


def test_a_customer_without_any_value_lists_every_field() -> None:
    assert check_customer({}) == [
        refused("name", "required", "客户姓名：不能为空"),
        refused("mobile", "mobile_invalid", "手机号：不能为空"),
        refused("id_number", "id_format", "证件号码：不是有效证件号码（18位身份证号，或护照等证件号如 E12345678）"),
        refused("address", "required", "地址：不能为空"),
    ]


def test_issues_are_joined_for_a_person_with_a_chinese_semicolon() -> None:
    assert issues_text(check_customer({**CUSTOMER, "name": "", "address": ""})) == "客户姓名：不能为空；地址：不能为空"


def test_form_text_of_blank_and_unreadable_values() -> None:
    assert form_text("  ", "decimal") == "" and form_text("  ", "date") == ""
    with pytest.raises(ValueError, match="^不是金额：「inf」$"):
        form_text(float("inf"), "decimal")


def test_a_dms_contract_read_back_is_form_text_of_each_kind() -> None:
    contract = {"price": Decimal("234800"), "deposit": 0, "delivery_date": datetime(2026, 12, 20, 0, 0), "vin": " " + VIN}
    assert dms_values(contract) == {
        "model_code": "", "color": "", "vin": VIN, "price": "234800.00", "deposit": "0.00",
        "delivery_date": "2026-12-20", "oem_order_no": "", "status": "",
    }


def _order(**changes: object) -> dict:
    return {"order_no": "XS2026000001", "customer_name": "王芳", "mobile": "13812345678", "id_number": "11010519491231002X",
            "model_code": "GX7-25T-LUX", "color": "曜石黑", "vin": VIN, "price": Decimal("239800.00"),
            "status": "在途", "planned_delivery_date": date(2026, 12, 20), **changes}


def test_an_unmapped_code_rejects_the_order_naming_the_table_and_the_field() -> None:
    with pytest.raises(RecordRejected) as rej:
        contract_values(_order(model_code="GX1-NEW"), None, D)
    assert (rej.value.code, rej.value.field) == ("unmapped_models", "model_code")
    assert rej.value.reason == "未映射的车型代码 GX1-NEW（请在 dictionary.yaml 的 models 中添加）"
    assert contract_values(_order(color=""), None, D)["color"] == ""  # empty is not looked up: check_contract names it


def test_a_rule_reading_the_oem_customer_without_one_rejects_the_order(tmp_path: Path) -> None:
    with pytest.raises(RecordRejected) as rej:
        customer_values(_order(), None, D)
    assert (rej.value.code, rej.value.field) == ("no_oem_customer", "city")
    assert rej.value.reason == "厂家门户中找不到该订单的客户资料（先运行 oem-customers）"
    # A contract field may come from the OEM customer too (a store's own dictionary).
    text = SHIPPED.read_text(encoding="utf-8")
    line = "  oem_order_no:  {from: order.order_no, update: never}"
    assert line in text
    own = tmp_path / "dictionary.yaml"
    own.write_text(text.replace(line, "  oem_order_no:  {from: customer.customer_no, update: never}"), encoding="utf-8")
    assert contract_values(_order(), {"customer_no": "CU0000001"}, load_dictionary(own))["oem_order_no"] == "CU0000001"

"""OEM records -> the exact text typed into the DMS's forms, and the DMS's own rules on it.

Pure functions (no I/O). Values to write are always *form text*: ``"239800.00"`` for money,
``"2026-12-20"`` for dates, stripped strings otherwise, so that what is planned, what a reviewer
approves, what is typed and what is read back compare as plain strings.

:func:`contract_values` and :func:`customer_values` raise
:class:`~dealerbot.errors.RecordRejected` for what no rule settles (an unmapped code, a missing
source record); :func:`check_contract` and :func:`check_customer` list what the DMS would refuse,
so that it is caught before anything is typed (and when a reviewer edits a value).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dealerbot.data import validate
from dealerbot.data.dictionary import CONTRACT_FIELDS, CUSTOMER_FIELDS, TABLE_TEXT, Dictionary, FieldRule, dms_kind
from dealerbot.errors import RecordRejected

CONTRACT_HEADERS = {
    "customer_no": "客户编号", "model_code": "DMS车型代码", "color": "颜色", "vin": "VIN", "price": "车价",
    "deposit": "定金", "delivery_date": "交车日期", "oem_order_no": "厂家订单号", "status": "合同状态",
}
CUSTOMER_HEADERS = {"name": "客户姓名", "mobile": "手机号", "id_number": "证件号码", "address": "地址"}
_OTHER_ID = re.compile(r"^[A-Z]{1,2}\d{7,9}$")
_CENT = Decimal("0.01")


def form_text(value: Any, kind: str = "text") -> str:
    """A value as typed into a DMS form: money with two decimals and no separators, dates as
    ``YYYY-MM-DD``, everything else stripped text; None is empty.

    Raises:
        ValueError: a money or date value that cannot be read (the message quotes it).
    """
    if value is None:
        return ""
    if kind == "decimal":
        if isinstance(value, str):
            if not value.strip():
                return ""
            parsed = validate.parse_price(value)
            if parsed is None:
                return ""
            value = parsed
        try:
            return str(Decimal(str(value)).quantize(_CENT))
        except InvalidOperation:
            raise ValueError(f"不是金额：「{value}」") from None
    if kind == "date":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        text = str(value).strip()
        if not text:
            return ""
        parsed_date = validate.parse_date(text)
        return parsed_date.isoformat() if parsed_date else ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number typed into a text cell of a workbook
    return str(value).strip()


def dms_values(contract: dict[str, Any]) -> dict[str, str]:
    """A DMS contract's fields (as stored or as read from its list) as form text."""
    return {f: form_text(contract.get(f), dms_kind(f)) for f in CONTRACT_FIELDS}


def _source(rule: FieldRule, order: dict[str, Any], customer: dict[str, Any] | None) -> Any:
    if rule.value is not None:
        return rule.value
    side, _, name = (rule.source or "").partition(".")
    if side == "customer":
        if customer is None:
            raise RecordRejected("no_oem_customer", "厂家门户中找不到该订单的客户资料（先运行 oem-customers）", name)
        return customer.get(name)
    return order.get(name)


def _mapped(dictionary: Dictionary, field: str, rule: FieldRule, raw: Any) -> Any:
    if rule.map is None or raw in (None, ""):
        return raw
    mapped = dictionary.lookup(rule.map, str(raw))
    if mapped is None:
        raise RecordRejected(
            f"unmapped_{rule.map}",
            f"未映射的{TABLE_TEXT[rule.map]} {raw}（请在 {dictionary.path.name} 的 {rule.map} 中添加）",
            field,
        )
    return mapped


def contract_values(order: dict[str, Any], customer: dict[str, Any] | None, dictionary: Dictionary) -> dict[str, str]:
    """The DMS contract fields for an OEM order, as form text, through the dictionary.

    Raises:
        RecordRejected: a code the dictionary lacks (``unmapped_models`` ...), or a rule reads
            the OEM customer and there is none.
    """
    out: dict[str, str] = {}
    for field in CONTRACT_FIELDS:
        rule = dictionary.contract[field]
        out[field] = form_text(_mapped(dictionary, field, rule, _source(rule, order, customer)), dms_kind(field))
    return out


def customer_values(order: dict[str, Any], customer: dict[str, Any] | None, dictionary: Dictionary) -> dict[str, str]:
    """The fields of a new DMS customer for an OEM order, as form text.

    Raises:
        RecordRejected: a rule reads the OEM customer and there is none.
    """
    return {f: form_text(_source(dictionary.customer[f], order, customer)) for f in CUSTOMER_FIELDS}


def check_contract(values: dict[str, str], dictionary: Dictionary) -> list[validate.Issue]:
    """What the DMS would refuse in a contract's values (one issue per bad field)."""
    issues: list[validate.Issue] = []

    def bad(field: str, code: str, message: str) -> None:
        issues.append(validate.Issue(field, code, "reject", f"{CONTRACT_HEADERS[field]}：{message}"))

    if values.get("model_code", "") not in set(dictionary.models.values()):
        bad("model_code", "dms_model", f"「{values.get('model_code', '')}」不是DMS车型代码（见 {dictionary.path.name} 的 models）")
    if not values.get("color"):
        bad("color", "required", "不能为空")
    vin = values.get("vin", "")
    if vin:
        checked = validate.normalize_vin(vin)
        if checked.issue is not None or checked.value != vin:
            bad("vin", checked.issue.code if checked.issue else "vin_format",
                checked.issue.message if checked.issue else f"「{vin}」应为17位大写字母数字")
    price = _money(values.get("price", ""))
    if price is None or price <= 0:
        bad("price", "price", f"「{values.get('price', '')}」不是大于0的金额")
    deposit = _money(values.get("deposit", "") or "0")
    if deposit is None or deposit < 0:
        bad("deposit", "deposit", f"「{values.get('deposit', '')}」不是有效金额")
    elif price is not None and deposit > price:
        bad("deposit", "deposit", "不能大于车价")
    day = values.get("delivery_date", "")
    if day and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        bad("delivery_date", "date", f"「{day}」应为 YYYY-MM-DD")
    if values.get("status", "") not in dictionary.dms_statuses:
        bad("status", "dms_status", f"「{values.get('status', '')}」不是DMS合同状态（{'、'.join(dictionary.dms_statuses)}）")
    if not values.get("oem_order_no"):
        bad("oem_order_no", "required", "不能为空")
    return issues


def check_customer(values: dict[str, str]) -> list[validate.Issue]:
    """What the DMS would refuse in a new customer's values."""
    issues: list[validate.Issue] = []

    def bad(field: str, code: str, message: str) -> None:
        issues.append(validate.Issue(field, code, "reject", f"{CUSTOMER_HEADERS[field]}：{message}"))

    name = values.get("name", "")
    if not name:
        bad("name", "required", "不能为空")
    elif len(name) > 30:
        bad("name", "name_length", "超过30个字")
    elif why := validate.text_injection(name):  # a formula or markup is never typed into the DMS as a name
        bad("name", "suspicious_text", f"「{name}」{why}，不会录入DMS，请核对厂家门户中的客户资料")
    mobile = values.get("mobile", "")
    if not re.fullmatch(r"1[3-9]\d{9}", mobile):
        bad("mobile", "mobile_invalid", f"不是11位手机号（{len(mobile)} 个字符），DMS无法建档" if mobile else "不能为空")
    idn = values.get("id_number", "")
    if re.fullmatch(r"\d{17}[\dX]", idn):
        checked = validate.normalize_id_number("身份证", idn)
        if checked.issue is not None:
            bad("id_number", checked.issue.code, checked.issue.message)
    elif not _OTHER_ID.match(idn):
        bad("id_number", "id_format", "不是有效证件号码（18位身份证号，或护照等证件号如 E12345678）")
    if not values.get("address"):
        bad("address", "required", "不能为空")
    return issues


def _money(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "")) if text.strip() else None
    except InvalidOperation:
        return None


def issues_text(issues: list[validate.Issue]) -> str:
    """Operator-facing reasons of ``issues``, joined."""
    return "；".join(i.message for i in issues)

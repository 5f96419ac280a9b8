"""dealerbot.data.validate pinned exactly: the whole Issue a person reads (field, code, severity and the
Chinese message), the edges of each rule. Written against the mutants ./run.sh mutants found
surviving the broader tests in test_validate.py (docs/testing.md, "Mutation testing")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dealerbot.data.validate import (
    Issue,
    id_check_code,
    normalize_id_number,
    normalize_mobile,
    normalize_name,
    normalize_vin,
    parse_price,
    text_injection,
    vin_check_digit,
)


@pytest.mark.parametrize(("cp", "cjk"), [
    (0x4E00, True), (0x9FFF, True), (0x4DFF, False), (0xA000, False),  # unified ideographs
    (0x3400, True), (0x4DBF, True), (0x33FF, False), (0x4DC0, False),  # extension A
    (0xF900, True), (0xFAFF, True), (0xF8FF, False), (0xFB00, False),  # compatibility ideographs
    (0x20000, True), (0x3134F, True), (0x1FFFF, False), (0x31350, False),  # extensions B..G
    (0x3007, True), (0x3008, False), (0x00B7, True), (0x30FB, True), (0x30FC, False),
])
def test_a_space_between_two_chinese_characters_goes_at_the_edges_of_each_block(cp: int, cjk: bool) -> None:
    ch = chr(cp)
    checked = normalize_name(f"{ch} {ch}")
    assert checked.value == (f"{ch}{ch}" if cjk else f"{ch} {ch}")


def test_vin_check_digit_errors_name_the_length_and_the_position_of_the_bad_character() -> None:
    with pytest.raises(ValueError, match=r"^VIN must be 17 characters, got 16: 'LSVAM4187C205478'$"):
        vin_check_digit("LSVAM4187C205478")
    with pytest.raises(ValueError, match=r"^invalid VIN character 'I' at position 1: 'ISVAM4187C2054781'$"):
        vin_check_digit("ISVAM4187C2054781")
    with pytest.raises(ValueError, match=r"^invalid VIN character 'O' at position 10: "):
        vin_check_digit("LSVAM4187O2054781")


def test_id_check_code_error_quotes_the_body() -> None:
    with pytest.raises(ValueError, match=r"^ID number body must be 17 digits: '1101051949123100'$"):
        id_check_code("1101051949123100")


@pytest.mark.parametrize(("raw", "issue"), [
    ("LSVAM4187C20547", Issue("vin", "vin_length", "reject", "VIN应为17位，实为15位（LSVAM4187C20547）")),
    ("LSVIM4187O2054781", Issue("vin", "vin_chars", "reject",
                                "VIN含非法字符 IO（VIN不允许 I、O、Q 及字母数字以外的字符）（LSVIM4187O2054781）")),
    ("LSVAM4187C2054781", Issue("vin", "vin_check_digit", "reject", "VIN校验位错误：应为 0，实为 7（LSVAM4187C2054781）")),
])
def test_a_refused_vin_says_exactly_why(raw: str, issue: Issue) -> None:
    assert normalize_vin(raw).issue == issue


@pytest.mark.parametrize(("raw", "value", "issue"), [
    (None, "", Issue("mobile", "required", "flag", "缺少手机号")),
    ("021-6234 5678", "021-6234 5678", Issue("mobile", "mobile_landline", "flag", "填写的是固定电话而非手机号：「021-6234 5678」")),
    ("+86 138 1234 5678", "13812345678",
     Issue("mobile", "mobile_repaired", "repaired", "手机号已自动修正：「+86 138 1234 5678」→ 13812345678")),
    ("12345", "12345", Issue("mobile", "mobile_invalid", "flag", "手机号无效：「12345」不是中国大陆11位手机号")),
    # a valid foreign landline is no Chinese landline: invalid, not a landline flag
    ("+44 20 7946 0018", "+44 20 7946 0018",
     Issue("mobile", "mobile_invalid", "flag", "手机号无效：「+44 20 7946 0018」不是中国大陆11位手机号")),
])
def test_a_mobile_flag_says_exactly_why(raw: str | None, value: str, issue: Issue) -> None:
    checked = normalize_mobile(raw)
    assert (checked.value, checked.issue) == (value, issue)


@pytest.mark.parametrize(("raw", "value", "issue"), [
    ("", "", Issue("id_number", "required", "flag", "缺少证件号码")),
    ("110105491231002", "110105491231002",
     Issue("id_number", "id_length", "flag", "旧版15位身份证号码，请核实并更新为18位：110105491231002")),
    ("1101051949123100", "1101051949123100", Issue(
        "id_number", "id_length", "reject", "身份证号码格式错误：应为18位（17位数字+数字或X），实为16位（1101051949123100）")),
    ("110105194912310021", "110105194912310021",
     Issue("id_number", "id_check_code", "reject", "身份证校验码错误：应为 X，实为 1（110105194912310021）")),
    ("110105189912310023", "110105189912310023",
     Issue("id_number", "id_birthdate", "reject", "身份证出生日期无效：18991231（110105189912310023）")),
])
def test_an_id_number_issue_says_exactly_why(raw: str, value: str, issue: Issue) -> None:
    checked = normalize_id_number("身份证", raw)
    assert (checked.value, checked.issue) == (value, issue)


def test_name_issues_say_exactly_why() -> None:
    assert normalize_name("  ").issue == Issue("customer_name", "required", "reject", "缺少客户姓名")
    assert normalize_name(" 王  芳 ").issue == Issue(
        "customer_name", "name_trimmed", "repaired", "客户姓名已去除多余空格：「王  芳」→「王芳」")


def test_text_injection_reasons_are_exact() -> None:
    assert text_injection("=XX") == "以「=」开头，像电子表格公式"
    assert text_injection("<b>王</b>") == "包含网页代码（HTML标签或脚本）"
    assert text_injection("=<b>") == "以「=」开头，像电子表格公式、包含网页代码（HTML标签或脚本）"


@pytest.mark.parametrize(("raw", "expected"), [
    ("CNY189,800", "189800.00"), ("cny 189800", "189800.00"), ("189800元", "189800.00"), ("18.98万元", "189800.00"),
])
def test_prices_with_a_currency_or_unit_written_around_them(raw: str, expected: str) -> None:
    assert parse_price(raw) == Decimal(expected)

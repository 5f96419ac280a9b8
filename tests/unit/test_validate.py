"""Unit tests for dealerbot.data.validate (pure functions, no I/O)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal

import pytest

from dealerbot.data.validate import (
    Checked,
    Issue,
    customer_dedupe_key,
    id_check_code,
    normalize_id_number,
    normalize_mobile,
    normalize_name,
    normalize_vin,
    parse_date,
    parse_datetime,
    parse_price,
    text_injection,
    to_halfwidth,
    vin_check_digit,
)


def _id18(body17: str) -> str:
    """A resident ID number with the correct check code appended."""
    return body17 + id_check_code(body17)


def _with_wrong_check(body17: str) -> str:
    """A resident ID number whose check code is deliberately wrong."""
    right = id_check_code(body17)
    return body17 + ("0" if right != "0" else "1")


# ----------------------------------------------------------------------------- dataclasses


def test_issue_and_checked_are_frozen() -> None:
    issue = Issue("vin", "vin_length", "reject", "VIN应为17位")
    checked = Checked("x", issue)
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.value = "y"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        issue.code = "other"  # type: ignore[misc]
    assert Checked("x", issue) == checked
    assert not hasattr(checked, "__dict__")  # slots


# ----------------------------------------------------------------------------- halfwidth


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("１３８１２３４５６７８", "13812345678"),
        ("ＡＢＣｘｙｚ！～", "ABCxyz!~"),
        ("张\u3000三", "张 三"),
        ("（０２１）", "(021)"),
        ("plain ascii 123", "plain ascii 123"),
        ("中文，不变￥", "中文,不变￥"),  # U+FFE5 is outside FF01..FF5E
        ("", ""),
    ],
)
def test_to_halfwidth(text: str, expected: str) -> None:
    assert to_halfwidth(text) == expected


# ----------------------------------------------------------------------------------- VIN


@pytest.mark.parametrize(
    ("vin", "digit"),
    [
        ("1M8GDM9AXKP042788", "X"),
        ("11111111111111111", "1"),
        ("LVSHCAMB1CE054249", "1"),
        ("1HGCM82633A004352", "3"),
        ("JHMCM56557C404453", "5"),
        ("LFV2A21K557000001", "X"),
        ("lvshcamb1ce054249", "1"),  # lower case accepted
    ],
)
def test_vin_check_digit_known(vin: str, digit: str) -> None:
    assert vin_check_digit(vin) == digit


def test_vin_check_digit_ignores_position_9() -> None:
    assert vin_check_digit("1M8GDM9A0KP042788") == "X"
    assert vin_check_digit("1M8GDM9A7KP042788") == "X"


@pytest.mark.parametrize(
    "vin",
    ["1M8GDM9AXKP04278I", "OM8GDM9AXKP042788", "1M8GDM9AXKQ042788", "1M8GDM9AXKP04278-", "1M8GDM9AXKP04278"],
)
def test_vin_check_digit_rejects_bad_input(vin: str) -> None:
    with pytest.raises(ValueError):
        vin_check_digit(vin)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1M8GDM9AXKP042788", "1M8GDM9AXKP042788"),
        ("11111111111111111", "11111111111111111"),
        ("LVSHCAMB1CE054249", "LVSHCAMB1CE054249"),
        ("  lvshcamb1ce054249\n", "LVSHCAMB1CE054249"),
        ("LVSH CAMB 1CE 054249", "LVSHCAMB1CE054249"),
        ("ＬＶＳＨＣＡＭＢ１ＣＥ０５４２４９", "LVSHCAMB1CE054249"),
        ("LVSH\u3000CAMB1CE054249", "LVSHCAMB1CE054249"),
    ],
)
def test_normalize_vin_valid(raw: str, expected: str) -> None:
    assert normalize_vin(raw) == Checked(expected, None)


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000"])
def test_normalize_vin_empty_is_legal(raw: str | None) -> None:
    assert normalize_vin(raw) == Checked("", None)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("LFV2A21K5", "vin_length"),
        ("LVSHCAMB1CE0542490", "vin_length"),
        ("LVSHCAMB1CE05424", "vin_length"),
        ("LVSHCAMB1CE05424I", "vin_chars"),
        ("LVSHCAMB1CE05424O", "vin_chars"),
        ("QVSHCAMB1CE054249", "vin_chars"),
        ("LVSHCAMB1CE05424-", "vin_chars"),
        ("LVSHCAMB1CE05424中", "vin_chars"),
        ("LVSHCAMB2CE054249", "vin_check_digit"),
        ("1M8GDM9A1KP042788", "vin_check_digit"),
    ],
)
def test_normalize_vin_rejects(raw: str, code: str) -> None:
    result = normalize_vin(raw)
    assert result.issue is not None
    assert result.issue.code == code
    assert result.issue.severity == "reject"
    assert result.issue.field == "vin"
    assert raw in result.issue.message
    assert result.value == raw


def test_normalize_vin_check_digit_message_names_expected_and_actual() -> None:
    result = normalize_vin(" LFV2A21K557000001 ")
    assert result.value == "LFV2A21K557000001"  # original, trimmed
    assert result.issue == Issue(
        "vin", "vin_check_digit", "reject", "VIN校验位错误：应为 X，实为 5（LFV2A21K557000001）"
    )


# -------------------------------------------------------------------------------- mobile


@pytest.mark.parametrize(
    "raw",
    [
        "138 1234 5678",
        "138-1234-5678",
        "+86 13812345678",
        "+8613812345678",
        "0086-138-1234-5678",
        "8613812345678",
        "８６１３８１２３４５６７８",
        "１３８１２３４５６７８",
        "(138)1234.5678",
        "138－1234－5678",
        "+86 (0)138 1234 5678",
    ],
)
def test_normalize_mobile_repaired(raw: str) -> None:
    result = normalize_mobile(raw)
    assert result.value == "13812345678"
    assert result.issue is not None
    assert (result.issue.field, result.issue.code, result.issue.severity) == (
        "mobile",
        "mobile_repaired",
        "repaired",
    )
    assert raw in result.issue.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        (" 13812345678 ", "13812345678"),
        ("\u300019912345678\t", "19912345678"),
        ("16612345678", "16612345678"),
    ],
)
def test_normalize_mobile_clean(raw: str, expected: str) -> None:
    assert normalize_mobile(raw) == Checked(expected, None)


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("021-6234 5678", "021-6234 5678"),
        ("010 88886666", "010 88886666"),
        (" 0755-12345678 ", "0755-12345678"),
        ("+86 21 6234 5678", "+86 21 6234 5678"),
    ],
)
def test_normalize_mobile_landline(raw: str, kept: str) -> None:
    result = normalize_mobile(raw)
    assert result.value == kept
    assert result.issue is not None
    assert (result.issue.code, result.issue.severity) == ("mobile_landline", "flag")
    assert kept in result.issue.message


@pytest.mark.parametrize(
    "raw",
    [
        "1381234567",  # missing a digit
        "138123456789",  # one digit too many
        "12345678901",  # no such prefix
        "13812345678x",  # phonenumbers would drop the trailing letter
        "abc",
        "138 1234 567８a",
        "13812345678/13912345678",
        "400 820 8820",  # service number, not a mobile
        "+852 9123 4567",  # Hong Kong mobile
        "+1 650 253 0000",
        "62345678",  # landline without area code
        "+",
    ],
)
def test_normalize_mobile_invalid(raw: str) -> None:
    result = normalize_mobile(raw)
    assert result.value == raw.strip()
    assert result.issue is not None
    assert (result.issue.field, result.issue.code, result.issue.severity) == (
        "mobile",
        "mobile_invalid",
        "flag",
    )
    assert raw.strip() in result.issue.message


@pytest.mark.parametrize("raw", [None, "", "  ", "\u3000"])
def test_normalize_mobile_required(raw: str | None) -> None:
    result = normalize_mobile(raw)
    assert result.value == ""
    assert result.issue is not None
    assert (result.issue.field, result.issue.code, result.issue.severity) == ("mobile", "required", "flag")


# ---------------------------------------------------------------------------- ID numbers


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("11010519491231002", "X"),  # the GB 11643 sample 11010519491231002X
        ("00000000000000000", "1"),  # sum 0 -> "1"
        # One body per check code, expected values from the independent ISO 7064 form
        # (12 - sum mod 11) mod 11 rather than from the "10X98765432" table.
        ("44030419900307101", "0"),
        ("44030419900307106", "1"),
        ("44030419900307100", "2"),
        ("44030419900307105", "3"),
        ("44030419900307118", "4"),
        ("44030419900307104", "5"),
        ("44030419900307109", "6"),
        ("44030419900307103", "7"),
        ("44030419900307108", "8"),
        ("44030419900307102", "9"),
        ("44030419900307107", "X"),
    ],
)
def test_id_check_code(body: str, code: str) -> None:
    assert id_check_code(body) == code


def test_id_check_code_covers_every_mapping() -> None:
    # Vary the last body digit (weight 2) and the one before (weight 4) to hit all 11 codes.
    codes = {id_check_code(f"110105199001011{a}{b}") for a in range(10) for b in range(10)}
    assert codes == set("0123456789X")


@pytest.mark.parametrize("body", ["1101051949123100", "110105194912310021", "1101051949123100X", "１１０１０５１９４９１２３１００２"])
def test_id_check_code_rejects_non_digits(body: str) -> None:
    with pytest.raises(ValueError):
        id_check_code(body)


VALID_IDS = [
    "11010519491231002X",
    _id18("44030419900307123"),
    _id18("31010420000229001"),  # leap day
    _id18("51010219000101001"),  # lower bound
    _id18("51010220301231001"),  # upper bound
]


@pytest.mark.parametrize("id_number", VALID_IDS)
@pytest.mark.parametrize("id_type", [None, "", "身份证", " 身份证 ", "居民身份证"])
def test_normalize_id_number_valid(id_type: str | None, id_number: str) -> None:
    assert normalize_id_number(id_type, id_number) == Checked(id_number, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("11010519491231002x", "11010519491231002X"),
        ("  11010519491231002X\n", "11010519491231002X"),
        ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X"),
        ("１１０１０５１９４９１２３１００２ｘ", "11010519491231002X"),
    ],
)
def test_normalize_id_number_normalises(raw: str, expected: str) -> None:
    assert normalize_id_number("身份证", raw) == Checked(expected, None)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("11010519491231002", "id_length"),
        ("11010519491231002X1", "id_length"),
        ("1101051949123100XX", "id_length"),
        ("X10105194912310021", "id_length"),
        ("110105 19491231 002X", "id_length"),
        ("11010519491231002A", "id_length"),
        ("110105194912310021", "id_check_code"),
        (_with_wrong_check("44030419900307123"), "id_check_code"),
        (_id18("11010519490231002"), "id_birthdate"),  # 30 Feb does not exist
        (_id18("11010520010229002"), "id_birthdate"),  # 2001 is not a leap year
        (_id18("11010518991231002"), "id_birthdate"),  # before 1900
        (_id18("11010520310101002"), "id_birthdate"),  # after 2030
        (_id18("11010519901301002"), "id_birthdate"),  # month 13
        (_id18("11010519900100002"), "id_birthdate"),  # day 0
    ],
)
def test_normalize_id_number_rejects(raw: str, code: str) -> None:
    result = normalize_id_number(None, raw)
    assert result.value == raw
    assert result.issue is not None
    assert (result.issue.field, result.issue.code, result.issue.severity) == ("id_number", code, "reject")
    assert raw in result.issue.message


def test_normalize_id_number_check_code_message() -> None:
    result = normalize_id_number("身份证", "110105194912310021")
    assert result.issue == Issue(
        "id_number", "id_check_code", "reject", "身份证校验码错误：应为 X，实为 1（110105194912310021）"
    )


@pytest.mark.parametrize(("raw", "kept"), [("110105491231002", "110105491231002"), (" １１０１０５４９１２３１００２ ", "110105491231002")])
def test_normalize_id_number_old_15_digit_flagged(raw: str, kept: str) -> None:
    result = normalize_id_number("身份证", raw)
    assert result.value == kept
    assert result.issue is not None
    assert (result.issue.code, result.issue.severity) == ("id_length", "flag")


@pytest.mark.parametrize(
    ("id_type", "raw", "expected"),
    [
        ("护照", " e12345678 ", "E12345678"),
        ("港澳通行证", "c12345678", "C12345678"),
        ("台湾居民来往大陆通行证", "01234567", "01234567"),
        ("护照", "ｅ１２３４５６７８", "E12345678"),
        ("护照", "110105194912310021", "110105194912310021"),  # not checked as a resident ID
    ],
)
def test_normalize_id_number_other_types(id_type: str, raw: str, expected: str) -> None:
    assert normalize_id_number(id_type, raw) == Checked(expected, None)


@pytest.mark.parametrize("id_type", [None, "身份证", "护照"])
@pytest.mark.parametrize("raw", [None, "", "   "])
def test_normalize_id_number_required(id_type: str | None, raw: str | None) -> None:
    result = normalize_id_number(id_type, raw)
    assert result.value == ""
    assert result.issue is not None
    assert (result.issue.field, result.issue.code, result.issue.severity) == ("id_number", "required", "flag")


# --------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("张三", "张三"),
        ("  张三  ", "张三"),
        ("\u3000张三\u3000", "张三"),
        ("John Smith", "John Smith"),
        ("\tJohn Smith\n", "John Smith"),
        ("欧阳娜娜", "欧阳娜娜"),
        ("买买提·艾力", "买买提·艾力"),
    ],
)
def test_normalize_name_silent(raw: str, expected: str) -> None:
    assert normalize_name(raw) == Checked(expected, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("张 三", "张三"),
        (" 张\u3000三 ", "张三"),
        ("欧阳  娜 娜", "欧阳娜娜"),
        ("John   Smith", "John Smith"),
        ("John\u3000Smith", "John Smith"),
        ("买买提 · 艾力", "买买提·艾力"),
        ("张三\u200b", "张三"),
        ("Li  小明", "Li 小明"),  # CJK on one side only: single space kept
    ],
)
def test_normalize_name_repaired(raw: str, expected: str) -> None:
    result = normalize_name(raw)
    assert result.value == expected
    assert result.issue is not None
    assert (result.issue.field, result.issue.code, result.issue.severity) == (
        "customer_name",
        "name_trimmed",
        "repaired",
    )
    assert raw.strip() in result.issue.message


def test_normalize_name_mixed_script_single_space_is_silent() -> None:
    assert normalize_name("张 San") == Checked("张 San", None)


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000\u3000"])
def test_normalize_name_required(raw: str | None) -> None:
    result = normalize_name(raw)
    assert result.value == ""
    assert result.issue is not None
    assert (result.issue.field, result.issue.code, result.issue.severity) == ("customer_name", "required", "reject")


# -------------------------------------------------------------------------------- dedupe


@pytest.mark.parametrize(
    ("name", "mobile", "id_number", "expected"),
    [
        ("张三", "13812345678", "11010519491231002X", "id:11010519491231002X"),
        ("张三", "", "11010519491231002x", "id:11010519491231002X"),
        ("Someone Else", "13900000000", " 11010519491231002X ", "id:11010519491231002X"),
        ("张三", "13812345678", "", "name:张三|mobile:13812345678"),
        ("张 三", "+86 138-1234-5678", "", "name:张三|mobile:13812345678"),
        ("John  Smith", "13812345678", "", "name:john smith|mobile:13812345678"),
        ("张三", "13812345678", "110105194912310021", "name:张三|mobile:13812345678"),  # bad check code
        ("张三", "13812345678", "110105491231002", "name:张三|mobile:13812345678"),  # 15-digit id
        ("张三", "1381234567", "", None),
        ("张三", "021-6234 5678", "", None),
        ("张三", "", "", None),
        ("", "13812345678", "", None),
        ("张三", "1381234567", "110105194912310021", None),
    ],
)
def test_customer_dedupe_key(name: str, mobile: str, id_number: str, expected: str | None) -> None:
    assert customer_dedupe_key(name, mobile, id_number) == expected


def test_customer_dedupe_key_same_customer_written_differently() -> None:
    a = customer_dedupe_key("张三", "138 1234 5678", "")
    b = customer_dedupe_key(" 张三 ", "+8613812345678", "")
    c = customer_dedupe_key("李四", "13812345678", "")
    assert a is not None and a == b
    assert c != a


# ------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("189,800.00", "189800.00"),
        ("￥189,800", "189800.00"),
        ("¥189,800", "189800.00"),
        ("189800", "189800.00"),
        (" 189800.5 ", "189800.50"),
        ("１８９，８００．００", "189800.00"),
        ("189,800.00元", "189800.00"),
        ("RMB 189,800", "189800.00"),
        ("18.98万", "189800.00"),
        ("0", "0.00"),
        ("1,234,567.80", "1234567.80"),
        ("-5,000", "-5000.00"),
        ("189800.0000", "189800.00"),
    ],
)
def test_parse_price(raw: str, expected: str) -> None:
    result = parse_price(raw)
    assert result == Decimal(expected)
    assert result is not None
    assert result.as_tuple().exponent == -2
    assert str(result) == expected


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_parse_price_empty(raw: str | None) -> None:
    assert parse_price(raw) is None


@pytest.mark.parametrize(
    "raw",
    ["abc", "189.800,00", "18,98,00", "1,89800", "189800.005", "12.3.4", "￥", "--", "1e5", "NaN", "189 800"],
)
def test_parse_price_invalid(raw: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_price(raw)
    assert raw in str(excinfo.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-20", date(2026, 11, 20)),
        ("2026/11/20", date(2026, 11, 20)),
        ("2026年11月20日", date(2026, 11, 20)),
        ("2026.11.20", date(2026, 11, 20)),
        ("2026-1-5", date(2026, 1, 5)),
        (" 2024/02/29 ", date(2024, 2, 29)),
        ("２０２６年１１月２０日", date(2026, 11, 20)),
    ],
)
def test_parse_date(raw: str, expected: date) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", [None, "", " "])
def test_parse_date_empty(raw: str | None) -> None:
    assert parse_date(raw) is None


@pytest.mark.parametrize(
    "raw",
    ["20261120", "2026-11/20", "2026-02-30", "2026-13-01", "11/20/2026", "2026-11-20 10:31:05", "明天", "2026年11月20"],
)
def test_parse_date_invalid(raw: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_date(raw)
    assert raw in str(excinfo.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-20 10:31:05", datetime(2026, 11, 20, 10, 31, 5)),
        ("2026-11-20T10:31:05", datetime(2026, 11, 20, 10, 31, 5)),
        ("2026/11/20 10:31:05", datetime(2026, 11, 20, 10, 31, 5)),
        ("2026-11-20 10:31", datetime(2026, 11, 20, 10, 31)),
        (" 2026-11-20 9:05:00 ", datetime(2026, 11, 20, 9, 5)),
    ],
)
def test_parse_datetime(raw: str, expected: datetime) -> None:
    result = parse_datetime(raw)
    assert result == expected
    assert result is not None and result.tzinfo is None


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_parse_datetime_empty(raw: str | None) -> None:
    assert parse_datetime(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-20",
        "2026-11-20T10:31:05Z",
        "2026-11-20T10:31:05+08:00",
        "2026-11-20 25:00:00",
        "2026-11-20 10:61:00",
        "2026-02-30 10:00:00",
        "20261120103105",
        "yesterday",
    ],
)
def test_parse_datetime_invalid(raw: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_datetime(raw)
    assert raw in str(excinfo.value)


# ------------------------------------------------------------------ formulas and markup


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('=HYPERLINK("http://x.invalid","点击")', "像电子表格公式"),
        ("+cmd|' /C calc'!A0", "以「+」开头"),
        ("-1+1", "以「-」开头"),
        ("@SUM(1,1)", "以「@」开头"),
        ("  =1+1", "像电子表格公式"),  # leading spaces a DMS would trim
        ("＝１＋１", "以「=」开头"),  # full-width, typed with a Chinese IME
        ("\u200b=1+1", "像电子表格公式"),  # a zero-width space in front
        ("<script>alert(1)</script>", "网页代码"),
        ("王<b>伟</b>", "网页代码"),
        ("<img src=x onerror=alert(1)", "网页代码"),
        ("李<!-- -->强", "网页代码"),
        ("javascript:alert(1)", "网页代码"),
        ("&lt;script&gt;", "网页代码"),
        ("=<script>", "像电子表格公式、包含网页代码"),
    ],
)
def test_text_injection_names_formulas_and_markup(text: str, words: str) -> None:
    assert words in (text_injection(text) or "")


@pytest.mark.parametrize(
    "text",
    [None, "", "王伟", "欧阳娜娜", "阿卜杜拉·买买提", "John Smith", "O'Brien", "张-三", "+86 138 1234 5678",
     "-1200.50", "+1,200", "(0571) 8888-1234", "-", "--", "AT&T 4S店", "3 < 5 > 2", "价格<5万", "杭州市西湖区文三路1号"],
)
def test_text_injection_leaves_plain_text_numbers_and_phones(text: str | None) -> None:
    assert text_injection(text) is None


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x.cn","点")', "+cmd|' /C calc'!A0", "-1+1", "@SUM(1,1)",
                                  "<script>alert(1)</script>", "王<b>伟</b>"])
def test_a_customer_name_like_a_formula_or_markup_is_flagged_kept_and_never_a_new_dms_customer(name: str) -> None:
    from dealerbot.data.mapping import check_customer
    from dealerbot.data.pipeline import pipeline_for
    from dealerbot.data.records import OEM_ORDER, Item

    item = pipeline_for(OEM_ORDER).process(Item(OEM_ORDER, {
        "order_no": "XS2026000001", "customer_name": name, "mobile": "13812345678", "id_type": "护照",
        "id_number": "E12345678", "model_code": "GX3-15T-STD", "status": "已下单"}))
    flags = [i for i in item.issues if i.field == "customer_name" and i.code == "suspicious_text"]
    assert flags and flags[0].severity == "flag" and flags[0].message.startswith("客户姓名")  # 需核对, not 通过
    assert item.data["customer_name"] == name  # kept as read, for staff to see
    refused = check_customer({"name": name, "mobile": "13812345678", "id_number": "E12345678", "address": "杭州市"})
    assert [(i.field, i.code, i.severity) for i in refused] == [("name", "suspicious_text", "reject")]

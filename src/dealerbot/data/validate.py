"""Validation and normalisation of scraped customer and order fields.

Everything here is a pure function: no I/O, no mutable module state. Values scraped from
the OEM dealer portal and the DMS are messy (full-width characters typed with a Chinese
IME, phone numbers with country prefixes, stray spaces), so each ``normalize_*`` function
returns a :class:`Checked` holding the normalised value plus at most one :class:`Issue`
describing what was wrong or what was repaired. ``Issue.message`` is operator-facing and
therefore Simplified Chinese; ``Issue.code`` is a stable machine code.

The ``parse_*`` functions convert table cells to Python values and raise ``ValueError``
(message quoting the offending text) instead of returning an Issue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Generic, Literal, TypeVar

__all__ = [
    "Checked",
    "Issue",
    "Severity",
    "customer_dedupe_key",
    "id_check_code",
    "normalize_id_number",
    "normalize_mobile",
    "normalize_name",
    "normalize_vin",
    "parse_date",
    "parse_datetime",
    "parse_price",
    "text_injection",
    "to_halfwidth",
    "vin_check_digit",
]

T = TypeVar("T")

Severity = Literal["reject", "flag", "repaired"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in (or one automatic repair made to) a field value.

    ``severity``: ``"reject"`` means the record must be rejected, ``"flag"`` means it is
    kept but flagged for review, ``"repaired"`` means the value was fixed automatically.
    """

    field: str
    code: str
    severity: Severity
    message: str


@dataclass(frozen=True, slots=True)
class Checked(Generic[T]):
    """A normalised value and the issue found with it, if any.

    ``value`` is the normalised value, or the original (trimmed) text when it could not
    be repaired. Construct it as ``Checked(value, issue)``: on Python 3.11 calling a
    subscripted alias (``Checked[str](...)``) raises ``TypeError`` because frozen slotted
    dataclasses cannot take the ``__orig_class__`` attribute typing tries to set.
    """

    value: T
    issue: Issue | None


# --------------------------------------------------------------------------- text helpers

_HALFWIDTH_TABLE: Final[dict[int, int]] = {
    **{cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)},
    0x3000: 0x20,
}

# Zero-width characters that scraped HTML sometimes carries inside a value.
_ZERO_WIDTH_RE: Final = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_WHITESPACE_RE: Final = re.compile(r"\s+")


def to_halfwidth(text: str) -> str:
    """Return ``text`` with full-width ASCII variants converted to half-width.

    Converts U+FF01..U+FF5E (``！`` .. ``～``, including full-width digits and letters) to
    U+0021..U+007E and the ideographic space U+3000 to an ASCII space. Every other
    character is left unchanged. Never raises.
    """
    return text.translate(_HALFWIDTH_TABLE)


def _is_cjk(ch: str) -> bool:
    """Return True for a CJK ideograph or a name-joining middle dot (``·``, ``・``)."""
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= cp <= 0x4DBF  # Extension A
        or 0xF900 <= cp <= 0xFAFF  # Compatibility Ideographs
        or 0x20000 <= cp <= 0x3134F  # Extensions B..G
        or 0x3007 == cp  # 〇
        or cp in (0x00B7, 0x30FB)  # middle dots in transliterated minority names
    )


# --------------------------------------------------------------------------------- VIN

_VIN_TRANSLITERATION: Final[dict[str, int]] = {
    **{str(d): d for d in range(10)},
    "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8,
    "J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9,
    "S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9,
}  # fmt: skip
_VIN_WEIGHTS: Final[tuple[int, ...]] = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_check_digit(vin17: str) -> str:
    """Return the check digit (position 9) a 17-character VIN must have.

    ISO 3779 / North American (and GB 16735) scheme: each character is transliterated
    (digits as is, letters A=1 .. Z=9, I/O/Q not allowed), multiplied by the weights
    8,7,6,5,4,3,2,10,0,9,8,7,6,5,4,3,2 and summed; the sum mod 11 is the check digit, with
    10 written ``"X"``. Lower-case letters are accepted. The character currently at
    position 9 is ignored (its weight is 0) but must still be a VIN character.

    Raises ``ValueError`` if ``vin17`` is not 17 characters long or contains a character
    that cannot appear in a VIN (I, O, Q, punctuation, non-ASCII, ...).
    """
    if len(vin17) != 17:
        raise ValueError(f"VIN must be 17 characters, got {len(vin17)}: {vin17!r}")
    total = 0
    for pos, (ch, weight) in enumerate(zip(vin17.upper(), _VIN_WEIGHTS, strict=True), 1):
        value = _VIN_TRANSLITERATION.get(ch)
        if value is None:
            raise ValueError(f"invalid VIN character {ch!r} at position {pos}: {vin17!r}")
        total += value * weight
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


_VIN_CHARS_RE: Final = re.compile(r"[0-9A-HJ-NPR-Z]{17}")


def normalize_vin(raw: str | None) -> Checked[str]:
    """Normalise and validate a VIN.

    All whitespace is removed, full-width characters are converted to half-width and the
    text is upper-cased. Returns:

    - ``Checked("", None)`` for ``None`` or blank input (no VIN allocated yet is legal);
    - ``Checked(vin, None)`` for a valid VIN, ``vin`` being the normalised 17 characters;
    - otherwise ``Checked(raw.strip(), Issue(severity="reject"))`` with code
      ``vin_length`` (not 17 characters), ``vin_chars`` (I/O/Q or a non-alphanumeric
      character) or ``vin_check_digit`` (position 9 is not the computed check digit; the
      message gives the expected and the actual digit).

    Never raises.
    """
    if raw is None:
        return Checked("", None)
    original = raw.strip()
    vin = _WHITESPACE_RE.sub("", to_halfwidth(raw)).upper()
    if not vin:
        return Checked("", None)
    if len(vin) != 17:
        return Checked(
            original,
            Issue("vin", "vin_length", "reject", f"VIN应为17位，实为{len(vin)}位（{original}）"),
        )
    if not _VIN_CHARS_RE.fullmatch(vin):
        bad = "".join(dict.fromkeys(ch for ch in vin if ch not in _VIN_TRANSLITERATION))
        return Checked(
            original,
            Issue(
                "vin",
                "vin_chars",
                "reject",
                f"VIN含非法字符 {bad}（VIN不允许 I、O、Q 及字母数字以外的字符）（{original}）",
            ),
        )
    expected = vin_check_digit(vin)
    actual = vin[8]
    if expected != actual:
        return Checked(
            original,
            Issue(
                "vin",
                "vin_check_digit",
                "reject",
                f"VIN校验位错误：应为 {expected}，实为 {actual}（{original}）",
            ),
        )
    return Checked(vin, None)


# ------------------------------------------------------------------------------ mobile

# Characters a phone number may be written with (after to_halfwidth): digits, a leading
# "+", and spaces/dashes/dots/parentheses as separators. Anything else (letters, "/",
# "转", a second number) makes the value invalid rather than letting phonenumbers
# silently drop the trailing garbage.
_PHONE_TEXT_RE: Final = re.compile(r"\+?[0-9\s\-\u2010-\u2015\u2212.()]+")


def normalize_mobile(raw: str | None) -> Checked[str]:
    """Normalise a mainland-China mobile number to its 11 digits.

    Parsing uses ``phonenumbers`` with region ``"CN"`` after converting full-width
    characters to half-width. Returns:

    - ``Checked("", Issue(severity="flag", code="required"))`` for ``None``/blank input;
    - ``Checked(digits, None)`` when the input, trimmed, already is the 11 digits;
    - ``Checked(digits, Issue(severity="repaired", code="mobile_repaired"))`` when a valid
      CN mobile was written differently (full-width digits, separators, ``+86``/``0086``/
      ``86`` prefix); the message quotes the original;
    - ``Checked(raw.strip(), Issue(severity="flag", code="mobile_landline"))`` for a valid
      CN fixed-line number such as ``"021-6234 5678"``;
    - ``Checked(raw.strip(), Issue(severity="flag", code="mobile_invalid"))`` for anything
      else (wrong length, unknown prefix, letters, foreign numbers, service numbers).

    Never raises.
    """
    original = (raw or "").strip()
    if not original:
        return Checked("", Issue("mobile", "required", "flag", "缺少手机号"))
    text = to_halfwidth(original).strip()
    invalid = Checked(
        original,
        Issue("mobile", "mobile_invalid", "flag", f"手机号无效：「{original}」不是中国大陆11位手机号"),
    )
    if not _PHONE_TEXT_RE.fullmatch(text):
        return invalid
    import phonenumbers  # here: its tables load on the first number, not in every command (`dealerbot bots`)

    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return invalid
    if number.country_code != 86 or not phonenumbers.is_valid_number(number):
        return invalid
    national = phonenumbers.national_significant_number(number)
    kind = phonenumbers.number_type(number)
    if kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE) and (
        len(national) == 11 and national.startswith("1")
    ):
        if national == original:
            return Checked(national, None)
        return Checked(
            national,
            Issue("mobile", "mobile_repaired", "repaired", f"手机号已自动修正：「{original}」→ {national}"),
        )
    if kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        return Checked(
            original,
            Issue("mobile", "mobile_landline", "flag", f"填写的是固定电话而非手机号：「{original}」"),
        )
    return invalid


# ------------------------------------------------------------------------- ID numbers

_ID_WEIGHTS: Final[tuple[int, ...]] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_MAP: Final[str] = "10X98765432"
_ID18_RE: Final = re.compile(r"[0-9]{17}[0-9X]")
_ID15_RE: Final = re.compile(r"[0-9]{15}")
_ID_MIN_BIRTHDATE: Final = date(1900, 1, 1)
_ID_MAX_BIRTHDATE: Final = date(2030, 12, 31)
_RESIDENT_ID_TYPES: Final[frozenset[str]] = frozenset({"", "身份证", "居民身份证"})


def id_check_code(id17: str) -> str:
    """Return the 18th character (check code) of a resident ID number.

    GB 11643-1999, ISO 7064 MOD 11-2: the first 17 digits are multiplied by the weights
    7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2, the sum is taken mod 11 and mapped through
    ``"10X98765432"``. Returns one of ``"0"``..``"9"`` or ``"X"``.

    Raises ``ValueError`` unless ``id17`` is exactly 17 ASCII digits.
    """
    if len(id17) != 17 or not id17.isascii() or not id17.isdigit():
        raise ValueError(f"ID number body must be 17 digits: {id17!r}")
    total = sum(int(ch) * w for ch, w in zip(id17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_MAP[total % 11]


def _id_birthdate(id18: str) -> date | None:
    """Return the birth date encoded at positions 7-14, or None if it is not a real date
    between 1900-01-01 and 2030-12-31."""
    try:
        born = date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))
    except ValueError:
        return None
    return born if _ID_MIN_BIRTHDATE <= born <= _ID_MAX_BIRTHDATE else None


def normalize_id_number(id_type: str | None, raw: str | None) -> Checked[str]:
    """Normalise and validate an identity document number.

    ``id_type`` ``"身份证"`` / ``"居民身份证"`` / ``None`` / blank means a mainland
    resident ID: the value is trimmed, converted to half-width and upper-cased (``x`` ->
    ``X``). Returns:

    - ``Checked("", Issue(severity="flag", code="required"))`` for ``None``/blank input
      (any id type);
    - ``Checked(id18, None)`` for a valid 18-character ID (17 digits + digit/X, correct
      check code, birth date a real date between 1900-01-01 and 2030-12-31);
    - ``Checked(id15, Issue(severity="flag", code="id_length"))`` for an old 15-digit ID
      (kept, flagged for review);
    - otherwise ``Checked(raw.strip(), Issue(severity="reject"))`` with code
      ``id_length`` (not 18 characters of the right kind), ``id_check_code`` (wrong check
      code; message gives expected and actual) or ``id_birthdate``.

    Any other ``id_type`` (护照, 港澳通行证, ...) is only trimmed, converted to half-width
    and upper-cased, with no issue unless blank. Never raises.
    """
    original = (raw or "").strip()
    if not original:
        return Checked("", Issue("id_number", "required", "flag", "缺少证件号码"))
    value = to_halfwidth(original).strip().upper()
    if (id_type or "").strip() not in _RESIDENT_ID_TYPES:
        return Checked(value, None)

    if _ID15_RE.fullmatch(value):
        return Checked(
            value,
            Issue("id_number", "id_length", "flag", f"旧版15位身份证号码，请核实并更新为18位：{original}"),
        )
    if not _ID18_RE.fullmatch(value):
        return Checked(
            original,
            Issue(
                "id_number",
                "id_length",
                "reject",
                f"身份证号码格式错误：应为18位（17位数字+数字或X），实为{len(value)}位（{original}）",
            ),
        )
    expected = id_check_code(value[:17])
    if value[17] != expected:
        return Checked(
            original,
            Issue(
                "id_number",
                "id_check_code",
                "reject",
                f"身份证校验码错误：应为 {expected}，实为 {value[17]}（{original}）",
            ),
        )
    if _id_birthdate(value) is None:
        return Checked(
            original,
            Issue("id_number", "id_birthdate", "reject", f"身份证出生日期无效：{value[6:14]}（{original}）"),
        )
    return Checked(value, None)


# ------------------------------------------------------------------------------- names


def normalize_name(raw: str | None) -> Checked[str]:
    """Normalise a customer name.

    Surrounding whitespace is trimmed, zero-width characters are removed, internal runs
    of whitespace (including the ideographic space U+3000) become a single space, and a
    space between two CJK characters is removed (``"张 三"`` -> ``"张三"``); Latin names
    keep single spaces (``"John  Smith"`` -> ``"John Smith"``). Returns:

    - ``Checked("", Issue(severity="reject", code="required"))`` for ``None``/blank input;
    - ``Checked(name, None)`` when only surrounding whitespace was removed;
    - ``Checked(name, Issue(severity="repaired", code="name_trimmed"))`` when internal
      characters changed (the message quotes the original).

    Never raises.
    """
    original = _ZERO_WIDTH_RE.sub("", raw or "").strip()
    if not original:
        return Checked("", Issue("customer_name", "required", "reject", "缺少客户姓名"))
    collapsed = _WHITESPACE_RE.sub(" ", original)
    chars: list[str] = []
    for i, ch in enumerate(collapsed):
        if ch == " " and _is_cjk(collapsed[i - 1]) and _is_cjk(collapsed[i + 1]):
            continue  # collapsed has no leading/trailing space, so i-1 and i+1 exist
        chars.append(ch)
    name = "".join(chars)
    if name == (raw or "").strip():
        return Checked(name, None)
    return Checked(
        name,
        Issue("customer_name", "name_trimmed", "repaired", f"客户姓名已去除多余空格：「{(raw or '').strip()}」→「{name}」"),
    )


# ------------------------------------------------------------------ formulas and markup

# What a spreadsheet (or a CSV export of the DMS) would run as a formula: text starting with
# = + - @ (OWASP's CSV injection list; tab and CR are control characters, flagged elsewhere).
_FORMULA_START: Final = ("=", "+", "-", "@")
# A plain number or phone number may start with + or - ("+86 138 1234 5678", "-1200.50").
_PLAIN_NUMBER_RE: Final = re.compile(r"[+-]?[\d\s().,-]*\d[\d\s().,-]*")
# An HTML tag or comment (<script>, </b>, <img src=x onerror=...>, <!-- -->), a script URL,
# or a character reference a page would decode (&lt;, &#60;).
_MARKUP_RE: Final = re.compile(
    r"<\s*/?\s*[a-z!?][^<>]*(?:>|$)|javascript\s*:|vbscript\s*:|&#?[a-z0-9]+;", re.IGNORECASE
)


def text_injection(text: str | None) -> str | None:
    """Why ``text`` must not be taken as plain text without a person's look, or None.

    A spreadsheet formula (``=HYPERLINK(...)``, ``+cmd|...``, ``-1+1``, ``@SUM(...)``:
    text starting with ``=``, ``+``, ``-`` or ``@``, full-width forms and leading spaces
    included, unless it is a plain number or phone number) or markup (``<script>``, an HTML
    tag, ``javascript:``, ``&lt;``). The reason is operator-facing Simplified Chinese.
    Never raises.
    """
    if not text:
        return None
    plain = to_halfwidth(_ZERO_WIDTH_RE.sub("", text)).strip()
    reasons = []
    if plain.startswith(_FORMULA_START) and plain.strip("+-= ") and not _PLAIN_NUMBER_RE.fullmatch(plain):
        reasons.append(f"以「{plain[0]}」开头，像电子表格公式")
    if _MARKUP_RE.search(plain):
        reasons.append("包含网页代码（HTML标签或脚本）")
    return "、".join(reasons) or None


# ------------------------------------------------------------------------------ dedupe


def customer_dedupe_key(name: str, mobile: str, id_number: str) -> str | None:
    """Return a key identifying a customer within one scrape, or None.

    The inputs may be raw scraped values; they are normalised here. The key is
    ``"id:<18-character ID>"`` when ``id_number`` is a valid 18-character resident ID,
    otherwise ``"name:<name>|mobile:<11 digits>"`` when ``mobile`` is (or was repaired
    to) a valid CN mobile and the name is not blank (Latin names compared
    case-insensitively), otherwise None (the customer cannot be deduplicated reliably).
    Never raises.
    """
    checked_id = normalize_id_number(None, id_number)
    if checked_id.issue is None:
        return f"id:{checked_id.value}"
    checked_mobile = normalize_mobile(mobile)
    if checked_mobile.issue is not None and checked_mobile.issue.severity != "repaired":
        return None
    checked_name = normalize_name(name)
    if checked_name.issue is not None and checked_name.issue.severity == "reject":
        return None
    return f"name:{checked_name.value.casefold()}|mobile:{checked_mobile.value}"


# ----------------------------------------------------------------------------- parsing

_PRICE_RE: Final = re.compile(r"(-)?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(\.[0-9]+)?")
_CENT: Final = Decimal("0.01")


def parse_price(raw: str | None) -> Decimal | None:
    """Parse a price cell to a Decimal with exactly two decimal places.

    Accepts thousands separators, a leading ``￥``/``¥``/``RMB``/``CNY``, a trailing
    ``元``, a ``万`` (x10,000) unit, full-width characters and surrounding spaces:
    ``"189,800.00"``, ``"￥189,800"``, ``"189800"`` -> ``Decimal("189800.00")``;
    ``"18.98万"`` -> ``Decimal("189800.00")``. Returns None for ``None``/blank input.

    Raises ``ValueError`` (message quoting the text) for anything else, including
    misplaced thousands separators and amounts with non-zero digits beyond the cent.
    """
    if raw is None or not raw.strip():
        return None
    text = to_halfwidth(raw).replace("\uffe5", "¥").strip()
    for prefix in ("¥", "RMB", "CNY"):
        if text.upper().startswith(prefix):
            text = text[len(prefix) :].strip()
            break
    if text.endswith("元"):
        text = text[:-1].strip()
    multiplier = 1
    if text.endswith("万"):
        text = text[:-1].strip()
        multiplier = 10_000
    match = _PRICE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"无法解析价格：「{raw}」")
    sign, integer, fraction = match.groups()
    try:
        amount = Decimal(f"{sign or ''}{integer.replace(',', '')}{fraction or ''}") * multiplier
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"无法解析价格：「{raw}」") from exc
    rounded = amount.quantize(_CENT)
    if rounded != amount:
        raise ValueError(f"价格精度超过分：「{raw}」")
    return rounded


_DATE_RE: Final = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})|([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日")
_DATETIME_RE: Final = re.compile(r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})[ T]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")


def parse_date(raw: str | None) -> date | None:
    """Parse a date cell.

    Accepts ``"2026-11-20"``, ``"2026/11/20"``, ``"2026.11.20"`` and ``"2026年11月20日"``
    (month and day may have one digit; full-width digits allowed). Returns None for
    ``None``/blank input.

    Raises ``ValueError`` (message quoting the text) for any other format or an
    impossible date such as ``"2026-02-30"``.
    """
    if raw is None or not raw.strip():
        return None
    text = to_halfwidth(raw).strip()
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"无法解析日期：「{raw}」")
    if match.group(1) is not None:
        year, month, day = match.group(1), match.group(3), match.group(4)
    else:
        year, month, day = match.group(5), match.group(6), match.group(7)
    try:
        return date(int(year), int(month), int(day))
    except ValueError as exc:
        raise ValueError(f"日期无效：「{raw}」") from exc


def parse_datetime(raw: str | None) -> datetime | None:
    """Parse a date-time cell to a naive (local time) datetime.

    Accepts ``"2026-11-20 10:31:05"``, ``"2026-11-20T10:31:05"``, ``/`` as the date
    separator and a missing seconds part (``"2026-11-20 10:31"``). Returns None for
    ``None``/blank input.

    Raises ``ValueError`` (message quoting the text) for any other format, a time-zone
    suffix, or an impossible date/time.
    """
    if raw is None or not raw.strip():
        return None
    text = to_halfwidth(raw).strip()
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"无法解析日期时间：「{raw}」")
    year, _sep, month, day, hour, minute, second = match.groups()
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError as exc:
        raise ValueError(f"日期时间无效：「{raw}」") from exc

"""Processing steps for scraped records, composed like Scrapy's item pipelines.

A step is a callable ``step(item) -> item``. It normalises fields in place and appends
:class:`~dealerbot.data.validate.Issue` objects to ``item.issues``; the final :func:`reject_on_issues`
step turns any issue of severity ``reject`` into :class:`~dealerbot.errors.RecordRejected`.
Each entity's pipeline is a plain list in :func:`pipeline_for`; steps are pure except
:class:`DuplicateDetector`, which remembers what one run has seen.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from dealerbot.data import validate
from dealerbot.data.records import DMS_CONTRACT, DMS_CUSTOMER, OEM_CUSTOMER, OEM_ORDER, Entity, Item
from dealerbot.errors import RecordRejected

Step = Callable[[Item], Item]

_TRUE = {"已授权", "是", "true", "1", "yes", "y", "授权"}
_FALSE = {"未授权", "否", "false", "0", "no", "n", "", "未授权数据共享"}


def _add(item: Item, issue: validate.Issue | None, field: str) -> None:
    if issue is not None:
        item.issues.append(dataclasses.replace(issue, field=field))


MAX_TEXT = 200
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
# Unicode's control characters (category Cc: U+0000-001F, U+007F-009F) but tab and line breaks
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BIDI_RE = re.compile(f"[{_BIDI}]")


def suspicious_text(item: Item) -> Item:
    """Flag text no portal field should hold: control characters, bidirectional-text controls
    (they can make a value read differently from what it is), very long values, and text that
    looks like a spreadsheet formula or markup (:func:`~dealerbot.data.validate.text_injection`:
    ``=HYPERLINK(...)``, ``<script>``). The value is kept as read; staff see it yellow, with
    the reason."""
    for fname, value in item.data.items():
        if not isinstance(value, str):
            continue
        found = []
        if _CONTROL_RE.search(value):
            found.append("包含控制字符")
        if _BIDI_RE.search(value):
            found.append("包含双向文字控制符（显示的内容可能与实际不同）")
        if len(value) > MAX_TEXT:
            found.append(f"内容过长（{len(value)} 个字符）")
        if why := validate.text_injection(value):
            found.append(why)
        if found:
            item.issues.append(validate.Issue(fname, "suspicious_text", "flag",
                                       f"{item.entity.header(fname)}{'、'.join(found)}，请核对"))
    return item


def key_format(item: Item) -> Item:
    """Reject a record whose key does not look like the entity's keys (it would go into URLs)."""
    key = str(item.data.get(item.entity.key) or "").strip()
    if key and not item.entity.key_is_valid(key):
        entity = item.entity
        item.issues.append(validate.Issue(entity.key, "bad_key", "reject",
                                   f"{entity.header(entity.key)}格式不正确：「{key}」不符合{entity.title}的编号规则"
                                   f"（{entity.key_rule_text()}；record type {entity.name}: key_pattern）"))
    return item


def required(*fields: str) -> Step:
    """Reject a record whose ``fields`` are empty."""

    def step(item: Item) -> Item:
        for f in fields:
            value = item.data.get(f)
            if value is None or (isinstance(value, str) and not value.strip()):
                item.issues.append(validate.Issue(f, "required", "reject", f"缺少{item.entity.header(f)}"))
        return item

    return step


def _normalise(field: str, check: Callable[[Any], validate.Checked[Any]]) -> Step:
    def step(item: Item) -> Item:
        checked = check(item.data.get(field))
        item.data[field] = checked.value
        _add(item, checked.issue, field)
        return item

    return step


def name(field: str) -> Step:
    """Trim and normalise a person's name."""
    return _normalise(field, validate.normalize_name)


def mobile(field: str) -> Step:
    """Normalise a Chinese mobile to 11 digits; keep and flag what cannot be repaired."""
    return _normalise(field, validate.normalize_mobile)


_OTHER_DOCUMENT = re.compile(r"[A-Z]{1,2}\d{7,9}")


def id_number(field: str, type_field: str | None = None) -> Step:
    """Check an ID number (18-digit check code for 身份证). Without a type field, a number that
    looks like a passport or travel permit (``E12345678``) is taken as one."""

    def step(item: Item) -> Item:
        id_type = item.data.get(type_field) if type_field else None
        raw = item.data.get(field)
        if type_field is None and _OTHER_DOCUMENT.fullmatch(validate.to_halfwidth(str(raw or "")).strip().upper()):
            id_type = "护照"
        checked = validate.normalize_id_number(id_type, raw)
        item.data[field] = checked.value
        _add(item, checked.issue, field)
        return item

    return step


def vin(field: str) -> Step:
    """Check a VIN (length, characters, check digit); an empty VIN is legal (not allocated)."""
    return _normalise(field, validate.normalize_vin)


def typed(entity: Entity) -> Step:
    """Convert text to the entity's field kinds (Decimal, date, datetime, bool).

    A value that cannot be read becomes a ``bad_value`` reject issue naming the text.
    """
    parsers: dict[str, Callable[[Any], Any]] = {
        "decimal": validate.parse_price,
        "date": validate.parse_date,
        "datetime": validate.parse_datetime,
        "bool": _parse_bool,
        "int": lambda s: int(str(s).replace(",", "")) if str(s).strip() else None,
    }
    kinds = [(f.name, parsers[f.kind]) for f in entity.fields if f.kind in parsers]

    def step(item: Item) -> Item:
        for fname, parse in kinds:
            raw = item.data.get(fname)
            if raw is None or not isinstance(raw, str):
                continue
            try:
                item.data[fname] = parse(raw)
            except ValueError as exc:
                item.issues.append(
                    validate.Issue(fname, "bad_value", "reject", f"{item.entity.header(fname)}无法识别：「{raw}」（{exc}）")
                )
        return item

    return step


def _parse_bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"不是 是/否 值：{raw!r}")


class DuplicateDetector:
    """Flags the second and later records of the same customer within one run."""

    def __init__(self, name_field: str, mobile_field: str, id_field: str) -> None:
        self.fields = (name_field, mobile_field, id_field)
        self._seen: dict[str, str] = {}

    def __call__(self, item: Item) -> Item:
        n, m, i = (str(item.data.get(f) or "") for f in self.fields)
        key = validate.customer_dedupe_key(n, m, i)
        if key is None:
            return item
        first = self._seen.setdefault(key, item.key)
        if first != item.key:
            item.issues.append(
                validate.Issue("", "duplicate", "flag", f"疑似重复客户：与 {first} 为同一人（{n}）")
            )
        return item


def kept_as_found(*fields: str) -> Step:
    """The other system's own records (the DMS's) are kept whatever their quality: they are
    what a write must match. A reject on ``fields`` becomes a flag for staff to look at."""

    def step(item: Item) -> Item:
        item.issues = [
            dataclasses.replace(i, severity="flag", message=f"DMS中的数据有误：{i.message}")
            if i.severity == "reject" and i.field in fields else i
            for i in item.issues
        ]
        return item

    return step


def reject_on_issues(item: Item) -> Item:
    """Raise :class:`RecordRejected` when any issue is of severity ``reject``.

    Raises:
        RecordRejected: with the first reject's code and field and every reject's reason.
    """
    rejects = [i for i in item.issues if i.severity == "reject"]
    if rejects:
        reason = "；".join(i.message for i in rejects)
        raise RecordRejected(rejects[0].code, reason, rejects[0].field)
    return item


class Pipeline:
    """An ordered list of steps applied to each item."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)

    def process(self, item: Item) -> Item:
        """Run every step.

        Raises:
            RecordRejected: a step (or the final check) rejected the record.
        """
        for step in self.steps:
            item = step(item)
        return item


def pipeline_for(entity: Entity) -> Pipeline:
    """A fresh pipeline for one run of ``entity`` records (dedupe state starts empty)."""
    if entity is OEM_ORDER:
        steps: list[Step] = [
            suspicious_text,
            required("order_no", "customer_name", "model_code", "status"),
            key_format,
            name("customer_name"),
            mobile("mobile"),
            id_number("id_number", "id_type"),
            vin("vin"),
            typed(entity),
            reject_on_issues,
        ]
    elif entity is OEM_CUSTOMER:
        steps = [
            suspicious_text,
            required("customer_no", "name"),
            key_format,
            name("name"),
            mobile("mobile"),
            id_number("id_number", "id_type"),
            typed(entity),
            DuplicateDetector("name", "mobile", "id_number"),
            reject_on_issues,
        ]
    elif entity is DMS_CUSTOMER:
        steps = [
            suspicious_text,
            required("customer_no", "name"),
            key_format,
            name("name"),
            mobile("mobile"),
            id_number("id_number"),
            kept_as_found("id_number"),
            typed(entity),
            DuplicateDetector("name", "mobile", "id_number"),
            reject_on_issues,
        ]
    elif entity is DMS_CONTRACT:
        steps = [
            suspicious_text,
            required("contract_no", "customer_no", "model_code"),
            key_format,
            name("customer_name"),
            vin("vin"),
            kept_as_found("vin"),
            typed(entity),
            reject_on_issues,
        ]
    else:
        steps = default_steps(entity)
    return Pipeline(steps)


_CHECKS: dict[str, Callable[[str], Step]] = {
    "name": lambda f: name(f), "mobile": lambda f: mobile(f), "id_number": lambda f: id_number(f), "vin": lambda f: vin(f),
}


# The words each check's messages use for its field (the shipped record types' headers).
_CHECK_WORDS = {"name": "客户姓名", "mobile": "手机号", "id_number": "证件号码", "vin": "VIN"}


def _in_own_words(step: Step, word: str, header: str) -> Step:
    """``step``, its messages naming the field by ``header`` instead of the check's ``word`` (a
    user's 车主 field is not said to be missing a 客户姓名)."""
    if word == header:
        return step

    def own(item: Item) -> Item:
        before = len(item.issues)
        item = step(item)
        item.issues[before:] = [dataclasses.replace(i, message=i.message.replace(word, header)) for i in item.issues[before:]]
        return item

    return own


def default_steps(entity: Entity) -> list[Step]:
    """The pipeline of a record type a user declared: suspicious text flagged, the key and the
    ``required`` fields present, the key's form, each field's ``check`` (name, mobile, ID
    number, VIN), typed values; any error rejects the record with its reason (naming the field
    by its header)."""
    checks = [_in_own_words(_CHECKS[f.check](f.name), _CHECK_WORDS[f.check], f.header) for f in entity.fields if f.check]
    return [
        suspicious_text,
        required(entity.key, *(f.name for f in entity.fields if f.required and f.name != entity.key)),
        key_format,
        *checks,
        typed(entity),
        reject_on_issues,
    ]


def issue_dict(issue: validate.Issue) -> dict[str, str]:
    """An issue as stored in the run store."""
    return {"field": issue.field, "code": issue.code, "severity": issue.severity, "message": issue.message}

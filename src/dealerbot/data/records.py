"""The record types dealerbot scrapes: their fields, kinds and Chinese column headers.

One definition serves the store (columns), the pipeline (which fields to check) and the review
workbook (headers and cell types).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["text", "int", "decimal", "date", "datetime", "bool"]
KINDS = ("text", "int", "decimal", "date", "datetime", "bool")
ENTITY_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # the store keeps 32 characters
DEFAULT_KEY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
DEFAULT_KEY_RULE = "以字母或数字开头，只含字母、数字、_ 和 -，最长64位"


@dataclass(frozen=True)
class FieldDef:
    """One field of a record."""

    name: str
    header: str
    kind: Kind = "text"
    width: float | None = None
    personal: bool = False  # personal data (name, mobile, ID number, address): masked in every artifact
    required: bool = False  # a record without it is rejected (the key always is required)
    check: Literal["", "name", "mobile", "id_number", "vin"] = ""  # validated (and normalised) as such

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.check not in ("", "name", "mobile", "id_number", "vin"):
            raise ValueError(f"field {self.name!r}: check {self.check!r} is not one of name, mobile, id_number, vin")


@dataclass(frozen=True)
class Entity:
    """A kind of record and the store table it lives in."""

    name: str
    title: str  # sheet title in the review workbook
    key: str
    fields: tuple[FieldDef, ...]
    change_field: str | None = None  # source's last-changed timestamp (for watermarks)
    # What a key may look like (a regular expression the whole key must match): keys go into
    # URLs (detail pages, edit forms), so a scraped key such as "../logout" is rejected, never
    # followed. A type keyed otherwise sets its own (an e-mail: r"[^@\s/]+@[^@\s/]+\.[A-Za-z]{2,}")
    # and says it in words in ``key_rule``: a rejected record's reason names the rule.
    key_pattern: str = DEFAULT_KEY_PATTERN
    key_rule: str = ""  # the rule in words (operator-facing, Chinese); default: said for the default pattern

    def __post_init__(self) -> None:
        if not ENTITY_NAME.fullmatch(self.name):
            raise ValueError(f"record type name {self.name!r}: use lower-case letters, digits and _ (at most 32)")
        try:
            re.compile(self.key_pattern)
        except re.error as exc:
            raise ValueError(f"record type {self.name!r}: key_pattern {self.key_pattern!r} is not a regular expression: {exc}") from None
        names = [f.name for f in self.fields]
        if self.key not in names:
            raise ValueError(f"record type {self.name!r}: key {self.key!r} is not one of its fields")
        if len(set(names)) != len(names):
            raise ValueError(f"record type {self.name!r}: a field name appears twice")
        if self.change_field and self.change_field not in names:
            raise ValueError(f"record type {self.name!r}: change_field {self.change_field!r} is not one of its fields")

    def key_is_valid(self, key: str) -> bool:
        """Whether ``key`` has the form of this entity's keys (matches ``key_pattern`` whole)."""
        return re.fullmatch(self.key_pattern, key) is not None

    def key_rule_text(self) -> str:
        """The key rule as a rejected record's reason says it: ``key_rule``, the default
        pattern's own words, or the pattern itself."""
        if self.key_rule:
            return self.key_rule
        if self.key_pattern == DEFAULT_KEY_PATTERN:
            return DEFAULT_KEY_RULE
        return f"须完全匹配 {self.key_pattern}"

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def personal_fields(self) -> list[str]:
        """The fields holding personal data (masked in logs, HTML, traces and screenshots)."""
        return [f.name for f in self.fields if f.personal]

    def header(self, name: str) -> str:
        """The Chinese header of a field (the field name when unknown)."""
        for f in self.fields:
            if f.name == name:
                return f.header
        return name


@dataclass
class Item:
    """One record moving through the pipeline: raw text in, typed values out, issues on the side."""

    entity: Entity
    data: dict[str, Any]
    issues: list[Any] = field(default_factory=list)  # validate.Issue
    source: str = ""  # where it was read, e.g. the detail page URL

    @property
    def key(self) -> str:
        return str(self.data.get(self.entity.key) or "")


OEM_ORDER = Entity(
    name="oem_order",
    title="厂家订单",
    key="order_no",
    change_field="updated_at",
    fields=(
        FieldDef("order_no", "订单号", width=18),
        FieldDef("customer_name", "客户姓名", width=12, personal=True),
        FieldDef("mobile", "手机号", width=15, personal=True),
        FieldDef("id_type", "证件类型", width=10),
        FieldDef("id_number", "证件号码", width=21, personal=True),
        FieldDef("model_code", "车型代码", width=16),
        FieldDef("color", "颜色", width=10),
        FieldDef("vin", "VIN", width=20),
        FieldDef("price", "价格", "decimal", width=13),
        FieldDef("status", "订单状态", width=10),
        FieldDef("planned_delivery_date", "计划交车日期", "date", width=13),
        FieldDef("updated_at", "更新时间", "datetime", width=19),
    ),
)

OEM_CUSTOMER = Entity(
    name="oem_customer",
    title="厂家客户",
    key="customer_no",
    change_field="updated_at",
    fields=(
        FieldDef("customer_no", "客户编号", width=14),
        FieldDef("name", "客户姓名", width=12, personal=True),
        FieldDef("mobile", "手机号", width=15, personal=True),
        FieldDef("id_type", "证件类型", width=10),
        FieldDef("id_number", "证件号码", width=21, personal=True),
        FieldDef("city", "城市", width=14),
        FieldDef("consent", "数据共享授权", "bool", width=12),
        FieldDef("updated_at", "更新时间", "datetime", width=19),
    ),
)

DMS_CUSTOMER = Entity(
    name="dms_customer",
    title="DMS客户",
    key="customer_no",
    fields=(
        FieldDef("customer_no", "客户编号", width=14),
        FieldDef("name", "客户姓名", width=12, personal=True),
        FieldDef("mobile", "手机号", width=15, personal=True),
        FieldDef("id_number", "证件号码", width=21, personal=True),
        FieldDef("address", "地址", width=30, personal=True),
        FieldDef("created_at", "建档时间", "datetime", width=19),
    ),
)

DMS_CONTRACT = Entity(
    name="dms_contract",
    title="DMS销售合同",
    key="contract_no",
    change_field="updated_at",
    fields=(
        FieldDef("contract_no", "合同号", width=15),
        FieldDef("customer_no", "客户编号", width=14),
        FieldDef("customer_name", "客户姓名", width=12, personal=True),
        FieldDef("model_code", "DMS车型代码", width=14),
        FieldDef("color", "颜色", width=10),
        FieldDef("vin", "VIN", width=20),
        FieldDef("price", "价格", "decimal", width=13),
        FieldDef("deposit", "定金", "decimal", width=12),
        FieldDef("delivery_date", "交车日期", "date", width=13),
        FieldDef("oem_order_no", "厂家订单号", width=18),
        FieldDef("status", "合同状态", width=10),
        FieldDef("updated_at", "更新时间", "datetime", width=19),
    ),
)

# The delivery-report flow (交车 -> 交车上报): what the DMS recorded at each delivery, with the buyer
# as the DMS has them (the contract's customer) and the data-sharing consent signed at handover,
# and what the OEM portal's 上报记录 lists.
DMS_DELIVERY = Entity(
    name="dms_delivery",
    title="DMS交车记录",
    key="delivery_no",
    change_field="updated_at",
    fields=(
        FieldDef("delivery_no", "交车单号", width=15),
        FieldDef("contract_no", "合同号", width=15, required=True),
        FieldDef("customer_no", "客户编号", width=12),
        FieldDef("buyer_name", "购车人", width=12, personal=True),
        FieldDef("buyer_id_number", "购车人证件号码", width=21, personal=True),
        FieldDef("buyer_mobile", "购车人手机号", width=15, personal=True),
        FieldDef("model_code", "DMS车型代码", width=14),
        FieldDef("vin", "VIN", width=20, required=True),
        FieldDef("delivery_date", "交车日期", "date", width=12, required=True),
        FieldDef("invoice_no", "发票号码", width=22),
        FieldDef("invoice_amount", "发票金额", "decimal", width=13),
        FieldDef("plate_no", "车牌号", width=11),
        FieldDef("consent", "客户信息授权", "bool", width=12),
        FieldDef("updated_at", "登记时间", "datetime", width=19),
    ),
)

OEM_REPORT = Entity(
    name="oem_report",
    title="厂家交车上报",
    key="report_no",
    fields=(
        FieldDef("report_no", "上报单号", width=15),
        FieldDef("vin", "VIN", width=20, required=True),
        FieldDef("model_code", "车型代码", width=14),
        FieldDef("delivery_date", "交车日期", "date", width=12),
        FieldDef("invoice_no", "发票号码", width=22),
        FieldDef("invoice_amount", "发票金额", "decimal", width=13),
        FieldDef("consent", "客户信息授权", "bool", width=12),
        FieldDef("buyer_id_number", "购车人证件号码", width=21, personal=True),
        FieldDef("buyer_mobile", "购车人手机号", width=15, personal=True),
        FieldDef("reported_on", "上报日期", "date", width=12),
        FieldDef("deadline", "截止日期", "date", width=12),
        FieldDef("status", "上报状态", width=10),  # 按时上报 / 逾期上报
    ),
)

# The leads flow (线索 -> 潜客 -> 回访登记): the OEM's leads and the follow-ups logged on its portal,
# the DMS's prospects and the follow-ups its sales staff entered.
OEM_LEAD = Entity(
    name="oem_lead",
    title="厂家线索",
    key="lead_no",
    fields=(
        FieldDef("lead_no", "线索编号", width=15),
        FieldDef("name", "姓名", width=12, personal=True),
        FieldDef("mobile", "手机号", width=15, personal=True),
        FieldDef("model_code", "意向车型", width=14),
        FieldDef("source", "线索来源", width=10),
        FieldDef("assigned_on", "分配日期", "date", width=12),
        FieldDef("followup_deadline", "回访截止", "date", width=12),
        FieldDef("consent", "信息授权", "bool", width=10),  # may the person's data reach the dealer's systems
        FieldDef("status", "回访状态", width=10),  # 待回访 / 已回访 / 已超时
    ),
)

OEM_FOLLOWUP = Entity(
    name="oem_followup",
    title="厂家回访记录",
    key="followup_no",
    fields=(
        FieldDef("followup_no", "回访编号", width=15),
        FieldDef("lead_no", "线索编号", width=15, required=True),
        FieldDef("followed_on", "回访日期", "date", width=12),
        FieldDef("result", "回访结果", width=16),
        FieldDef("next_step", "下一步计划", width=20),
        FieldDef("note", "备注", width=24),
        FieldDef("logged_on", "登记日期", "date", width=12),
        FieldDef("late", "是否超时", width=8),  # 按时 / 超时
    ),
)

DMS_PROSPECT = Entity(
    name="dms_prospect",
    title="DMS潜客",
    key="prospect_no",
    change_field="created_at",
    fields=(
        FieldDef("prospect_no", "潜客编号", width=15),
        FieldDef("name", "客户姓名", width=12, personal=True),
        FieldDef("mobile", "手机号", width=15, personal=True),
        FieldDef("model_code", "意向车型", width=14),
        FieldDef("source", "客户来源", width=10),
        FieldDef("oem_lead_no", "厂家线索编号", width=15),
        FieldDef("sales_rep", "销售顾问", width=14),
        FieldDef("created_at", "建档时间", "datetime", width=19),
    ),
)

DMS_FOLLOWUP = Entity(
    name="dms_followup",
    title="DMS跟进记录",
    key="followup_no",
    change_field="created_at",
    fields=(
        FieldDef("followup_no", "跟进编号", width=15),
        FieldDef("prospect_no", "潜客编号", width=15, required=True),
        FieldDef("oem_lead_no", "厂家线索编号", width=15),
        FieldDef("name", "客户姓名", width=12, personal=True),
        FieldDef("mobile", "手机号", width=15, personal=True),
        FieldDef("followed_on", "跟进日期", "date", width=12),
        FieldDef("result", "跟进结果", width=12),
        FieldDef("next_step", "下一步", width=20),
        FieldDef("note", "备注", width=24),
        FieldDef("staff", "跟进人", width=14),
        FieldDef("created_at", "录入时间", "datetime", width=19),
    ),
)

ENTITIES: dict[str, Entity] = {
    e.name: e for e in (OEM_ORDER, OEM_CUSTOMER, DMS_CUSTOMER, DMS_CONTRACT, DMS_DELIVERY, OEM_REPORT, OEM_LEAD,
                        OEM_FOLLOWUP, DMS_PROSPECT, DMS_FOLLOWUP)
}

"""The built-in record types of the delivery-report and leads flows get their tables:
``dms_delivery`` (the DMS's 交车记录), ``oem_report`` (the OEM portal's 上报记录), ``oem_lead`` and
``oem_followup`` (线索 and their 回访记录), ``dms_prospect`` and ``dms_followup`` (潜客 and their
跟进记录), keyed by store and record key like the other scraped records.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DEFAULT_STORE = "main"


def _table(name: str, key: str, fields: list[tuple[str, sa.types.TypeEngine[Any]]]) -> None:
    op.create_table(
        name,
        sa.Column("store", sa.String(32), primary_key=True, nullable=False, server_default=DEFAULT_STORE),
        sa.Column(key, sa.String(64), primary_key=True),
        *[sa.Column(f, kind, nullable=True) for f, kind in fields],
        sa.Column("issues", sa.Text, nullable=False),
        sa.Column("first_run_id", sa.String(80), nullable=False),
        sa.Column("last_run_id", sa.String(80), nullable=False),
        sa.Column("scraped_at", sa.DateTime, nullable=False),
    )
    op.create_index(f"ix_{name}_last_run_id", name, ["last_run_id"])


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    text, money, day = sa.Text(), sa.Numeric(14, 2), sa.Date()
    if "dms_delivery" not in existing:
        _table("dms_delivery", "delivery_no", [
            ("contract_no", text), ("customer_no", text), ("buyer_name", text), ("buyer_id_number", text),
            ("buyer_mobile", text), ("model_code", text), ("vin", text), ("delivery_date", day), ("invoice_no", text),
            ("invoice_amount", money), ("plate_no", text), ("consent", sa.Boolean()), ("updated_at", sa.DateTime()),
        ])
    if "oem_report" not in existing:
        _table("oem_report", "report_no", [
            ("vin", text), ("model_code", text), ("delivery_date", day), ("invoice_no", text), ("invoice_amount", money),
            ("consent", sa.Boolean()), ("buyer_id_number", text), ("buyer_mobile", text), ("reported_on", day),
            ("deadline", day), ("status", text),
        ])
    moment = sa.DateTime()
    more: dict[str, tuple[str, list[tuple[str, sa.types.TypeEngine[Any]]]]] = {
        "oem_lead": ("lead_no", [("name", text), ("mobile", text), ("model_code", text), ("source", text),
                                 ("assigned_on", day), ("followup_deadline", day), ("consent", sa.Boolean()),
                                 ("status", text)]),
        "oem_followup": ("followup_no", [("lead_no", text), ("followed_on", day), ("result", text), ("next_step", text),
                                         ("note", text), ("logged_on", day), ("late", text)]),
        "dms_prospect": ("prospect_no", [("name", text), ("mobile", text), ("model_code", text), ("source", text),
                                         ("oem_lead_no", text), ("sales_rep", text), ("created_at", moment)]),
        "dms_followup": ("followup_no", [("prospect_no", text), ("oem_lead_no", text), ("name", text), ("mobile", text),
                                         ("followed_on", day), ("result", text), ("next_step", text), ("note", text),
                                         ("staff", text), ("created_at", moment)]),
    }
    for name, (key, fields) in more.items():
        if name not in existing:
            _table(name, key, fields)


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

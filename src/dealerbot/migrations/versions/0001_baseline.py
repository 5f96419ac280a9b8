"""Baseline: the store as dealerbot 0.1 made it (runs, rejects, watermarks, scraped records).

A store made before migrations existed has these tables already, possibly without the columns
added later (``runs.host``/``pid``/``options``...): existing tables gain what they lack, missing
tables are created, and nothing is dropped or changed.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _record_columns(key: str, fields: list[tuple[str, sa.types.TypeEngine[Any]]]) -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = [sa.Column(key, sa.String(64), primary_key=True)]
    cols += [sa.Column(name, kind, nullable=True) for name, kind in fields]
    cols += [
        sa.Column("issues", sa.Text, nullable=False, server_default="[]"),
        sa.Column("first_run_id", sa.String(80), nullable=False, server_default=""),
        sa.Column("last_run_id", sa.String(80), nullable=False, server_default=""),
        sa.Column("scraped_at", sa.DateTime, nullable=False, server_default="1970-01-01 00:00:00"),
    ]
    return cols


def _tables() -> dict[str, list[sa.Column]]:
    text, money, day, moment = sa.Text(), sa.Numeric(14, 2), sa.Date(), sa.DateTime()
    return {
        "runs": [
            sa.Column("run_id", sa.String(80), primary_key=True),
            sa.Column("bot", sa.String(64), nullable=False),
            sa.Column("trigger", sa.String(32), nullable=False, server_default="manual"),
            sa.Column("started_at", sa.DateTime, nullable=False),
            sa.Column("ended_at", sa.DateTime),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("counts", sa.Text, nullable=False, server_default="{}"),
            sa.Column("error", sa.Text),
            sa.Column("evidence_dir", sa.Text),
            sa.Column("evidence", sa.Text, nullable=False, server_default="[]"),
            sa.Column("options", sa.Text, nullable=False, server_default="{}"),
            sa.Column("host", sa.String(255), nullable=False, server_default=""),
            sa.Column("pid", sa.Integer, nullable=False, server_default="0"),
        ],
        "rejects": [
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(80), nullable=False),
            sa.Column("entity", sa.String(32), nullable=False),
            sa.Column("record_key", sa.String(64), nullable=False),
            sa.Column("code", sa.String(48), nullable=False),
            sa.Column("field", sa.String(48), nullable=False, server_default=""),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("issues", sa.Text, nullable=False, server_default="[]"),
            sa.Column("raw", sa.Text, nullable=False, server_default="{}"),
            sa.Column("created_at", sa.DateTime, nullable=False),
        ],
        "watermarks": [
            sa.Column("bot", sa.String(64), primary_key=True),
            sa.Column("value", sa.String(64), nullable=False),
            sa.Column("run_id", sa.String(80), nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False),
        ],
        "oem_order": _record_columns("order_no", [
            ("customer_name", text), ("mobile", text), ("id_type", text), ("id_number", text),
            ("model_code", text), ("color", text), ("vin", text), ("price", money), ("status", text),
            ("planned_delivery_date", day), ("updated_at", moment),
        ]),
        "oem_customer": _record_columns("customer_no", [
            ("name", text), ("mobile", text), ("id_type", text), ("id_number", text), ("city", text),
            ("consent", sa.Boolean()), ("updated_at", moment),
        ]),
        "dms_customer": _record_columns("customer_no", [
            ("name", text), ("mobile", text), ("id_number", text), ("address", text), ("created_at", moment),
        ]),
        "dms_contract": _record_columns("contract_no", [
            ("customer_no", text), ("customer_name", text), ("model_code", text), ("color", text),
            ("vin", text), ("price", money), ("deposit", money), ("delivery_date", day),
            ("oem_order_no", text), ("status", text), ("updated_at", moment),
        ]),
    }


INDEXES = {
    "runs": [("ix_runs_bot", ["bot"])],
    "rejects": [("ix_rejects_run_id", ["run_id"])],
    "oem_order": [("ix_oem_order_last_run_id", ["last_run_id"])],
    "oem_customer": [("ix_oem_customer_last_run_id", ["last_run_id"])],
    "dms_customer": [("ix_dms_customer_last_run_id", ["last_run_id"])],
    "dms_contract": [("ix_dms_contract_last_run_id", ["last_run_id"])],
}


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            op.create_table(name, *columns)
        else:
            have = {c["name"] for c in inspector.get_columns(name)}
            for col in columns:
                if col.name not in have:
                    op.add_column(name, col)
        indexes = {i["name"] for i in inspector.get_indexes(name)} if name in existing else set()
        for index, cols in INDEXES.get(name, []):
            if index not in indexes:
                op.create_index(index, name, cols)


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

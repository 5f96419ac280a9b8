"""Records of the record types users declare (their own portals' entities): one table for all,
each record's fields as JSON, keyed by (entity, key). The built-in types keep their own tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "records" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "records",
        sa.Column("entity", sa.String(64), primary_key=True),
        sa.Column("record_key", sa.String(64), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("issues", sa.Text, nullable=False),
        sa.Column("first_run_id", sa.String(80), nullable=False),
        sa.Column("last_run_id", sa.String(80), nullable=False),
        sa.Column("scraped_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_records_entity_last_run", "records", ["entity", "last_run_id"])


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

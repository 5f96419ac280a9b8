"""Reported rejects: which rejected records a message has already named (per bot and store, by
record key and a keyed digest of the reject's code and reason), so the next run's message
names only rejects that are new or changed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("reported_rejects"):
        return
    op.create_table(
        "reported_rejects",
        sa.Column("store", sa.String(32), primary_key=True, nullable=False, server_default="main"),
        sa.Column("bot", sa.String(64), primary_key=True),
        sa.Column("entity", sa.String(64), primary_key=True),
        sa.Column("record_key", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(80), nullable=False),
        sa.Column("reported_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

"""Timetable jobs paused by a person (the console, ``dealerbot schedule pause``): kept in the
store so a pause survives a restart of the scheduler (APScheduler's own pause lives in memory).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("job_pauses"):
        return
    op.create_table(
        "job_pauses",
        sa.Column("store", sa.String(32), primary_key=True, server_default="main"),
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("paused_by", sa.String(64), nullable=False),
        sa.Column("paused_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

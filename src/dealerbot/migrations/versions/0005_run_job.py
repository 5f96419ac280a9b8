"""Runs: the timetable job that started a run (``schedules/*.yaml``), for catch-up after the
machine was off and for the run history.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "job" not in {c["name"] for c in inspector.get_columns("runs")}:
        op.add_column("runs", sa.Column("job", sa.String(64), nullable=True))
    if "ix_runs_job" not in {i["name"] for i in inspector.get_indexes("runs")}:
        op.create_index("ix_runs_job", "runs", ["job"])


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

"""Runs: when a postponed run may start again, and notes for the operator.

``resume_after`` is set when a run ended ``postponed`` (the portal's maintenance notice): the
announced end of the window, for the timetable to act on. ``notes`` (JSON list of strings)
tells the operator what a run's counts cannot, e.g. that it used a saved login.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("runs")}
    wanted: list[sa.Column[Any]] = [
        sa.Column("resume_after", sa.DateTime, nullable=True),
        sa.Column("notes", sa.Text, nullable=False, server_default="[]"),
    ]
    for column in wanted:
        if column.name not in have:  # a store the baseline built from newer tables has them
            op.add_column("runs", column)


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

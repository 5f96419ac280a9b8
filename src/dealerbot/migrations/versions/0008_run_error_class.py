"""Runs: the kind of failure (the error's class in :mod:`dealerbot.errors`, e.g. ``LoginRejected``),
so the console and the messages can explain it in plain Chinese and suggest what to do.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "error_class" not in {c["name"] for c in inspector.get_columns("runs")}:
        op.add_column("runs", sa.Column("error_class", sa.String(64), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

"""Login refusals: a password a portal refused is not typed again until the operator sets one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_refusals",
        sa.Column("account", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("refused_at", sa.DateTime, nullable=False),
        sa.Column("run_id", sa.String(80)),
    )


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

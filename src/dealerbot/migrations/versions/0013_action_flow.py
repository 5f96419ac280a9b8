"""Flows: every ledger action belongs to a flow (``actions.flow``; the shipped OEM-order -> DMS
contract re-key is the flow ``orders``, which every existing action gets), and the one open
action per key becomes one per (store, flow, natural key): two flows may act on one key.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OPEN_STATES = ("planned", "approved", "in_progress", "written", "failed")  # dealerbot.rekey.ledger.OPEN_STATES


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "flow" in {c["name"] for c in inspector.get_columns("actions")}:
        return
    op.add_column("actions", sa.Column("flow", sa.String(32), nullable=False, server_default="orders"))
    op.drop_index("ux_actions_open_key", "actions")
    where = sa.text(f"state IN {OPEN_STATES!r}")
    op.create_index("ux_actions_open_key", "actions", ["store", "flow", "natural_key"], unique=True,
                    sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

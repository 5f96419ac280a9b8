"""The orders' reconciliation: ``order_sync.klass`` becomes ``reconcile_class`` (what it holds: the
class reconciliation put the OEM order in, ``create``, ``update``, ``in_sync``, ``conflict`` or
``rejected``), its index renamed with it; the values are kept.

SQLite renames through Alembic's batch mode (a copy of the table, its key and rows kept).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "klass" not in {c["name"] for c in inspector.get_columns("order_sync")}:
        return
    if "ix_order_sync_klass" in {i["name"] for i in inspector.get_indexes("order_sync")}:
        op.drop_index("ix_order_sync_klass", table_name="order_sync")
    with op.batch_alter_table("order_sync") as batch:
        batch.alter_column("klass", new_column_name="reconcile_class", existing_type=sa.String(16), existing_nullable=False)
    op.create_index("ix_order_sync_reconcile_class", "order_sync", ["reconcile_class"])


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

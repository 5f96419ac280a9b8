"""Re-keying: the store's identity, the ledger of planned writes, the append-only audit trail,
and each OEM order's reconciliation (its class and the values both sides last agreed on).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPEN_STATES = "('planned', 'approved', 'in_progress', 'written', 'failed')"


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(
        sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text)),
        [{"key": "store_id", "value": uuid.uuid4().hex}],
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("natural_key", sa.String(64), nullable=False),
        sa.Column("contract_no", sa.String(64)),
        sa.Column("customer", sa.Text, nullable=False, server_default="{}"),
        sa.Column("new_values", sa.Text, nullable=False, server_default="{}"),
        sa.Column("plan_values", sa.Text, nullable=False, server_default="{}"),
        sa.Column("old_values", sa.Text, nullable=False, server_default="{}"),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("plan_checksum", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("needs_approval", sa.Boolean, nullable=False),
        sa.Column("conflict", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("planned_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("reviewed_by", sa.String(64)),
        sa.Column("reviewed_at", sa.DateTime),
        sa.Column("review_note", sa.Text),
        sa.Column("run_id", sa.String(80)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("customer_submitted_at", sa.DateTime),
        sa.Column("submitted_at", sa.DateTime),
        sa.Column("result_customer_no", sa.String(64)),
        sa.Column("written_at", sa.DateTime),
        sa.Column("verified_at", sa.DateTime),
        sa.Column("failure_code", sa.String(48)),
        sa.Column("failure_reason", sa.Text),
        sa.Column("evidence_dir", sa.Text),
    )
    op.create_index("ix_actions_state", "actions", ["state"])
    op.create_index("ix_actions_natural_key", "actions", ["natural_key"])
    # At most one open action per OEM order: a second "create" for it can never be planned.
    op.create_index(
        "ux_actions_open_key", "actions", ["natural_key"], unique=True,
        sqlite_where=sa.text(f"state IN {OPEN_STATES}"), postgresql_where=sa.text(f"state IN {OPEN_STATES}"),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("run_id", sa.String(80)),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action_id", sa.Integer),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("target", sa.String(64), nullable=False, server_default=""),
        sa.Column("natural_key", sa.String(64), nullable=False, server_default=""),
        sa.Column("old_values", sa.Text, nullable=False, server_default="{}"),
        sa.Column("new_values", sa.Text, nullable=False, server_default="{}"),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_audit_natural_key", "audit", ["natural_key"])
    op.create_table(
        "order_sync",
        sa.Column("oem_order_no", sa.String(64), primary_key=True),
        sa.Column("contract_no", sa.String(64)),
        sa.Column("klass", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("changes", sa.Text, nullable=False, server_default="[]"),
        sa.Column("base", sa.Text, nullable=False, server_default="{}"),
        sa.Column("action_id", sa.Integer),
        sa.Column("reconciled_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_order_sync_klass", "order_sync", ["klass"])
    # The audit trail is append-only, whatever writes to the database.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION dealerbot_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit rows are append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION dealerbot_audit_append_only()"
        )
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_no_{what.lower()} BEFORE {what} ON audit "
                "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END"
            )


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

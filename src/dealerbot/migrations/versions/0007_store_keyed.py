"""Everything stored is keyed by store (a dealership group's stores share one database): a
``store`` column on every table, part of the key wherever a key comes from a portal (records,
watermarks, refused logins, the orders' reconciliation), and in the one-open-action-per-order
index. A single store's data becomes store ``main``. Two tables for groups: ``fires`` (the
timetable firings schedulers claimed) and ``request_budget`` (each portal account's shared pace).

SQLite cannot change a primary key in place: those tables are copied (Alembic's batch mode).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DEFAULT_STORE = "main"
OPEN_STATES = ("planned", "approved", "in_progress", "written", "failed")  # dealerbot.rekey.ledger.OPEN_STATES
# table -> its key before this revision (the store code goes in front)
REKEYED = {
    "watermarks": ["bot"],
    "login_refusals": ["account"],
    "order_sync": ["oem_order_no"],
    "records": ["entity", "record_key"],
    "oem_order": ["order_no"],
    "oem_customer": ["customer_no"],
    "dms_customer": ["customer_no"],
    "dms_contract": ["contract_no"],
}
ADDED = ("runs", "rejects", "actions", "audit")  # a column only: their keys are dealerbot's own ids


def _column() -> sa.Column:
    return sa.Column("store", sa.String(32), nullable=False, server_default=DEFAULT_STORE)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    for name in ADDED:
        op.add_column(name, _column())
    op.add_column("runs", sa.Column("engine_job", sa.Integer))
    op.create_index("ix_runs_engine_job", "runs", ["engine_job"])
    op.create_index("ix_runs_store_started", "runs", ["store", "started_at"])
    op.drop_index("ux_actions_open_key", "actions")
    where = sa.text(f"state IN {OPEN_STATES!r}")
    op.create_index("ux_actions_open_key", "actions", ["store", "natural_key"], unique=True,
                    sqlite_where=where, postgresql_where=where)
    op.create_table(
        "fires",
        sa.Column("store", sa.String(32), primary_key=True, server_default=DEFAULT_STORE),
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("fire_at", sa.String(32), primary_key=True),
        sa.Column("scheduler", sa.String(255), nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=False),
        sa.Column("engine_job", sa.Integer),
    )
    op.create_table(
        "request_budget",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("next_at", sa.Float, nullable=False),
    )
    for name, key in REKEYED.items():
        if sqlite:
            with warnings.catch_warnings():  # the copy's new key replaces the old one, as meant
                warnings.filterwarnings("ignore", message=".*specifies columns .* as primary_key=True")
                with op.batch_alter_table(name, recreate="always") as batch:
                    batch.add_column(_column(), insert_before=key[0])
                    batch.create_primary_key(f"{name}_pkey", ["store", *key])
        else:
            op.add_column(name, _column())
            op.drop_constraint(f"{name}_pkey", name, type_="primary")
            op.create_primary_key(f"{name}_pkey", name, ["store", *key])


def downgrade() -> None:
    raise NotImplementedError("dealerbot stores are only ever upgraded")

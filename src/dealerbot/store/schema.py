"""The store's tables (SQLAlchemy metadata) and how values are kept in them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Column, Date, DateTime, Float, Index, Integer, MetaData, Numeric, String, Table, Text, text
from sqlalchemy.types import TypeEngine

from dealerbot.config import DEFAULT_STORE
from dealerbot.data.records import ENTITIES, Entity
from dealerbot.rekey.ledger import OPEN_STATES

_TYPES: dict[str, Callable[[], TypeEngine[Any]]] = {
    "text": lambda: Text(),
    "int": lambda: Integer(),
    "decimal": lambda: Numeric(14, 2),
    "date": lambda: Date(),
    "datetime": lambda: DateTime(),
    "bool": lambda: Boolean(),
}


RUN_STATUSES = ("running", "succeeded", "failed", "postponed", "interrupted", "skipped", "needs_person", "portal_changed",
                "all_rejected")


def _store_column(key: bool = False) -> Column[Any]:
    """The store a row belongs to (part of the key where the key comes from a portal)."""
    return Column("store", String(32), primary_key=key, nullable=False, server_default=DEFAULT_STORE)


def _entity_table(meta: MetaData, entity: Entity) -> Table:
    cols: list[Column[Any]] = [_store_column(key=True)]
    for f in entity.fields:
        if f.name == entity.key:
            cols.append(Column(f.name, String(64), primary_key=True))
        else:
            cols.append(Column(f.name, _TYPES[f.kind](), nullable=True))
    cols += [
        Column("issues", Text, nullable=False, default="[]"),
        Column("first_run_id", String(80), nullable=False),
        Column("last_run_id", String(80), nullable=False, index=True),
        Column("scraped_at", DateTime, nullable=False),
    ]
    return Table(entity.name, meta, *cols)


def build_metadata() -> tuple[MetaData, dict[str, Table]]:
    meta = MetaData()
    tables = {
        "runs": Table(
            "runs", meta,
            Column("run_id", String(80), primary_key=True),
            Column("bot", String(64), nullable=False, index=True),
            Column("trigger", String(32), nullable=False),
            Column("started_at", DateTime, nullable=False),
            Column("ended_at", DateTime),
            Column("status", String(16), nullable=False),
            Column("counts", Text, nullable=False, default="{}"),
            Column("error", Text),
            Column("evidence_dir", Text),
            Column("evidence", Text, nullable=False, default="[]"),
            Column("options", Text, nullable=False, default="{}"),
            Column("host", String(255), nullable=False, default=""),
            Column("pid", Integer, nullable=False, default=0),
            Column("resume_after", DateTime),  # a postponed run: not before this (0004)
            Column("notes", Text, nullable=False, default="[]"),  # for the operator (0004)
            Column("job", String(64), index=True),  # the timetable job that started it (0005)
            _store_column(),  # (0007)
            Column("engine_job", Integer, index=True),  # a group's task engine job that ran it (0007)
            Column("error_class", String(64)),  # a failed run's error class, e.g. LoginRejected (0008)
            Index("ix_runs_store_started", "store", "started_at"),
        ),
        "rejects": Table(
            "rejects", meta,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("run_id", String(80), nullable=False, index=True),
            Column("entity", String(32), nullable=False),
            Column("record_key", String(64), nullable=False),
            Column("code", String(48), nullable=False),
            Column("field", String(48), nullable=False),
            Column("reason", Text, nullable=False),
            Column("issues", Text, nullable=False, default="[]"),
            Column("raw", Text, nullable=False),
            Column("created_at", DateTime, nullable=False),
            _store_column(),
        ),
        "watermarks": Table(
            "watermarks", meta,
            _store_column(key=True),
            Column("bot", String(64), primary_key=True),
            Column("value", String(64), nullable=False),
            Column("run_id", String(80), nullable=False),
            Column("updated_at", DateTime, nullable=False),
        ),
        "meta": Table(
            "meta", meta,
            Column("key", String(64), primary_key=True),
            Column("value", Text, nullable=False),
        ),
        "actions": Table(
            "actions", meta,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("flow", String(32), nullable=False, server_default="orders"),  # dealerbot.flows
            Column("kind", String(32), nullable=False),
            Column("natural_key", String(64), nullable=False, index=True),
            Column("contract_no", String(64)),
            Column("customer", Text, nullable=False, default="{}"),
            Column("new_values", Text, nullable=False, default="{}"),
            Column("plan_values", Text, nullable=False, default="{}"),  # new_values as planned, before edits
            Column("old_values", Text, nullable=False, default="{}"),
            Column("checksum", String(64), nullable=False),
            Column("plan_checksum", String(64), nullable=False),
            Column("state", String(16), nullable=False, index=True),
            Column("needs_approval", Boolean, nullable=False),
            Column("conflict", Boolean, nullable=False, default=False),
            Column("note", Text, nullable=False, default=""),
            Column("planned_at", DateTime, nullable=False),
            Column("updated_at", DateTime, nullable=False),
            Column("reviewed_by", String(64)),
            Column("reviewed_at", DateTime),
            Column("review_note", Text),
            Column("run_id", String(80)),
            Column("attempts", Integer, nullable=False, default=0),
            Column("customer_submitted_at", DateTime),
            Column("submitted_at", DateTime),
            Column("result_customer_no", String(64)),
            Column("written_at", DateTime),
            Column("verified_at", DateTime),
            Column("failure_code", String(48)),
            Column("failure_reason", Text),
            Column("evidence_dir", Text),
            _store_column(),
            Index(
                "ux_actions_open_key", "store", "flow", "natural_key", unique=True,
                sqlite_where=text(f"state IN {OPEN_STATES!r}"), postgresql_where=text(f"state IN {OPEN_STATES!r}"),
            ),
        ),
        "audit": Table(
            "audit", meta,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("at", DateTime, nullable=False),
            Column("run_id", String(80)),
            Column("actor", String(64), nullable=False),
            Column("action_id", Integer),
            Column("event", String(32), nullable=False),
            Column("target", String(64), nullable=False, default=""),
            Column("natural_key", String(64), nullable=False, default="", index=True),
            Column("old_values", Text, nullable=False, default="{}"),
            Column("new_values", Text, nullable=False, default="{}"),
            Column("note", Text, nullable=False, default=""),
            _store_column(),
        ),
        "login_refusals": Table(
            "login_refusals", meta,
            _store_column(key=True),
            Column("account", String(255), primary_key=True),
            Column("fingerprint", String(64), nullable=False),
            Column("message", Text, nullable=False, default=""),
            Column("refused_at", DateTime, nullable=False),
            Column("run_id", String(80)),
        ),
        "order_sync": Table(
            "order_sync", meta,
            _store_column(key=True),
            Column("oem_order_no", String(64), primary_key=True),
            Column("contract_no", String(64)),
            Column("reconcile_class", String(16), nullable=False, index=True),
            Column("reason", Text, nullable=False, default=""),
            Column("changes", Text, nullable=False, default="[]"),
            Column("base", Text, nullable=False, default="{}"),
            Column("action_id", Integer),
            Column("reconciled_at", DateTime, nullable=False),
        ),
    }
    # A dealership group's (0007): the timetable firings the group's schedulers claimed (one of
    # them defers each into the task engine), and each portal account's shared request pace.
    tables["fires"] = Table(
        "fires", meta,
        _store_column(key=True),
        Column("job", String(64), primary_key=True),
        Column("fire_at", String(32), primary_key=True),  # the scheduled time, UTC ISO
        Column("scheduler", String(255), nullable=False),
        Column("claimed_at", DateTime, nullable=False),
        Column("engine_job", Integer),
    )
    tables["request_budget"] = Table(
        "request_budget", meta,
        Column("account", String(64), primary_key=True),  # a digest of the portal account
        Column("next_at", Float, nullable=False),  # the database clock's epoch seconds of the next free slot
    )
    tables["job_pauses"] = Table(  # timetable jobs a person paused, until resumed (0009)
        "job_pauses", meta,
        _store_column(key=True),
        Column("job", String(64), primary_key=True),
        Column("paused_by", String(64), nullable=False),
        Column("paused_at", DateTime, nullable=False),
    )
    tables["records"] = Table(  # record types users declare: fields as JSON (migration 0006)
        "records", meta,
        _store_column(key=True),
        Column("entity", String(64), primary_key=True),
        Column("record_key", String(64), primary_key=True),
        Column("data", Text, nullable=False),
        Column("issues", Text, nullable=False),
        Column("first_run_id", String(80), nullable=False),
        Column("last_run_id", String(80), nullable=False),
        Column("scraped_at", DateTime, nullable=False),
        Index("ix_records_entity_last_run", "entity", "last_run_id"),
    )
    tables["reported_rejects"] = Table(  # rejects a message has named, not named again until changed (0010)
        "reported_rejects", meta,
        _store_column(key=True),
        Column("bot", String(64), primary_key=True),
        Column("entity", String(64), primary_key=True),
        Column("record_key", String(64), primary_key=True),
        Column("fingerprint", String(64), nullable=False),  # keyed digest of code, field and reason
        Column("run_id", String(80), nullable=False),
        Column("reported_at", DateTime, nullable=False),
    )
    for entity in ENTITIES.values():
        tables[entity.name] = _entity_table(meta, entity)
    return meta, tables


def builtin(entity: Entity) -> bool:
    """Whether ``entity`` has a table of its own (else its records live in ``records``)."""
    return ENTITIES.get(entity.name) is entity


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def dumps(value: Any) -> str:
    """JSON for the store's text columns (Decimal and dates as text)."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)

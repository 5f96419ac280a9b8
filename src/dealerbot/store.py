"""The run store: runs, scraped records, rejects with reasons, and each bot's watermark.

SQLite by default (a file under ``var/``), any SQLAlchemy URL otherwise (PostgreSQL for a
dealership group). Nothing else in dealerbot writes SQL.

Records are upserted by their key in small batches as they arrive (:class:`RecordWriter`), so
memory does not grow with the number of records and a re-run adds no duplicates.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from dealerbot.errors import ConfigError
from dealerbot.records import ENTITIES, Entity

_TYPES = {
    "text": lambda: Text(),
    "int": lambda: Integer(),
    "decimal": lambda: Numeric(14, 2),
    "date": lambda: Date(),
    "datetime": lambda: DateTime(),
    "bool": lambda: Boolean(),
}

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")


def _entity_table(meta: MetaData, entity: Entity) -> Table:
    cols: list[Column[Any]] = []
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


def _build_metadata() -> tuple[MetaData, dict[str, Table]]:
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
        ),
        "watermarks": Table(
            "watermarks", meta,
            Column("bot", String(64), primary_key=True),
            Column("value", String(64), nullable=False),
            Column("run_id", String(80), nullable=False),
            Column("updated_at", DateTime, nullable=False),
        ),
    }
    for entity in ENTITIES.values():
        tables[entity.name] = _entity_table(meta, entity)
    return meta, tables


@dataclass(frozen=True)
class RunRecord:
    """A row of the runs table."""

    run_id: str
    bot: str
    trigger: str
    started_at: datetime
    ended_at: datetime | None
    status: str
    counts: dict[str, int]
    error: str | None
    evidence_dir: str | None
    evidence: list[str]
    options: dict[str, Any]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def dumps(value: Any) -> str:
    """JSON for the store's text columns (Decimal and dates as text)."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


class Store:
    """The run store. Create with :meth:`open`; close with :meth:`close` (or ``with``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.meta, self.tables = _build_metadata()
        self.meta.create_all(engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring a store made by an older dealerbot up to date, for columns added since.

        Only additive changes are made this way; a column never changes type or goes away.
        """
        existing = inspect(self.engine)
        with self.engine.begin() as conn:
            for table in self.meta.sorted_tables:
                have = {c["name"] for c in existing.get_columns(table.name)}
                for col in table.columns:
                    if col.name in have:
                        continue
                    ddl = f"ALTER TABLE {table.name} ADD COLUMN {col.name} {col.type.compile(dialect=self.engine.dialect)}"
                    default = getattr(col.default, "arg", None)
                    if isinstance(default, str):
                        ddl += " DEFAULT '" + default.replace("'", "''") + "'"
                    elif isinstance(default, int | float):
                        ddl += f" DEFAULT {default}"
                    try:
                        with conn.begin_nested():
                            conn.execute(text(ddl))
                    except Exception:  # noqa: BLE001 - another process added it a moment ago
                        if col.name not in {c["name"] for c in inspect(conn).get_columns(table.name)}:
                            raise

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to ``url`` and create missing tables.

        Raises:
            ConfigError: the URL is malformed or the database cannot be opened.
        """
        try:
            parsed = make_url(url)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"store url {url!r} is not a database URL: {exc}") from None
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        try:
            engine = create_engine(url, hide_parameters=True, **kwargs)  # no record data in errors
            if parsed.get_backend_name() == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            return cls(engine)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - driver errors vary by backend
            raise ConfigError(f"cannot open the store at {parsed.render_as_string(hide_password=True)}: {exc}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, run_id: str, bot: str, trigger: str, options: dict[str, Any] | None = None) -> None:
        """Record that a run started (on this host, in this process)."""
        with self.engine.begin() as conn:
            conn.execute(
                self.tables["runs"].insert().values(
                    run_id=run_id, bot=bot, trigger=trigger, started_at=datetime.now(),
                    status="running", counts="{}", evidence="[]", options=dumps(options or {}),
                    host=socket.gethostname(), pid=os.getpid(),
                )
            )

    def close_abandoned_runs(self) -> list[str]:
        """Mark as ``interrupted`` the runs still ``running`` whose process on this host is gone
        (killed, power cut). Returns their ids. Runs of other hosts are left alone."""
        import psutil

        t = self.tables["runs"]
        host = socket.gethostname()
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.c.run_id, t.c.pid).where(t.c.status == "running", t.c.host == host)).all()
            gone = [r.run_id for r in rows if r.pid != os.getpid() and not psutil.pid_exists(r.pid)]
            if gone:
                conn.execute(
                    update(t).where(t.c.run_id.in_(gone)).values(
                        status="interrupted", ended_at=datetime.now(),
                        error="the process running it ended without finishing (killed or powered off)",
                    )
                )
        return gone

    def finish_run(
        self,
        run_id: str,
        status: str,
        counts: dict[str, int],
        error: str | None = None,
        evidence_dir: str | None = None,
        evidence: Sequence[str] = (),
    ) -> None:
        """Record a run's outcome. Raises ValueError for an unknown status."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self.engine.begin() as conn:
            conn.execute(
                update(self.tables["runs"])
                .where(self.tables["runs"].c.run_id == run_id)
                .values(
                    status=status, ended_at=datetime.now(), counts=dumps(counts), error=error,
                    evidence_dir=evidence_dir, evidence=dumps(list(evidence)),
                )
            )

    def runs(self, limit: int = 20, bot: str | None = None) -> list[RunRecord]:
        """Most recent runs first."""
        t = self.tables["runs"]
        q = select(t).order_by(t.c.started_at.desc(), t.c.run_id.desc()).limit(limit)
        if bot:
            q = q.where(t.c.bot == bot)
        with self.engine.connect() as conn:
            return [self._run(r) for r in conn.execute(q).mappings()]

    def run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        t = self.tables["runs"]
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.run_id == run_id)).mappings().first()
        return self._run(row) if row else None

    @staticmethod
    def _run(row: Any) -> RunRecord:
        return RunRecord(
            run_id=row["run_id"], bot=row["bot"], trigger=row["trigger"], started_at=row["started_at"],
            ended_at=row["ended_at"], status=row["status"], counts=json.loads(row["counts"] or "{}"),
            error=row["error"], evidence_dir=row["evidence_dir"], evidence=json.loads(row["evidence"] or "[]"),
            options=json.loads(row["options"] or "{}"),
        )

    # -- watermarks ----------------------------------------------------------------------------
    def watermark(self, bot: str) -> str | None:
        """The bot's incremental watermark (the newest source change seen by a successful run)."""
        t = self.tables["watermarks"]
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.value).where(t.c.bot == bot)).scalar()

    def set_watermark(self, bot: str, value: str, run_id: str) -> None:
        """Move the bot's watermark (only call after a successful run)."""
        t = self.tables["watermarks"]
        with self.engine.begin() as conn:
            row = {"bot": bot, "value": value, "run_id": run_id, "updated_at": datetime.now()}
            conn.execute(self._upsert(t, ["bot"]), [row])

    # -- records ------------------------------------------------------------------------------
    def _upsert(self, table: Table, keys: list[str], keep: Sequence[str] = ()) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:  # pragma: no cover - other backends are not supported yet
            raise ConfigError(f"store backend {dialect!r} is not supported (use sqlite or postgresql)")
        stmt = insert(table)
        cols = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys and c.name not in keep}
        return stmt.on_conflict_do_update(index_elements=keys, set_=cols)

    def writer(self, run_id: str, batch_size: int = 100) -> RecordWriter:
        """A buffered writer of records and rejects for one run."""
        return RecordWriter(self, run_id, batch_size)

    def iter_records(self, entity: Entity, run_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Stream an entity's records (those touched by ``run_id`` when given), by key."""
        t = self.tables[entity.name]
        q = select(t).order_by(t.c[entity.key])
        if run_id:
            q = q.where(t.c.last_run_id == run_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=500).execute(q)
            for row in result.mappings():
                yield dict(row)

    def iter_rejects(self, run_id: str, entity: Entity | None = None) -> Iterator[dict[str, Any]]:
        """Stream one run's rejected records."""
        t = self.tables["rejects"]
        q = select(t).where(t.c.run_id == run_id).order_by(t.c.id)
        if entity is not None:
            q = q.where(t.c.entity == entity.name)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=500).execute(q).mappings():
                yield dict(row)

    def iter_open_rejects(self, entity: Entity) -> Iterator[dict[str, Any]]:
        """The latest reject of each record that has not been accepted since (still to fix)."""
        r, t = self.tables["rejects"], self.tables[entity.name]
        latest = (
            select(func.max(r.c.id).label("id")).where(r.c.entity == entity.name).group_by(r.c.record_key).subquery()
        )
        q = (
            select(r)
            .join(latest, latest.c.id == r.c.id)
            .outerjoin(t, t.c[entity.key] == r.c.record_key)
            .where((t.c[entity.key].is_(None)) | (t.c.scraped_at < r.c.created_at))
            .order_by(r.c.record_key)
        )
        # A reject without a key cannot be followed across runs: the latest run's are shown.
        last_run = select(r.c.run_id).where(r.c.entity == entity.name).order_by(r.c.id.desc()).limit(1).scalar_subquery()
        keyless = select(r).where(r.c.entity == entity.name, r.c.record_key == "", r.c.run_id == last_run).order_by(r.c.id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=500).execute(q.where(r.c.record_key != "")).mappings():
                yield dict(row)
            for row in conn.execute(keyless).mappings():
                yield dict(row)

    def count(self, entity: Entity, run_id: str | None = None) -> int:
        """How many records of ``entity`` are stored (touched by ``run_id`` when given)."""
        t = self.tables[entity.name]
        q = select(func.count()).select_from(t)
        if run_id:
            q = q.where(t.c.last_run_id == run_id)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def get(self, entity: Entity, key: str) -> dict[str, Any] | None:
        """One record by key, or None."""
        t = self.tables[entity.name]
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c[entity.key] == key)).mappings().first()
        return dict(row) if row else None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class RecordWriter:
    """Buffers accepted records and rejects, flushing every ``batch_size`` in one transaction."""

    def __init__(self, store: Store, run_id: str, batch_size: int = 100) -> None:
        self.store = store
        self.run_id = run_id
        self.batch_size = batch_size
        self._records: dict[str, list[dict[str, Any]]] = {}
        self._rejects: list[dict[str, Any]] = []
        self._pending = 0

    def add(self, entity: Entity, values: dict[str, Any], issues: Sequence[dict[str, Any]]) -> None:
        """Queue an accepted record for upsert (by its key)."""
        row = {f: values.get(f) for f in entity.field_names}
        row.update(
            issues=dumps(list(issues)), first_run_id=self.run_id, last_run_id=self.run_id,
            scraped_at=datetime.now(),
        )
        self._records.setdefault(entity.name, []).append(row)
        self._bump()

    def reject(
        self, entity: Entity, key: str, code: str, field: str, reason: str,
        raw: dict[str, Any], issues: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Queue a rejected record with its reason."""
        self._rejects.append({
            "run_id": self.run_id, "entity": entity.name, "record_key": key or "", "code": code,
            "field": field, "reason": reason, "raw": dumps(raw), "issues": dumps(list(issues)),
            "created_at": datetime.now(),
        })
        self._bump()

    def _bump(self) -> None:
        self._pending += 1
        if self._pending >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Write what is queued in one transaction."""
        if not self._pending:
            return
        with self.store.engine.begin() as conn:
            for name, rows in self._records.items():
                table = self.store.tables[name]
                key = ENTITIES[name].key
                # One key twice in a batch: the later version wins, as it would across batches.
                unique = list({r[key]: r for r in rows}.values())
                conn.execute(self.store._upsert(table, [key], keep=["first_run_id"]), unique)
            if self._rejects:
                conn.execute(self.store.tables["rejects"].insert(), self._rejects)
        self._records = {}
        self._rejects = []
        self._pending = 0

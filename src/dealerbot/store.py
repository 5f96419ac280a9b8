"""The run store: runs, scraped records, rejects with reasons, and each bot's watermark.

SQLite by default (a file under ``var/``), any SQLAlchemy URL otherwise (PostgreSQL for a
dealership group). Nothing else in dealerbot writes SQL.

Records are upserted by their key in small batches as they arrive (:class:`RecordWriter`), so
memory does not grow with the number of records and a re-run adds no duplicates.

The re-key side lives here too: the ledger of planned DMS writes (``actions``, whose states are
drawn in :mod:`dealerbot.rekey.ledger`), the append-only ``audit`` trail (triggers refuse updates and
deletes), and ``order_sync``: each OEM order's last reconciliation and the values both sides
last agreed on.

The schema is created and upgraded by Alembic migrations (``dealerbot/migrations``) when a
store is opened; a store made by an older dealerbot upgrades in place.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    case,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from dealerbot.config import DEFAULT_STORE, STORE_CODE
from dealerbot.data.records import ENTITIES, Entity
from dealerbot.errors import ConfigError
from dealerbot.private_files import make_private, private_dir
from dealerbot.rekey.ledger import OPEN_STATES, POLICY_REVIEWER, Action, CustomerPlan, PlannedAction

SCHEMA_HEAD = "0007"  # the newest migration in dealerbot/migrations/versions (a test checks)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_TYPES = {
    "text": lambda: Text(),
    "int": lambda: Integer(),
    "decimal": lambda: Numeric(14, 2),
    "date": lambda: Date(),
    "datetime": lambda: DateTime(),
    "bool": lambda: Boolean(),
}

RUN_STATUSES = ("running", "succeeded", "failed", "postponed", "interrupted", "skipped")


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
            Column("resume_after", DateTime),  # a postponed run: not before this (0004)
            Column("notes", Text, nullable=False, default="[]"),  # for the operator (0004)
            Column("job", String(64), index=True),  # the timetable job that started it (0005)
            _store_column(),  # (0007)
            Column("engine_job", Integer, index=True),  # a group's task engine job that ran it (0007)
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
                "ux_actions_open_key", "store", "natural_key", unique=True,
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
            Column("klass", String(16), nullable=False, index=True),
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
    for entity in ENTITIES.values():
        tables[entity.name] = _entity_table(meta, entity)
    return meta, tables


def builtin(entity: Entity) -> bool:
    """Whether ``entity`` has a table of its own (else its records live in ``records``)."""
    return ENTITIES.get(entity.name) is entity


def _typed(entity: Entity, data: dict[str, Any]) -> dict[str, Any]:
    """A user record's stored JSON back to typed values (as the built-in tables give them)."""
    out: dict[str, Any] = {}
    for f in entity.fields:
        value = data.get(f.name)
        if value is not None and isinstance(value, str):
            if f.kind == "decimal":
                value = Decimal(value)
            elif f.kind == "date":
                value = date.fromisoformat(value)
            elif f.kind == "datetime":
                value = datetime.fromisoformat(value)
        out[f.name] = value
    return out


def _user_row(entity: Entity, row: Any) -> dict[str, Any]:
    return {**_typed(entity, json.loads(row["data"])), "issues": row["issues"], "first_run_id": row["first_run_id"],
            "last_run_id": row["last_run_id"], "scraped_at": row["scraped_at"]}


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
    resume_after: datetime | None = None
    notes: list[str] = field(default_factory=list)
    job: str | None = None


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
    """The run store of one dealership store (``code``): every row it reads or writes is that
    store's, so the stores of a group share one database without ever seeing each other's data.
    Create with :meth:`open`; close with :meth:`close` (or ``with``)."""

    def __init__(self, engine: Engine, code: str = DEFAULT_STORE) -> None:
        self.engine = engine
        self.code = code
        self.meta, self.tables = _build_metadata()

    def _mine(self, table: Any) -> Any:
        """The condition "this row is this store's"."""
        return table.c.store == self.code

    def for_code(self, code: str) -> Store:
        """The same database as store ``code`` sees it (sharing this one's connections: close
        only this one)."""
        return type(self)(self.engine, code)

    @classmethod
    def open(cls, url: str, store: str = DEFAULT_STORE) -> Store:
        """Connect to ``url`` (upgrading its schema) for the store ``store``.

        Raises:
            ConfigError: the URL is malformed, the store code is invalid or the database cannot
                be opened.
        """
        if not STORE_CODE.fullmatch(store):
            raise ConfigError(f"store code {store!r}: use 1-32 letters, digits, _ or - (e.g. S01)")
        try:
            parsed = make_url(url)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"store url {url!r} is not a database URL: {exc}") from None
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            private_dir(Path(parsed.database).parent)
            kwargs["connect_args"] = {"timeout": 30}
        try:
            engine = create_engine(url, hide_parameters=True, **kwargs)  # no record data in errors
            if parsed.get_backend_name() == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            if parsed.get_backend_name() == "sqlite":
                _check_intact(engine, parsed.database or ":memory:")
            migrate(engine)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                for suffix in ("", "-wal", "-shm"):  # customers' data: the user's alone
                    if Path(f"{parsed.database}{suffix}").exists():
                        make_private(Path(f"{parsed.database}{suffix}"))
            return cls(engine, store)
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

    # -- the ledger lock: planning and writing never interleave --------------------------------
    @contextmanager
    def ledger_lock(self, holder: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold this store's ledger lock (:class:`LedgerLock`) for the ``with`` block, waiting
        as long as another holder has it: ``on_wait`` is told once who that is (e.g. "dms-rekey
        20261125-083015-dms-rekey-3fa2"). For a caller without an event loop (the CLI's
        ``reconcile``); inside one, use :meth:`ledger_lock_async`.

        Raises:
            sqlalchemy.exc.SQLAlchemyError / OSError: the lock could not be taken.
        """
        lock = LedgerLock(self, holder)
        for _ in _until_held(lock, on_wait):
            time.sleep(LEDGER_LOCK_POLL)
        try:
            yield
        finally:
            lock.release()

    @asynccontextmanager
    async def ledger_lock_async(self, holder: str, on_wait: Callable[[str], None] | None = None) -> AsyncIterator[None]:
        """:meth:`ledger_lock` for a caller in an event loop: waiting never blocks the loop (a
        console's re-key and its timetable's sync share one), and a cancellation ends the wait.

        Raises:
            sqlalchemy.exc.SQLAlchemyError / OSError: the lock could not be taken.
        """
        import asyncio

        lock = LedgerLock(self, holder)
        for _ in _until_held(lock, on_wait):
            await asyncio.sleep(LEDGER_LOCK_POLL)
        try:
            yield
        finally:
            lock.release()

    # -- runs ---------------------------------------------------------------------------------
    def start_run(
        self, run_id: str, bot: str, trigger: str, options: dict[str, Any] | None = None, job: str | None = None,
        engine_job: int | None = None,
    ) -> None:
        """Record that a run started (on this host, in this process; ``job``: the timetable job;
        ``engine_job``: the group's task engine job running it)."""
        with self.engine.begin() as conn:
            conn.execute(
                self.tables["runs"].insert().values(
                    run_id=run_id, bot=bot, trigger=trigger, started_at=datetime.now(),
                    status="running", counts="{}", evidence="[]", options=dumps(options or {}),
                    host=socket.gethostname(), pid=os.getpid(), job=job, store=self.code, engine_job=engine_job,
                )
            )

    def record_skipped_run(
        self, run_id: str, bot: str, trigger: str, reason: str, job: str | None = None, status: str = "skipped",
    ) -> None:
        """Record a run that did not start (the bot was already running for the account, the
        timetable fired too late: ``skipped``; it could not start at all: ``failed``): it shows
        in the history with its reason."""
        now = datetime.now()
        with self.engine.begin() as conn:
            conn.execute(
                self.tables["runs"].insert().values(
                    run_id=run_id, bot=bot, trigger=trigger, started_at=now, ended_at=now, status=status,
                    counts="{}", evidence="[]", options="{}", error=reason, host=socket.gethostname(),
                    pid=os.getpid(), job=job, store=self.code,
                )
            )

    def last_job_run(self, job: str) -> RunRecord | None:
        """The newest run a timetable job started (any outcome), or None."""
        t = self.tables["runs"]
        q = select(t).where(self._mine(t), t.c.job == job).order_by(t.c.started_at.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return self._run(row) if row is not None else None

    def close_abandoned_runs(self) -> list[str]:
        """Mark as ``interrupted`` the runs still ``running`` whose process on this host is gone
        (killed, power cut), whichever store they ran for. Returns their ids. Runs of other
        hosts are left alone."""
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

    def take_over_engine_job(self, engine_job: int, worker_id: int | None) -> tuple[str, list[str]]:
        """Take over the task engine's job ``engine_job``, left ``doing`` by the worker
        ``worker_id`` that stopped sending heartbeats, in one transaction: its runs still
        ``running`` become ``interrupted`` (whatever host ran them) and the job goes back to
        ``todo``; or, when the same store's same job already waits (the engine's queueing lock),
        this one ends ``failed`` and the waiting one resumes the work. Only if the job is still
        ``doing`` for that worker: of several workers sweeping at once, exactly one takes it over,
        and a job another worker already took up again is left alone.

        Returns ``("requeued" | "replaced" | "", interrupted run ids)``; "" when there was
        nothing to take over. PostgreSQL only (the engine's tables).
        """
        from sqlalchemy.exc import IntegrityError

        t = self.tables["runs"]
        still_doing = "id = :id AND status = 'doing' AND worker_id IS NOT DISTINCT FROM :worker"
        args = {"id": engine_job, "worker": worker_id}
        with self.engine.begin() as conn:
            found = conn.execute(text(f"SELECT id FROM procrastinate_jobs WHERE {still_doing} FOR UPDATE"), args).first()
            if found is None:
                return "", []
            ids = list(conn.execute(select(t.c.run_id).where(t.c.engine_job == engine_job, t.c.status == "running")).scalars())
            if ids:
                conn.execute(update(t).where(t.c.run_id.in_(ids)).values(
                    status="interrupted", ended_at=datetime.now(),
                    error="the worker running it stopped answering (killed or its machine went off); another worker "
                          "takes the job over"))
            try:
                with conn.begin_nested():
                    conn.execute(text(
                        f"UPDATE procrastinate_jobs SET status = 'todo', attempts = attempts + 1, scheduled_at = now() "
                        f"WHERE {still_doing}"), args)
                how = "requeued"
            except IntegrityError:  # a job with the same queueing lock waits: it takes the work over
                conn.execute(text(f"UPDATE procrastinate_jobs SET status = 'failed' WHERE {still_doing}"), args)
                how = "replaced"
        return how, ids

    def release_fire(self, job: str, fire_at: str) -> None:
        """Give a claimed firing up (it could not be deferred)."""
        t = self.tables["fires"]
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(self._mine(t), t.c.job == job, t.c.fire_at == fire_at))

    def prune_fires(self, older_than: timedelta) -> int:
        """Forget claimed firings older than ``older_than`` (all stores). Returns how many."""
        t = self.tables["fires"]
        with self.engine.begin() as conn:
            return int(conn.execute(t.delete().where(t.c.claimed_at < datetime.now() - older_than)).rowcount or 0)

    def finish_run(
        self,
        run_id: str,
        status: str,
        counts: dict[str, int],
        error: str | None = None,
        evidence_dir: str | None = None,
        evidence: Sequence[str] = (),
        resume_after: datetime | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        """Record a run's outcome (``resume_after``: a postponed run's earliest new start).

        Raises:
            ValueError: an unknown status.
        """
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self.engine.begin() as conn:
            conn.execute(
                update(self.tables["runs"])
                .where(self.tables["runs"].c.run_id == run_id, self._mine(self.tables["runs"]))
                .values(
                    status=status, ended_at=datetime.now(), counts=dumps(counts), error=error,
                    evidence_dir=evidence_dir, evidence=dumps(list(evidence)), resume_after=resume_after,
                    notes=dumps(list(notes)),
                )
            )

    def runs(self, limit: int = 20, bot: str | None = None) -> list[RunRecord]:
        """Most recent runs first."""
        t = self.tables["runs"]
        q = select(t).where(self._mine(t)).order_by(t.c.started_at.desc(), t.c.run_id.desc()).limit(limit)
        if bot:
            q = q.where(t.c.bot == bot)
        with self.engine.connect() as conn:
            return [self._run(r) for r in conn.execute(q).mappings()]

    def run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        t = self.tables["runs"]
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(self._mine(t), t.c.run_id == run_id)).mappings().first()
        return self._run(row) if row else None

    @staticmethod
    def _run(row: Any) -> RunRecord:
        return RunRecord(
            run_id=row["run_id"], bot=row["bot"], trigger=row["trigger"], started_at=row["started_at"],
            ended_at=row["ended_at"], status=row["status"], counts=json.loads(row["counts"] or "{}"),
            error=row["error"], evidence_dir=row["evidence_dir"], evidence=json.loads(row["evidence"] or "[]"),
            options=json.loads(row["options"] or "{}"), resume_after=row["resume_after"],
            notes=json.loads(row["notes"] or "[]"), job=row["job"],
        )

    # -- watermarks ----------------------------------------------------------------------------
    def watermark(self, bot: str) -> str | None:
        """The bot's incremental watermark (the newest source change seen by a successful run)."""
        t = self.tables["watermarks"]
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.value).where(self._mine(t), t.c.bot == bot)).scalar()

    def set_watermark(self, bot: str, value: str, run_id: str) -> None:
        """Move the bot's watermark (only call after a successful run)."""
        t = self.tables["watermarks"]
        with self.engine.begin() as conn:
            row = {"store": self.code, "bot": bot, "value": value, "run_id": run_id, "updated_at": datetime.now()}
            conn.execute(self._upsert(t, ["store", "bot"]), [row])

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

    def writer(self, run_id: str, batch_size: int = 100, counts: dict[str, int] | None = None) -> RecordWriter:
        """A buffered writer of records and rejects for one run (saving ``counts`` with each batch)."""
        return RecordWriter(self, run_id, batch_size, counts)

    def iter_records(self, entity: Entity, run_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Stream an entity's records (those touched by ``run_id`` when given), by key."""
        if not builtin(entity):
            r = self.tables["records"]
            uq = select(r).where(self._mine(r), r.c.entity == entity.name).order_by(r.c.record_key)
            if run_id:
                uq = uq.where(r.c.last_run_id == run_id)
            with self.engine.connect() as conn:
                for row in conn.execution_options(yield_per=500).execute(uq).mappings():
                    yield _user_row(entity, row)
            return
        t = self.tables[entity.name]
        q = select(t).where(self._mine(t)).order_by(t.c[entity.key])
        if run_id:
            q = q.where(t.c.last_run_id == run_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=500).execute(q)
            for row in result.mappings():
                yield {k: v for k, v in row.items() if k != "store"}

    def iter_rejects(self, run_id: str, entity: Entity | None = None) -> Iterator[dict[str, Any]]:
        """Stream one run's rejected records."""
        t = self.tables["rejects"]
        q = select(t).where(self._mine(t), t.c.run_id == run_id).order_by(t.c.id)
        if entity is not None:
            q = q.where(t.c.entity == entity.name)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=500).execute(q).mappings():
                yield dict(row)

    def iter_open_rejects(self, entity: Entity) -> Iterator[dict[str, Any]]:
        """The latest reject of each record that has not been accepted since (still to fix)."""
        r = self.tables["rejects"]
        if builtin(entity):
            t = select(self.tables[entity.name]).where(self._mine(self.tables[entity.name])).subquery()
            key_col = t.c[entity.key]
        else:
            records = self.tables["records"]
            t = select(records).where(self._mine(records), records.c.entity == entity.name).subquery()
            key_col = t.c.record_key
        mine = (self._mine(r), r.c.entity == entity.name)
        latest = select(func.max(r.c.id).label("id")).where(*mine).group_by(r.c.record_key).subquery()
        q = (
            select(r)
            .join(latest, latest.c.id == r.c.id)
            .outerjoin(t, key_col == r.c.record_key)
            .where((key_col.is_(None)) | (t.c.scraped_at < r.c.created_at))
            .order_by(r.c.record_key)
        )
        # A reject without a key cannot be followed across runs: the latest run's are shown.
        last_run = select(r.c.run_id).where(*mine).order_by(r.c.id.desc()).limit(1).scalar_subquery()
        keyless = select(r).where(*mine, r.c.record_key == "", r.c.run_id == last_run).order_by(r.c.id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=500).execute(q.where(r.c.record_key != "")).mappings():
                yield dict(row)
            for row in conn.execute(keyless).mappings():
                yield dict(row)

    def count(self, entity: Entity, run_id: str | None = None) -> int:
        """How many records of ``entity`` are stored (touched by ``run_id`` when given)."""
        if not builtin(entity):
            t = self.tables["records"]
            q = select(func.count()).select_from(t).where(self._mine(t), t.c.entity == entity.name)
        else:
            t = self.tables[entity.name]
            q = select(func.count()).select_from(t).where(self._mine(t))
        if run_id:
            q = q.where(t.c.last_run_id == run_id)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def get(self, entity: Entity, key: str) -> dict[str, Any] | None:
        """One record by key, or None."""
        if not builtin(entity):
            r = self.tables["records"]
            with self.engine.connect() as conn:
                found = conn.execute(
                    select(r).where(self._mine(r), r.c.entity == entity.name, r.c.record_key == key)
                ).mappings().first()
            return _user_row(entity, found) if found else None
        t = self.tables[entity.name]
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(self._mine(t), t.c[entity.key] == key)).mappings().first()
        return {k: v for k, v in row.items() if k != "store"} if row else None


    # -- identity --------------------------------------------------------------------------
    def store_id(self) -> str:
        """A random id made when the store was created (review workbooks carry it)."""
        t = self.tables["meta"]
        with self.engine.connect() as conn:
            return str(conn.execute(select(t.c.value).where(t.c.key == "store_id")).scalar() or "")

    def value_counts(self, entity: Entity, field: str) -> dict[str, int]:
        """How many stored records of ``entity`` have each value of ``field``."""
        if not builtin(entity):
            counts: dict[str, int] = {}
            for record in self.iter_records(entity):
                value = str(record.get(field) or "")
                counts[value] = counts.get(value, 0) + 1
            return counts
        t = self.tables[entity.name]
        q = select(t.c[field], func.count()).where(self._mine(t)).group_by(t.c[field])
        with self.engine.connect() as conn:
            return {str(v or ""): int(n) for v, n in conn.execute(q)}

    # -- refused passwords -------------------------------------------------------------------
    def password_fingerprint(self, password: str) -> str:
        """A keyed digest of a password (never the password): enough to tell whether the
        password now configured is the one a portal refused."""
        return hmac.new(self.store_id().encode(), password.encode(), hashlib.sha256).hexdigest()[:32]

    def login_refusal(self, account: str) -> dict[str, Any] | None:
        """The portal account's last refused password (fingerprint, message, when), or None."""
        t = self.tables["login_refusals"]
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(self._mine(t), t.c.account == account)).mappings().first()
        return dict(row) if row else None

    def record_login_refusal(self, account: str, fingerprint: str, message: str, run_id: str | None) -> None:
        """Remember that the portal refused this password for this account."""
        t = self.tables["login_refusals"]
        with self.engine.begin() as conn:
            conn.execute(self._upsert(t, ["store", "account"]), [{
                "store": self.code, "account": account, "fingerprint": fingerprint, "message": message, "refused_at": datetime.now(),
                "run_id": run_id,
            }])

    def clear_login_refusal(self, account: str) -> bool:
        """Forget a refusal (a new password was set, or the operator asks to try again)."""
        t = self.tables["login_refusals"]
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(self._mine(t), t.c.account == account)).rowcount > 0

    # -- the re-key ledger -------------------------------------------------------------------
    @staticmethod
    def _action(row: Any) -> Action:
        return Action(
            kind=row["kind"], natural_key=row["natural_key"], new_values=json.loads(row["new_values"]),
            old_values=json.loads(row["old_values"]), contract_no=row["contract_no"] or "",
            customer=CustomerPlan.from_dict(json.loads(row["customer"])), conflict=bool(row["conflict"]),
            note=row["note"] or "", id=row["id"], state=row["state"], needs_approval=bool(row["needs_approval"]),
            stored_checksum=row["checksum"], plan_checksum=row["plan_checksum"],
            plan_values=json.loads(row["plan_values"]), reviewed_by=row["reviewed_by"], review_note=row["review_note"],
            run_id=row["run_id"], attempts=row["attempts"], customer_submitted=row["customer_submitted_at"] is not None,
            submitted=row["submitted_at"] is not None, result_customer_no=row["result_customer_no"],
            failure_code=row["failure_code"], failure_reason=row["failure_reason"], evidence_dir=row["evidence_dir"],
        )

    def action(self, action_id: int) -> Action | None:
        """One action by id, or None."""
        t = self.tables["actions"]
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(self._mine(t), t.c.id == action_id)).mappings().first()
        return self._action(row) if row else None

    def actions(
        self, states: Iterable[str] | None = None, natural_key: str | None = None, run_id: str | None = None,
    ) -> list[Action]:
        """Actions (in the given states, of one order, last taken by one run), oldest first."""
        t = self.tables["actions"]
        q = select(t).where(self._mine(t)).order_by(t.c.id)
        if states is not None:
            q = q.where(t.c.state.in_(list(states)))
        if natural_key is not None:
            q = q.where(t.c.natural_key == natural_key)
        if run_id is not None:
            q = q.where(t.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [self._action(r) for r in conn.execute(q).mappings()]

    def latest_actions(self) -> dict[str, Action]:
        """The newest action of every OEM order that has one."""
        t = self.tables["actions"]
        newest = select(func.max(t.c.id)).where(self._mine(t)).group_by(t.c.natural_key).scalar_subquery()
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=1000).execute(select(t).where(t.c.id.in_(newest))).mappings()
            return {r["natural_key"]: self._action(r) for r in rows}

    def written_contracts(self) -> dict[str, dict[str, Any]]:
        """What dealerbot last wrote for each OEM order (actions that reached the DMS, whatever
        happened next): the contract no, its values as written and when; newer than a scrape
        taken before it."""
        t = self.tables["actions"]
        q = select(t).where(self._mine(t), t.c.written_at.is_not(None), t.c.contract_no.is_not(None)).order_by(t.c.id)
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=1000).execute(q).mappings():
                customer = CustomerPlan.from_dict(json.loads(r["customer"]))
                values = json.loads(r["new_values"])
                no = r["result_customer_no"] or customer.customer_no
                if no:
                    values["customer_no"] = no
                out[r["natural_key"]] = {"contract_no": r["contract_no"], "values": values, "written_at": r["written_at"]}
        return out

    def created_customers(self) -> list[dict[str, Any]]:
        """The DMS customers dealerbot created (their number and the values typed)."""
        t = self.tables["actions"]
        q = select(t.c.customer, t.c.result_customer_no).where(self._mine(t), t.c.result_customer_no.is_not(None))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        out = []
        for customer, no in rows:
            plan = CustomerPlan.from_dict(json.loads(customer))
            if plan.mode == "new":
                out.append({**plan.values, "customer_no": no})
        return out

    def save_plan(
        self,
        supersede: Sequence[int],
        new: Sequence[tuple[PlannedAction, bool]],
        sync_rows: Sequence[dict[str, Any]],
        new_state: dict[int, str] | None = None,
        dropped: Sequence[tuple[Action, str]] = (),
    ) -> dict[str, int]:
        """Store one reconciliation in one transaction: close the open actions in ``supersede``
        (state ``superseded``), add each ``(action, needs_approval)`` of ``new`` (``planned``, or
        ``approved`` by policy when it needs no approval), and upsert ``sync_rows`` (their
        ``action_id`` is filled in for new actions of the same order). Each ``(action, reason)``
        of ``dropped`` (a person's approval superseded) gets an ``approval_dropped`` row in the
        audit trail with the reason. Returns the new ids by natural key.

        Raises:
            sqlalchemy.exc.IntegrityError: a second open action for one order (never planned).
        """
        t, st = self.tables["actions"], self.tables["order_sync"]
        now = datetime.now()
        ids: dict[str, int] = {}
        with self.engine.begin() as conn:
            if supersede:
                conn.execute(
                    update(t).where(self._mine(t), t.c.id.in_(list(supersede)),
                                    t.c.state.in_(["planned", "approved", "failed"]))
                    .values(state="superseded", updated_at=now)
                )
            for action, reason in dropped:
                self._audit(conn, None, "reconcile", action, "approval_dropped", action.contract_no, {}, {}, reason)
            for action, needs_approval in new:
                result = conn.execute(t.insert().values(
                    kind=action.kind, natural_key=action.natural_key, contract_no=action.contract_no or None,
                    customer=dumps(action.customer.as_dict()), new_values=dumps(action.new_values),
                    old_values=dumps(action.old_values), checksum=action.checksum(), plan_checksum=action.checksum(),
                    plan_values=dumps(action.new_values),
                    state="planned" if needs_approval else "approved", needs_approval=needs_approval,
                    conflict=action.conflict, note=action.note, planned_at=now, updated_at=now,
                    reviewed_by=None if needs_approval else POLICY_REVIEWER, reviewed_at=None if needs_approval else now,
                    attempts=0, store=self.code,
                ))
                ids[action.natural_key] = int(result.inserted_primary_key[0])
            rows = [dict(r, action_id=ids.get(r["oem_order_no"], r.get("action_id")), reconciled_at=now, store=self.code)
                    for r in sync_rows]
            for start in range(0, len(rows), 500):
                conn.execute(self._upsert(st, ["store", "oem_order_no"]), rows[start:start + 500])
        return ids

    def has_plan(self) -> bool:
        """Whether reconciliation has ever run on this store."""
        t = self.tables["order_sync"]
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.oem_order_no).where(self._mine(t)).limit(1)).first() is not None

    def sync_state(self) -> dict[str, dict[str, Any]]:
        """Each OEM order's last reconciliation (class, reason, changes, agreed base values)."""
        t = self.tables["order_sync"]
        with self.engine.connect() as conn:
            return {
                r["oem_order_no"]: {**r, "base": json.loads(r["base"]), "changes": json.loads(r["changes"])}
                for r in conn.execution_options(yield_per=1000).execute(select(t).where(self._mine(t))).mappings()
            }

    def claim(self, action_id: int, run_id: str, from_states: Sequence[str] = ("approved",), from_run: str | None = None) -> bool:
        """Take an action for ``run_id`` (compare-and-set): True when this run now owns it.

        From ``approved`` it moves to ``in_progress``; an ``in_progress``/``written`` action of a
        run that ended without finishing is taken over where it stands (``from_run`` names it).
        """
        t = self.tables["actions"]
        q = update(t).where(self._mine(t), t.c.id == action_id, t.c.state.in_(list(from_states)))
        if from_run is not None:
            q = q.where(t.c.run_id == from_run)
        values: dict[str, Any] = {"run_id": run_id, "updated_at": datetime.now(), "attempts": t.c.attempts + 1}
        if "approved" in from_states:
            values["state"] = case((t.c.state == "approved", "in_progress"), else_=t.c.state)
        with self.engine.begin() as conn:
            return conn.execute(q.values(**values)).rowcount == 1

    def abandoned_actions(self) -> list[Action]:
        """Actions left ``in_progress`` or ``written`` by runs that are no longer running."""
        t, r = self.tables["actions"], self.tables["runs"]
        running = select(r.c.run_id).where(r.c.status == "running")
        q = select(t).where(
            self._mine(t), t.c.state.in_(["in_progress", "written"]), (t.c.run_id.is_(None)) | (t.c.run_id.not_in(running))
        ).order_by(t.c.id)
        with self.engine.connect() as conn:
            return [self._action(row) for row in conn.execute(q).mappings()]

    def mark(self, action_id: int, run_id: str, **stamps: bool) -> None:
        """Note a step about to happen, before it happens: ``customer_submitted`` or
        ``submitted`` (a submit may have reached the DMS: from now on, search before any retry)."""
        t = self.tables["actions"]
        now = datetime.now()
        values: dict[str, Any] = {f"{k}_at": now for k, on in stamps.items() if on}
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action_id, t.c.run_id == run_id).values(updated_at=now, **values))

    def record_customer(self, action: Action, run_id: str, customer_no: str, created: bool, actor: str) -> None:
        """The contract's customer exists in the DMS now (created by this run, or found)."""
        t = self.tables["actions"]
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action.id, t.c.run_id == run_id).values(
                result_customer_no=customer_no, updated_at=datetime.now()))
            self._audit(conn, run_id, actor, action, "create_customer" if created else "found_customer", customer_no,
                        {}, action.customer.values if created else {}, "" if created else "DMS中已有该证件号码的客户，未重复新建")

    def record_written(
        self, action: Action, run_id: str, contract_no: str, actor: str, found: bool = False,
        old_values: dict[str, str] | None = None,
    ) -> None:
        """The DMS saved the contract (or it was found saved after a crash): state ``written``."""
        t = self.tables["actions"]
        now = datetime.now()
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action.id, t.c.run_id == run_id).values(
                state="written", contract_no=contract_no, written_at=now, updated_at=now))
            old = action.old_values if old_values is None else old_values
            self._audit(conn, run_id, actor, action, action.kind, contract_no, old,
                        {k: v for k, v in action.new_values.items() if old.get(k, "") != v},
                        "在DMS中找到已保存的记录（上次运行在记录前中断）" if found else "")

    def record_verified(self, action: Action, run_id: str, contract_no: str) -> None:
        """Read back equal to what was planned: state ``verified``; the values become the base
        both sides agree on."""
        t, st = self.tables["actions"], self.tables["order_sync"]
        now = datetime.now()
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action.id, t.c.run_id == run_id).values(
                state="verified", verified_at=now, updated_at=now, failure_code=None, failure_reason=None))
            row = conn.execute(select(st.c.base).where(self._mine(st), st.c.oem_order_no == action.natural_key)).first()
            # Both sides agree now: the DMS holds what was written, the OEM what was planned
            # from it (they differ where a reviewer edited the value).
            written = {f: {"oem": action.plan_values.get(f, v), "dms": v} for f, v in action.new_values.items()}
            base = {**(json.loads(row.base) if row else {}), **written}
            conn.execute(self._upsert(st, ["store", "oem_order_no"], keep=["klass", "reason", "changes", "action_id"]), [{
                "store": self.code, "oem_order_no": action.natural_key, "contract_no": contract_no, "klass": "in_sync", "reason": "",
                "changes": "[]", "base": dumps(base), "action_id": action.id, "reconciled_at": now,
            }])

    def record_failed(self, action: Action, run_id: str, code: str, reason: str, evidence_dir: str | None = None) -> None:
        """The DMS refused the record, or the read-back differs: state ``failed`` with the reason
        (a person decides in the next review workbook)."""
        t = self.tables["actions"]
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.id == action.id, t.c.run_id == run_id).values(
                state="failed", failure_code=code, failure_reason=reason, evidence_dir=evidence_dir,
                updated_at=datetime.now()))

    def review(self, decisions: Sequence[dict[str, Any]], actor: str) -> list[int]:
        """Apply reviewed workbook rows in one transaction, each only if the action is still as
        exported (same checksum, awaiting review). Returns the ids that did not match (nothing is
        applied then).

        Each decision: ``id``, ``checksum`` (as exported), ``decision`` (approve | skip), and for
        edited rows ``new_values``/``customer`` (the new content) and ``note``.
        """
        t = self.tables["actions"]
        now = datetime.now()
        stale: list[int] = []
        with self.engine.begin() as conn:
            for d in decisions:
                row = conn.execute(select(t).where(self._mine(t), t.c.id == d["id"])).mappings().first()
                if row is None or row["checksum"] != d["checksum"] or row["state"] not in ("planned", "failed"):
                    stale.append(d["id"])
            if stale:
                return stale
            for d in decisions:
                action = self._action(conn.execute(select(t).where(self._mine(t), t.c.id == d["id"])).mappings().one())
                values: dict[str, Any] = {"reviewed_by": actor, "reviewed_at": now, "updated_at": now,
                                          "review_note": d.get("note") or None}
                event = "skip"
                if d["decision"] == "approve":
                    event = "approve"
                    values.update(state="approved", failure_code=None, failure_reason=None)
                    if d.get("new_values") is not None:
                        event = "approve_edited"
                        customer = d.get("customer") or action.customer
                        values.update(
                            new_values=dumps(d["new_values"]), customer=dumps(customer.as_dict()),
                            note=d.get("plan_note", action.note),
                            checksum=PlannedAction(action.kind, action.natural_key, d["new_values"], action.old_values,
                                                   action.contract_no, customer).checksum(),
                        )
                else:
                    values["state"] = "skipped"
                conn.execute(update(t).where(self._mine(t), t.c.id == action.id).values(**values))
                before = {**action.new_values, **_customer_fields(action.customer)}
                after = {**(d.get("new_values") or {}), **_customer_fields(d.get("customer"))}
                self._audit(conn, None, actor, action, event, action.contract_no,
                            {k: v for k, v in before.items() if k in after and after[k] != v},
                            {k: v for k, v in after.items() if before.get(k) != v}, d.get("note") or "")
        return []

    def _audit(
        self, conn: Any, run_id: str | None, actor: str, action: Action, event: str, target: str,
        old: dict[str, Any], new: dict[str, Any], note: str = "",
    ) -> None:
        conn.execute(self.tables["audit"].insert().values(
            at=datetime.now(), run_id=run_id, actor=actor, action_id=action.id, event=event, target=target or "",
            natural_key=action.natural_key, old_values=dumps(old), new_values=dumps(new), note=note, store=self.code,
        ))

    def audit_write(self, run_id: str, actor: str, event: str, entity: str, key: str, values: dict[str, Any],
                    note: str = "") -> None:
        """Append the audit row of a write a bot made on a portal of its own (``event``:
        written, found, refused, unknown)."""
        with self.engine.begin() as conn:
            conn.execute(self.tables["audit"].insert().values(
                at=datetime.now(), run_id=run_id, actor=actor, action_id=None, event=event, target=entity,
                natural_key=key, old_values="{}", new_values=dumps(values), note=note, store=self.code,
            ))

    def audit_rows(self, limit: int = 50, natural_key: str | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
        """The audit trail, newest first."""
        t = self.tables["audit"]
        q = select(t).where(self._mine(t)).order_by(t.c.id.desc()).limit(limit)
        if natural_key:
            q = q.where((t.c.natural_key == natural_key) | (t.c.target == natural_key))
        if run_id:
            q = q.where(t.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [
                {**r, "old_values": json.loads(r["old_values"]), "new_values": json.loads(r["new_values"])}
                for r in conn.execute(q).mappings()
            ]


    # -- a dealership group ----------------------------------------------------------------
    def claim_fire(self, job: str, fire_at: str, scheduler: str) -> bool:
        """Claim the firing of timetable job ``job`` at ``fire_at`` for this store: True for
        exactly one of the schedulers that try (the key is unique; the others find it taken)."""
        t = self.tables["fires"]
        row = {"store": self.code, "job": job, "fire_at": fire_at, "scheduler": scheduler, "claimed_at": datetime.now()}
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                stmt = pg_insert(t).values(row).on_conflict_do_nothing()
            else:
                from sqlalchemy.dialects.sqlite import insert as lite_insert

                stmt = lite_insert(t).values(row).on_conflict_do_nothing()
            return conn.execute(stmt.returning(t.c.job)).first() is not None  # (rowcount is not reliable here)

    def note_fire_job(self, job: str, fire_at: str, engine_job: int) -> None:
        """The task engine's job id of a claimed firing."""
        t = self.tables["fires"]
        with self.engine.begin() as conn:
            conn.execute(update(t).where(self._mine(t), t.c.job == job, t.c.fire_at == fire_at).values(engine_job=engine_job))

    def fires(self, job: str | None = None) -> list[dict[str, Any]]:
        """This store's claimed firings, oldest first."""
        t = self.tables["fires"]
        q = select(t).where(self._mine(t)).order_by(t.c.fire_at)
        if job is not None:
            q = q.where(t.c.job == job)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def take_request_slot(self, account: str, interval: float) -> float:
        """Reserve the next request slot of a portal account shared by every process of the
        group (an even pace, one request per ``interval`` seconds, on the database's clock).
        Returns how many seconds to wait before sending. PostgreSQL only."""
        with self.engine.begin() as conn:
            return float(conn.execute(text(
                "INSERT INTO request_budget (account, next_at) "
                "VALUES (:a, extract(epoch from clock_timestamp()) + :i) "
                "ON CONFLICT (account) DO UPDATE SET next_at = "
                "greatest(request_budget.next_at, extract(epoch from clock_timestamp())) + :i "
                "RETURNING next_at - :i - extract(epoch from clock_timestamp())"
            ), {"a": account, "i": interval}).scalar_one())

    def stores_overview(self) -> list[dict[str, Any]]:
        """Every store that has runs: its last run, last successful sync, failures in the last
        24 hours and actions waiting for a person (a group's status board; all stores, not
        only this one)."""
        r, a = self.tables["runs"], self.tables["actions"]
        since = datetime.now() - timedelta(days=1)
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(select(
                r.c.store, func.max(r.c.started_at).label("last_run"),
                func.max(case((r.c.status == "succeeded", r.c.ended_at))).label("last_success"),
                func.sum(case(((r.c.status == "failed") & (r.c.started_at >= since), 1), else_=0)).label("failed_24h"),
                func.sum(case((r.c.status == "running", 1), else_=0)).label("running"),
            ).group_by(r.c.store)).mappings():
                out[row["store"]] = {**row, "failed_24h": int(row["failed_24h"] or 0), "running": int(row["running"] or 0),
                                     "awaiting_review": 0, "last_status": None, "last_error": None}
            for store, n in conn.execute(select(a.c.store, func.count()).where(a.c.state.in_(["planned", "failed"]))
                                         .group_by(a.c.store)):
                out.setdefault(store, {"store": store, "last_run": None, "last_success": None, "failed_24h": 0,
                                       "running": 0, "last_status": None, "last_error": None})["awaiting_review"] = int(n)
            newest = select(r.c.store, func.max(r.c.started_at).label("at")).group_by(r.c.store).subquery()
            for row in conn.execute(select(r.c.store, r.c.status, r.c.error).join(
                    newest, (newest.c.store == r.c.store) & (newest.c.at == r.c.started_at))).mappings():
                out[row["store"]].update(last_status=row["status"], last_error=row["error"])
        return [out[k] for k in sorted(out)]


def _customer_fields(plan: CustomerPlan | None) -> dict[str, str]:
    """A contract's customer as audit fields (its number, or the new customer's values)."""
    if plan is None:
        return {}
    return {"customer_no": plan.customer_no or ("新建" if plan.mode == "new" else ""), **plan.values}


def schema_version(engine: Engine) -> str | None:
    """The store's Alembic revision (None for an empty store or one made before migrations)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the store's schema to :data:`SCHEMA_HEAD` with the Alembic migrations.

    Cheap when the store is current (one query; Alembic is imported only to upgrade). Several
    processes opening one store at once take turns: a file lock beside a SQLite file, an
    advisory lock on PostgreSQL.

    Raises:
        ConfigError: the store was made by a newer dealerbot, or a migration failed.
    """
    current = schema_version(engine)
    if current == SCHEMA_HEAD:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    if current is not None and script.get_revision(current) is None:
        raise ConfigError(
            f"the store {engine.url.render_as_string(hide_password=True)} was made by a newer dealerbot "
            f"(schema {current}); upgrade dealerbot to use it"
        )
    with _migration_lock(engine):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, "head")
            except Exception as exc:  # noqa: BLE001 - name the store, keep the cause
                raise ConfigError(
                    f"could not upgrade the store {engine.url.render_as_string(hide_password=True)}: {exc}"
                ) from exc


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7301001)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7301001)"))
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        from filelock import FileLock

        with FileLock(f"{database}.migrate.lock", timeout=120):
            yield
        return
    yield


LEDGER_LOCK_POLL = 0.5  # seconds between two tries while another holds the ledger lock


def _until_held(lock: LedgerLock, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    """Try ``lock`` until it is held, yielding after each failed try (the caller waits, as its
    kind of caller may); ``on_wait`` hears who holds it, once."""
    waited = False
    while not lock.try_acquire():
        if not waited:
            waited = True
            _say_waiting(lock, on_wait)
        yield


def _say_waiting(lock: LedgerLock, on_wait: Callable[[str], None] | None) -> None:
    from loguru import logger

    who = lock.holder() or "another re-key or reconcile"
    logger.info("store {}: the ledger is busy: waiting for {} to finish", lock.code, who)
    if on_wait is not None:
        on_wait(who)


class LedgerLock:
    """The one lock that keeps planning and writing apart for one store: a re-key run holds it
    from before it lists its actions until it ends, a reconcile while it plans, so a plan never
    changes actions a running re-key has listed (issue 20: approvals undone while writing).

    SQLite: a file lock beside the database file (``<db>.ledger-<store>.lock``, with who holds
    it in ``.holder`` beside it), so every process and every dealerbot folder using that
    file shares it; the OS drops it when its process dies. PostgreSQL (a group, several
    machines): a session-level advisory lock keyed by the store code, on a connection kept for
    as long as it is held (the server drops it when that session ends); the holder is the
    session's ``application_name``. Other databases, and SQLite in memory: one process, no lock.

    Not reentrant: a holder that asks again waits for itself (:func:`dealerbot.running.sync.sync` takes
    it step by step, never nested). Use :meth:`Store.ledger_lock` / :meth:`Store.ledger_lock_async`.
    """

    def __init__(self, store: Store, holder: str) -> None:
        self.engine = store.engine
        self.code = store.code
        self.label = f"{holder} (pid {os.getpid()} on {socket.gethostname()})"
        self._file: Any = None
        self._conn: Any = None
        digest = hashlib.sha256(f"dealerbot-ledger:{store.code}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)
        database = self.engine.url.database
        self._path: Path | None = None
        if self.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            self._path = Path(f"{database}.ledger-{store.code}.lock")

    @property
    def _holder_file(self) -> Path | None:
        return self._path.with_suffix(".holder") if self._path is not None else None

    def try_acquire(self) -> bool:
        """Take the lock if it is free (never waits): True when this object holds it now."""
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            try:
                got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar())
                if got:
                    conn.execute(text("SELECT set_config('application_name', :n, false)"),
                                 {"n": f"dealerbot ledger {self.code}: {self.label}"[:63]})
                conn.commit()
            except BaseException:
                conn.invalidate()  # the session ends: whatever it held is released
                conn.close()
                raise
            if not got:
                conn.close()
                return False
            self._conn = conn
            return True
        if self._path is None:
            return True
        from filelock import FileLock, Timeout

        lock = FileLock(self._path, mode=0o600, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        self._file = lock
        assert self._holder_file is not None
        try:
            self._holder_file.write_text(self.label, encoding="utf-8")
            make_private(self._holder_file)
        except OSError:
            pass  # only the waiting message loses the holder's name
        return True

    def holder(self) -> str | None:
        """Who holds the lock now, as its holder said (best effort; None when unknown)."""
        if self.engine.dialect.name == "postgresql":
            hi, lo = (self._key >> 32) & 0xFFFFFFFF, self._key & 0xFFFFFFFF
            try:
                with self.engine.connect() as conn:
                    name = conn.execute(text(
                        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :hi AND l.objid = :lo "
                        "AND l.objsubid = 1 LIMIT 1"), {"hi": hi, "lo": lo}).scalar()
            except Exception:  # noqa: BLE001 - only the waiting message depends on it
                return None
            prefix = f"dealerbot ledger {self.code}: "
            return name[len(prefix):] if name and name.startswith(prefix) else None
        try:
            return (self._holder_file.read_text(encoding="utf-8").strip() or None) if self._holder_file else None
        except OSError:
            return None

    def release(self) -> None:
        """Let the lock go (what this object holds; nothing otherwise)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                conn.execute(text("RESET application_name"))
                conn.commit()
            except Exception:  # noqa: BLE001 - closing the session releases it anyway
                conn.invalidate()
            finally:
                conn.close()
        if self._file is not None:
            lock, self._file = self._file, None
            if self._holder_file is not None:
                self._holder_file.unlink(missing_ok=True)  # before the release: never the next holder's
            lock.release()


def _check_intact(engine: Engine, database: str) -> None:
    """Refuse a damaged SQLite store before anything reads or writes it (a few ms for a
    dealership's store: ``PRAGMA quick_check``).

    Raises:
        ConfigError: the file is not a database or is damaged (names it and what to do).
    """
    try:
        with engine.connect() as conn:
            result = conn.execute(text("PRAGMA quick_check(5)")).scalars().all()
    except Exception as exc:  # noqa: BLE001 - "file is not a database", "malformed"...
        result = [str(exc).splitlines()[0]]
    if result != ["ok"]:
        raise ConfigError(
            f"数据库文件已损坏，未读写任何内容：{database}（请从备份恢复，或改名后让 dealerbot 新建一个） "
            f"(the store is damaged: {'; '.join(result)[:300]})"
        )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class RecordWriter:
    """Buffers accepted records and rejects, flushing every ``batch_size`` in one transaction."""

    def __init__(self, store: Store, run_id: str, batch_size: int = 100, counts: dict[str, int] | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.batch_size = batch_size
        self.counts = counts  # the run's counts: saved with every batch, so a killed run shows them
        self._records: dict[str, list[dict[str, Any]]] = {}
        self._entities: dict[str, Entity] = {}
        self._rejects: list[dict[str, Any]] = []
        self._pending = 0

    def add(self, entity: Entity, values: dict[str, Any], issues: Sequence[dict[str, Any]]) -> None:
        """Queue an accepted record for upsert (by its key)."""
        row = {f: values.get(f) for f in entity.field_names}
        meta = {"issues": dumps(list(issues)), "first_run_id": self.run_id, "last_run_id": self.run_id,
                "scraped_at": datetime.now(), "store": self.store.code}
        if not builtin(entity):
            row = {"entity": entity.name, "record_key": str(row[entity.key]), "data": dumps(row), **meta}
        else:
            row.update(meta)
        self._entities[entity.name] = entity
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
            "created_at": datetime.now(), "store": self.store.code,
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
                entity = self._entities[name]
                table, keys = ((self.store.tables[name], ["store", entity.key]) if builtin(entity)
                               else (self.store.tables["records"], ["store", "entity", "record_key"]))
                # One key twice in a batch: the later version wins, as it would across batches.
                unique = list({r[keys[-1]]: r for r in rows}.values())
                conn.execute(self.store._upsert(table, keys, keep=["first_run_id"]), unique)
            if self._rejects:
                conn.execute(self.store.tables["rejects"].insert(), self._rejects)
            if self.counts is not None:
                stored = self.counts.get("stored", 0) + sum(len(rows) for rows in self._records.values())
                runs = self.store.tables["runs"]
                conn.execute(update(runs).where(runs.c.run_id == self.run_id)
                             .values(counts=dumps({**self.counts, "stored": stored})))
        if self.counts is not None:
            self.counts["stored"] = stored
        self._records = {}
        self._rejects = []
        self._pending = 0

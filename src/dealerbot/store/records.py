"""Scraped records and rejects, written in batches (:class:`RecordWriter`), and each bot's watermark."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func, select, update

from dealerbot.data.records import Entity
from dealerbot.store.base import StoreBase
from dealerbot.store.schema import builtin, dumps

if TYPE_CHECKING:
    from dealerbot.store.front import Store


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


class RecordsPart(StoreBase):
    """Scraped records and rejects, written in batches (:class:`RecordWriter`), and each bot's watermark."""

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

    def writer(self, run_id: str, batch_size: int = 100, counts: dict[str, int] | None = None) -> RecordWriter:
        """A buffered writer of records and rejects for one run (saving ``counts`` with each batch)."""
        return RecordWriter(cast("Store", self), run_id, batch_size, counts)  # a part is only used inside the Store front

    def iter_records(self, entity: Entity, run_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Stream an entity's records (those touched by ``run_id`` when given), by key."""
        if not builtin(entity):
            r = self.tables["records"]
            query = select(r).where(self._mine(r), r.c.entity == entity.name).order_by(r.c.record_key)
            if run_id:
                query = query.where(r.c.last_run_id == run_id)
            with self.engine.connect() as conn:
                for row in conn.execution_options(yield_per=500).execute(query).mappings():
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

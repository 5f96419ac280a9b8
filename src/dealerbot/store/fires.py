"""Timetable fires: each scheduled firing claimed once, whichever scheduler process sees it first."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from dealerbot.store.base import StoreBase

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as LiteInsert


class FiresPart(StoreBase):
    """Timetable fires: each scheduled firing claimed once, whichever scheduler process sees it first."""

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

    def claim_fire(self, job: str, fire_at: str, scheduler: str) -> bool:
        """Claim the firing of timetable job ``job`` at ``fire_at`` for this store: True for
        exactly one of the schedulers that try (the key is unique; the others find it taken)."""
        t = self.tables["fires"]
        row = {"store": self.code, "job": job, "fire_at": fire_at, "scheduler": scheduler, "claimed_at": datetime.now()}
        with self.engine.begin() as conn:
            stmt: LiteInsert | PgInsert
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

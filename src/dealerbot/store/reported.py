"""Reported rejects: a rejected record a message has named is not named again until its reject
changes (another code, field or reason) or the record was accepted in between."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from dealerbot.data.records import ENTITIES
from dealerbot.store.base import StoreBase


class ReportedRejectsPart(StoreBase):
    """Which rejects (per bot, record type and record key) a message has already named."""

    def reject_fingerprint(self, reject: dict[str, Any]) -> str:
        """A keyed digest of a reject's code, field and reason (the reason may quote a personal
        value: only its digest is kept). Equal for the same reject of the same record."""
        text = "\x1f".join(str(reject.get(k) or "") for k in ("entity", "code", "field", "reason"))
        return hmac.new(self.store_id().encode(), text.encode(), hashlib.sha256).hexdigest()[:32]

    def _reported_key(self, reject: dict[str, Any], fingerprint: str) -> str:
        # A reject without a record key cannot be followed across runs: its digest stands for it.
        return str(reject.get("record_key") or "") or f"~{fingerprint}"

    def unreported_rejects(self, bot: str, run_id: str) -> list[dict[str, Any]]:
        """The rejects of ``bot``'s run ``run_id`` that no message has named yet, or named with
        another reason (each with its ``fingerprint``), one per record, in the run's order.

        A record that ``run_id`` accepted is forgotten first: rejected again later, it is news.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store cannot be read or written.
        """
        t = self.tables["reported_rejects"]
        self._forget_accepted(bot, run_id)
        with self.engine.connect() as conn:
            known = {(r.entity, r.record_key): r.fingerprint
                     for r in conn.execute(select(t.c.entity, t.c.record_key, t.c.fingerprint)
                                           .where(self._mine(t), t.c.bot == bot))}
        fresh: dict[tuple[str, str], dict[str, Any]] = {}
        for reject in self._run_rejects(run_id):
            fingerprint = self.reject_fingerprint(reject)
            key = (reject["entity"], self._reported_key(reject, fingerprint))
            if known.get(key) != fingerprint:
                fresh[key] = {**reject, "fingerprint": fingerprint}
        return list(fresh.values())

    def mark_rejects_reported(self, bot: str, run_id: str, rejects: Sequence[dict[str, Any]]) -> None:
        """Remember that a message named ``rejects`` (as :meth:`unreported_rejects` gave them).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store cannot be written.
        """
        if not rejects:
            return
        t = self.tables["reported_rejects"]
        now = datetime.now()
        rows = {(r["entity"], self._reported_key(r, r["fingerprint"])): {
            "store": self.code, "bot": bot, "entity": r["entity"], "record_key": self._reported_key(r, r["fingerprint"]),
            "fingerprint": r["fingerprint"], "run_id": run_id, "reported_at": now,
        } for r in rejects}
        with self.engine.begin() as conn:
            conn.execute(self._upsert(t, ["store", "bot", "entity", "record_key"]), list(rows.values()))

    def _run_rejects(self, run_id: str) -> Iterable[dict[str, Any]]:
        r = self.tables["rejects"]
        with self.engine.connect() as conn:
            yield from (dict(row) for row in conn.execute(
                select(r).where(self._mine(r), r.c.run_id == run_id).order_by(r.c.id)).mappings())

    def _forget_accepted(self, bot: str, run_id: str) -> None:
        t = self.tables["reported_rejects"]
        with self.engine.begin() as conn:
            names = conn.execute(select(t.c.entity).where(self._mine(t), t.c.bot == bot).distinct()).scalars().all()
            for name in names:
                entity = ENTITIES.get(name)
                if entity is not None:
                    table = self.tables[name]
                    accepted = select(table.c[entity.key]).where(self._mine(table), table.c.last_run_id == run_id)
                else:
                    records = self.tables["records"]
                    accepted = select(records.c.record_key).where(
                        self._mine(records), records.c.entity == name, records.c.last_run_id == run_id)
                conn.execute(delete(t).where(self._mine(t), t.c.bot == bot, t.c.entity == name,
                                             t.c.record_key.in_(accepted)))

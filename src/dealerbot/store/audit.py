"""The append-only audit trail: every write and review decision (triggers refuse updates and deletes)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from dealerbot.rekey.ledger import ROLLBACK_EVENTS, ROLLBACK_PLANNED, Action
from dealerbot.store.base import StoreBase
from dealerbot.store.schema import dumps


class AuditPart(StoreBase):
    """The append-only audit trail: every write and review decision (triggers refuse updates and deletes)."""

    def _audit(
        self, conn: Connection, run_id: str | None, actor: str, action: Action, event: str, target: str,
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

    def action_flows(self, ids: set[int]) -> dict[int, str]:
        """The flow of each ledger action in ``ids``."""
        if not ids:
            return {}
        a = self.tables["actions"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(a.c.id, a.c.flow).where(self._mine(a), a.c.id.in_(sorted(ids)))).all()
        return {int(i): str(f) for i, f in rows}

    def audit_event(self, actor: str, event: str, target: str, key: str, values: dict[str, Any], note: str = "",
                    conn: Connection | None = None) -> None:
        """Append the audit row of something a person did outside the ledger (a portal password
        set, a timetable job paused or resumed): ``values`` never holds a secret. Inside
        ``conn``'s transaction when given (the change and its row go together)."""
        row = {"at": datetime.now(), "run_id": None, "actor": actor[:64], "action_id": None, "event": event,
               "target": target[:64], "natural_key": key[:64], "old_values": "{}", "new_values": dumps(values),
               "note": note, "store": self.code}
        if conn is not None:
            conn.execute(self.tables["audit"].insert().values(row))
            return
        with self.engine.begin() as own:
            own.execute(self.tables["audit"].insert().values(row))

    def audit_rows(self, limit: int = 50, natural_key: str | None = None, run_id: str | None = None,
                   flow: str | None = None) -> list[dict[str, Any]]:
        """The audit trail, newest first (``flow``: only rows of that flow's ledger actions)."""
        t = self.tables["audit"]
        q = select(t).where(self._mine(t)).order_by(t.c.id.desc()).limit(limit)
        if flow is not None:
            a = self.tables["actions"]
            q = q.where(t.c.action_id.in_(select(a.c.id).where(self._mine(a), a.c.flow == flow)))
        if natural_key:
            q = q.where((t.c.natural_key == natural_key) | (t.c.target == natural_key))
        if run_id:
            q = q.where(t.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [
                {**r, "old_values": json.loads(r["old_values"]), "new_values": json.loads(r["new_values"])}
                for r in conn.execute(q).mappings()
            ]

    def run_audit(self, run_id: str, events: tuple[str, ...]) -> list[dict[str, Any]]:
        """The audit rows of ``run_id`` with one of ``events``, oldest first (values parsed)."""
        t = self.tables["audit"]
        q = select(t).where(self._mine(t), t.c.run_id == run_id, t.c.event.in_(list(events))).order_by(t.c.id)
        with self.engine.connect() as conn:
            return [{**r, "old_values": json.loads(r["old_values"]), "new_values": json.loads(r["new_values"])}
                    for r in conn.execute(q).mappings()]

    def rollback_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The audit rows of a rollback planned for ``run_id`` (none: never rolled back)."""
        return self.run_audit(run_id, ROLLBACK_EVENTS)

    def reverse_actions(self) -> dict[int, str]:
        """Every reverse action (a rollback's), by its id: the run it rolls back."""
        t = self.tables["audit"]
        q = select(t.c.action_id, t.c.run_id).where(self._mine(t), t.c.event == ROLLBACK_PLANNED, t.c.action_id.is_not(None))
        with self.engine.connect() as conn:
            return {int(a): str(r) for a, r in conn.execute(q).all()}

    def _reverses(self, conn: Connection, action: Action) -> str | None:
        """The run ``action`` rolls back (inside ``conn``'s transaction), or None: not a reverse action."""
        t = self.tables["audit"]
        q = select(t.c.run_id).where(self._mine(t), t.c.natural_key == action.natural_key, t.c.event == ROLLBACK_PLANNED,
                                     t.c.action_id == action.id)
        found = conn.execute(q).first()
        return None if found is None else str(found.run_id)

"""Paused timetable jobs: a pause a person made (console, CLI) kept until resumed, so it survives
a restart of the scheduler; each pause and resume is in the audit trail (who, when)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from dealerbot.store.audit import AuditPart


class PausesPart(AuditPart):
    """Paused timetable jobs: kept until resumed; each pause and resume audited."""

    def job_pauses(self) -> dict[str, dict[str, Any]]:
        """This store's paused jobs: name -> ``{"paused_by", "paused_at"}``."""
        t = self.tables["job_pauses"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(self._mine(t))).mappings().all()
        return {r["job"]: {"paused_by": r["paused_by"], "paused_at": r["paused_at"]} for r in rows}

    def pause_job(self, job: str, actor: str) -> bool:
        """Pause timetable job ``job`` until :meth:`resume_job` (``actor``: who, for the audit
        trail). False when it was paused already (nothing written)."""
        t = self.tables["job_pauses"]
        with self.engine.begin() as conn:
            if conn.execute(select(t.c.job).where(self._mine(t), t.c.job == job)).first() is not None:
                return False
            conn.execute(t.insert().values(store=self.code, job=job, paused_by=actor[:64], paused_at=datetime.now()))
            self.audit_event(actor, "job_paused", "schedule", job, {"job": job}, conn=conn)
        return True

    def resume_job(self, job: str, actor: str) -> bool:
        """Resume a paused job; False when it was not paused (nothing written)."""
        t = self.tables["job_pauses"]
        with self.engine.begin() as conn:
            if not conn.execute(t.delete().where(self._mine(t), t.c.job == job)).rowcount:
                return False
            self.audit_event(actor, "job_resumed", "schedule", job, {"job": job}, conn=conn)
        return True

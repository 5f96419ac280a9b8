"""Runs: started, finished, skipped, abandoned, taken over by a group's worker; read back for the CLI and console."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update

from dealerbot.store.base import StoreBase
from dealerbot.store.schema import RUN_STATUSES, dumps


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
    error_class: str | None = None  # the failure's class in dealerbot.errors ("LoginRejected")


class RunsPart(StoreBase):
    """Runs: started, finished, skipped, abandoned, taken over by a group's worker; read back for the CLI and console."""

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
                        error="运行它的程序意外结束（被关闭或断电），未能完成；重新运行会继续其余的 "
                              "(the process running it ended without finishing: killed or powered off)",
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
                    error="运行它的工作进程失去响应（被关闭或机器断电），已由另一个工作进程接手 "
                          "(the worker running it stopped answering: killed or its machine went off; another worker "
                          "takes the job over)"))
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
        error_class: str | None = None,
    ) -> None:
        """Record a run's outcome (``resume_after``: a postponed run's earliest new start;
        ``error_class``: the failure's class name in :mod:`dealerbot.errors`).

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
                    notes=dumps(list(notes)), error_class=error_class,
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
            notes=json.loads(row["notes"] or "[]"), job=row["job"], error_class=row["error_class"],
        )

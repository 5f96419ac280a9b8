"""The ledger lock: planning (reconcile) and writing (re-key) of one store never interleave."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from dealerbot.private_files import make_private

if TYPE_CHECKING:
    from dealerbot.store.front import Store

LEDGER_LOCK_POLL = 0.5  # seconds between two tries while another holds the ledger lock


def until_held(lock: LedgerLock, on_wait: Callable[[str], None] | None) -> Iterator[None]:
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

"""The :class:`Store` callers use: one class made of the per-concern parts in this package."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url

from dealerbot.config import DEFAULT_STORE, STORE_CODE
from dealerbot.errors import ConfigError
from dealerbot.private_files import make_private, private_dir
from dealerbot.store.fires import FiresPart
from dealerbot.store.group import GroupPart
from dealerbot.store.ledger import LedgerPart
from dealerbot.store.ledger_lock import LEDGER_LOCK_POLL, LedgerLock, until_held
from dealerbot.store.logins import LoginRefusalsPart
from dealerbot.store.migrate import check_intact, migrate, sqlite_pragmas
from dealerbot.store.pauses import PausesPart
from dealerbot.store.records import RecordsPart
from dealerbot.store.reported import ReportedRejectsPart
from dealerbot.store.runs import RunsPart


class Store(RunsPart, RecordsPart, LoginRefusalsPart, LedgerPart, FiresPart, GroupPart, PausesPart, ReportedRejectsPart):
    """The run store of one dealership store (``code``): every row it reads or writes is that
    store's, so the stores of a group share one database without ever seeing each other's data.
    Create with :meth:`open`; close with :meth:`close` (or ``with``). Made of one part per
    concern (runs, records, refused logins, the ledger and its audit, timetable fires, a
    group's shared parts, paused jobs, the rejects messages have named); this class opens the database and
    holds the ledger lock."""

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
                event.listen(engine, "connect", sqlite_pragmas)
            if parsed.get_backend_name() == "sqlite":
                check_intact(engine, parsed.database or ":memory:")
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
        for _ in until_held(lock, on_wait):
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
        for _ in until_held(lock, on_wait):
            await asyncio.sleep(LEDGER_LOCK_POLL)
        try:
            yield
        finally:
            lock.release()


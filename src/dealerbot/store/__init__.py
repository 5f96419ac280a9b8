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

The package, one module per concern behind one front, :class:`~dealerbot.store.front.Store`:
``runs`` (runs), ``records`` (records, rejects, watermarks), ``logins`` (refused passwords),
``ledger`` (the re-key ledger's actions), ``audit`` (the audit trail), ``fires`` (timetable
fires), ``pauses`` (paused timetable jobs), ``group`` (a group's request budget and overview), ``reported`` (the rejects a
message has named); ``base`` (the engine and tables they share), ``schema`` (the tables),
``migrate`` (opening: migrations, checks), ``ledger_lock``.
"""

from dealerbot.store.front import Store
from dealerbot.store.ledger_lock import LedgerLock
from dealerbot.store.migrate import MIGRATIONS, SCHEMA_HEAD, migrate, schema_version
from dealerbot.store.records import RecordWriter
from dealerbot.store.runs import RunRecord
from dealerbot.store.schema import RUN_STATUSES, build_metadata, builtin, dumps

__all__ = [
    "MIGRATIONS", "RUN_STATUSES", "SCHEMA_HEAD", "LedgerLock", "RecordWriter", "RunRecord", "Store", "build_metadata",
    "builtin", "dumps", "migrate", "schema_version",
]

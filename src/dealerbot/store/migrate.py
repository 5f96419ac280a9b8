"""Opening a database: its schema brought up to date by the Alembic migrations, SQLite's checks and pragmas."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text

from dealerbot.errors import ConfigError

SCHEMA_HEAD = "0013"  # the newest migration in dealerbot/migrations/versions (a test checks)
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


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


def check_intact(engine: Engine, database: str) -> None:
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


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()

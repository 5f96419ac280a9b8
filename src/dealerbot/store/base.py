"""What every part of the store stands on: the engine, this dealership store's code, the tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

from sqlalchemy import Engine, Table, select

from dealerbot.config import DEFAULT_STORE
from dealerbot.errors import ConfigError
from dealerbot.store.schema import build_metadata

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as LiteInsert
    from sqlalchemy.sql.elements import ColumnElement


class StoreBase:
    """What every part of the store stands on: the engine, this dealership store's code, the tables."""

    def __init__(self, engine: Engine, code: str = DEFAULT_STORE) -> None:
        self.engine = engine
        self.code = code
        self.meta, self.tables = build_metadata()

    def _mine(self, table: Table) -> ColumnElement[bool]:
        """The condition "this row is this store's"."""
        return table.c.store == self.code

    def for_code(self, code: str) -> Self:
        """The same database as store ``code`` sees it (sharing this one's connections: close
        only this one)."""
        return type(self)(self.engine, code)

    def _upsert(self, table: Table, keys: list[str], keep: Sequence[str] = ()) -> LiteInsert | PgInsert:
        dialect = self.engine.dialect.name
        stmt: LiteInsert | PgInsert
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as lite_insert

            stmt = lite_insert(table)
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table)
        else:  # pragma: no cover - other backends are not supported yet
            raise ConfigError(f"store backend {dialect!r} is not supported (use sqlite or postgresql)")
        cols = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys and c.name not in keep}
        return stmt.on_conflict_do_update(index_elements=keys, set_=cols)

    def store_id(self) -> str:
        """A random id made when the store was created (review workbooks carry it)."""
        t = self.tables["meta"]
        with self.engine.connect() as conn:
            return str(conn.execute(select(t.c.value).where(t.c.key == "store_id")).scalar() or "")

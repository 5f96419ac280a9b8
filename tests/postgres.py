"""The PostgreSQL store in tests: a real server named by DEALERBOT_TEST_POSTGRES_URL (.ci/run
starts one); the tests that need it are skipped, saying so, when it is not set."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

PG_ENV = "DEALERBOT_TEST_POSTGRES_URL"


def empty_postgres() -> str:
    """The URL of the test database, emptied of everything a store made (tables, functions)."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (CI does)")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url

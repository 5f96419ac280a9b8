"""The PostgreSQL store in tests: a real server named by DEALERBOT_TEST_POSTGRES_URL (``./run.sh
test`` starts a throwaway local one). Without it the tests that need it fail, naming what is
missing: the group's guarantees are never skipped silently. ``DEALERBOT_TEST_POSTGRES=off`` skips
them on purpose (a machine that cannot run PostgreSQL), and says so."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

PG_ENV = "DEALERBOT_TEST_POSTGRES_URL"


def empty_postgres() -> str:
    """The URL of the test database, emptied of everything a store made (tables, functions)."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("DEALERBOT_TEST_POSTGRES") == "off":
            pytest.skip("DEALERBOT_TEST_POSTGRES=off: the dealership-group guarantees are NOT tested")
        pytest.fail(f"no PostgreSQL server for the group tests: run them through ./run.sh test (it starts one), "
                    f"set {PG_ENV} to an empty test database, or DEALERBOT_TEST_POSTGRES=off to skip them", pytrace=False)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url

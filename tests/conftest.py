"""Shared by every test folder: tests that must never run at the same time as another of their
kind when ``./run.sh test`` runs two pytest-xdist workers.

Each such test holds an exclusive file lock of its kind, shared by the workers of one run, for
its whole duration (a test of the other worker waiting for it): the PostgreSQL tests (they share
one test database, emptied by each test) and the tests that measure a pace, a backoff or a
firing time (``@pytest.mark.one_at_a_time("timing")``). A lock rather than xdist's
``--dist loadgroup``: with pytest 9.2 that groups nothing, silently (pytest-xdist issue 1386).
Without xdist (one process) no lock is taken.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest

POSTGRES = "postgres"


def _kinds(item: pytest.Item) -> list[str]:
    kinds = sorted({str(m.args[0]) for m in item.iter_markers("one_at_a_time")})
    callspec = getattr(item, "callspec", None)
    if ("pg" in getattr(item, "fixturenames", ()) or "postgres" in item.name
            or (callspec is not None and "postgresql" in callspec.params.values())):
        kinds.append(POSTGRES)
    return sorted(set(kinds))


@pytest.fixture(autouse=True)
def _one_at_a_time(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hold the locks of the test's kinds (see the module docstring) while it runs."""
    kinds = _kinds(request.node)
    if not kinds or not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    run_dir = tmp_path_factory.getbasetemp().parent  # the run's folder, shared by its workers
    files = []
    try:
        for kind in kinds:  # always in the same (sorted) order: no deadlock
            f = (run_dir / f"one-at-a-time-{kind}.lock").open("a")
            files.append(f)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield
    finally:
        for f in reversed(files):
            f.close()  # closing releases the lock

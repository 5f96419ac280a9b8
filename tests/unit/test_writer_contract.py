"""The writer contract (tests/writer_contract.py) against the in-memory fake DMS writer, driven
by the real re-key engine on a real SQLite store: every exactly-once rule, every kill point, in
milliseconds. The same cases run against the web and desktop writers in
tests/integration/test_writer_contract.py (the pairs no other integration test proves)."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from writer_contract import CASES, PROVEN, FakeHarness

from dealerbot.store import Store

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new store's file, made once (its migrations are most of a case's time), copied per case."""
    path = tmp_path_factory.mktemp("contract") / "store.sqlite"
    Store.open(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> Iterator[Store]:
    shutil.copy(empty_store, tmp_path / "store.sqlite")
    s = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield s
    s.close()


@pytest.mark.parametrize("case", list(CASES))
async def test_the_writer_contract_holds_for_the_fake_dms(case: str, store: Store) -> None:
    await CASES[case](FakeHarness(store))


def test_every_real_writer_pair_the_contract_leaves_to_another_test_names_one_that_exists() -> None:
    """PROVEN names the integration test that proves a (case, writer) pair instead of the
    contract suite: each must be a test function of that file, and each case one of CASES."""
    for (case, writer), where in PROVEN.items():
        assert case in CASES and writer in ("web", "desktop"), (case, writer)
        file, _, name = where.partition("::")
        tree = ast.parse((INTEGRATION / file).read_text(encoding="utf-8"))
        tests = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert name in tests, f"{where} (named for {case} on the {writer} writer) is not a test of {file}"


def test_every_case_is_proven_run_or_explained_for_each_real_writer() -> None:
    """The contract's matrix is complete: each (case, web|desktop) pair is proven by a named
    integration test, run by the contract's integration file, or left to the fake with a reason."""
    from writer_contract import FAKE_ONLY, RUN_REAL

    for case in CASES:
        for writer in ("web", "desktop"):
            homes = [(case, writer) in PROVEN, (case, writer) in RUN_REAL, (case, writer) in FAKE_ONLY]
            assert homes.count(True) == 1, (case, writer, homes)

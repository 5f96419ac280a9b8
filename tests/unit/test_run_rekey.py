"""A re-key bot's run as one call (:func:`dealerbot.api.run_rekey`): the engine lists the
approved actions, opens the bot's writers only when there is something to write, and writes
through them with the run's settings. The real engine on a real SQLite store and the in-memory
fake DMS (tests/writer_contract.py); the shipped bots on the sandbox DMS and the desktop client
are tests/integration/test_rekey.py and test_desktop.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from loguru import logger
from writer_contract import FakeDms, FakeHarness, assert_written_once

from dealerbot.api import run_rekey
from dealerbot.config import load_settings
from dealerbot.errors import ConfigError
from dealerbot.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield s
    s.close()


def _ctx(tmp_path: Path, store: Store, ledger_writer: bool = True) -> Any:
    """What run_rekey uses of a BotContext, the settings read from a real dealerbot.toml."""
    cfg = tmp_path / "dealerbot.toml"
    cfg.write_text("[run]\nretries = 1\nbackoff_seconds = 0.0\n", encoding="utf-8")
    personal: list[Any] = []
    return SimpleNamespace(
        bot=SimpleNamespace(name="my-rekey", ledger_writer=ledger_writer), store=store, run_id="run-1",
        settings=load_settings(cfg), options={}, counts={}, personal_values=personal,
        log=logger.bind(test="run_rekey"), progress=lambda: None, check_stop=lambda: None,
        personal=lambda *values: personal.extend(values),
    )


def _capture(lines: list[str]) -> int:
    return logger.add(lambda m: lines.append(m.record["message"]), level="INFO",
                      filter=lambda r: r["extra"].get("test") == "run_rekey")


async def test_the_writers_open_only_with_something_to_write_and_every_action_is_written_once(tmp_path, store):
    dms = FakeDms()
    opened: list[int] = []

    @asynccontextmanager
    async def writers(actions: int) -> AsyncIterator[list[FakeDms]]:
        opened.append(actions)
        yield [dms, dms]

    lines: list[str] = []
    sink = _capture(lines)
    try:
        ctx = _ctx(tmp_path, store)
        await run_rekey(ctx, writers)
        assert opened == [] and "nothing approved to write (see `dealerbot reconcile` and the review workbook)" in lines
        store.start_run("run-1", "my-rekey", "manual")
        harness = FakeHarness(store, dms)
        actions = await harness.approve(new=2, existing=1)
        await run_rekey(ctx, writers)
    finally:
        logger.remove(sink)
    assert opened == [3]
    assert_written_once(harness, actions)
    assert ctx.counts["actions"] == 3
    # the names and addresses typed are marked personal (masked in every artifact of the run)
    assert actions[0].customer.values["name"] in ctx.personal_values


async def test_a_bot_that_does_not_declare_ledger_writer_is_refused_before_anything_opens(tmp_path, store):
    opened: list[int] = []

    @asynccontextmanager
    async def writers(actions: int) -> AsyncIterator[list[FakeDms]]:
        opened.append(actions)
        yield []

    with pytest.raises(ConfigError, match="ledger_writer = True"):
        await run_rekey(_ctx(tmp_path, store, ledger_writer=False), writers)
    assert opened == []


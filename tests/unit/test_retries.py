"""The one retry helper (:mod:`dealerbot.retries`): how many tries, which failures, what is
counted, how long each wait; and its callers' own waits and words (a re-key's write, a
browser's start)."""

from __future__ import annotations

import asyncio
import itertools
import time
from types import SimpleNamespace

import pytest
from loguru import logger
from writer_contract import FakeDms, FakeHarness

from dealerbot.config import BrowserSettings
from dealerbot.errors import BrowserNotFound, PageChanged, PortalUnavailable, RateLimited
from dealerbot.rekey.ledger import Policy
from dealerbot.rekey.writer import Rekeyer, Submitted, pending_actions, write_actions
from dealerbot.retries import with_retries, with_retries_sync
from dealerbot.store import Store
from dealerbot.web.browser import _launch
from portals.dms_desktop import FILL_ATTEMPTS, DesktopDms


def _failing(times: int, exc: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "ok"

    return calls, fn


def test_a_read_that_works_at_once_is_called_once_and_counts_no_retry():
    calls, fn = _failing(0, PortalUnavailable("down"))
    retried: list[Exception] = []
    assert asyncio.run(with_retries("GET /x", fn, 3, 0.0, retried.append)) == "ok"
    assert len(calls) == 1 and retried == []


def test_failures_are_retried_until_it_works_each_counted_once():
    calls, fn = _failing(2, RateLimited("429"))
    retried: list[Exception] = []
    assert asyncio.run(with_retries("GET /x", fn, 3, 0.0, retried.append)) == "ok"
    assert len(calls) == 3 and len(retried) == 2


def test_the_last_failure_is_raised_after_the_retries_and_a_page_change_at_once():
    calls, fn = _failing(99, PortalUnavailable("down"))
    retried: list[Exception] = []
    with pytest.raises(PortalUnavailable):
        asyncio.run(with_retries("GET /x", fn, 2, 0.0, retried.append))
    assert len(calls) == 3 and len(retried) == 2
    calls, fn = _failing(99, PageChanged("moved"))
    with pytest.raises(PageChanged):
        asyncio.run(with_retries("GET /x", fn, 5, 0.0))
    assert len(calls) == 1
    calls, fn = _failing(99, PortalUnavailable("down"))
    with pytest.raises(PortalUnavailable):
        asyncio.run(with_retries("GET /x", fn, 0, 0.0))
    assert len(calls) == 1


# -- the helper's waits, with a fake sleep that records them ------------------------------------


class _Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_each_retry_waits_twice_as_long_as_the_one_before_without_jitter_when_asked():
    calls, fn = _failing(3, PortalUnavailable("down"))
    sleeps = _Sleeps()
    assert asyncio.run(with_retries("GET /x", fn, 3, 0.5, jitter=False, sleep=sleeps)) == "ok"
    assert len(calls) == 4 and sleeps == [0.5, 1.0, 2.0]


def test_by_default_a_wait_has_up_to_a_quarter_of_jitter_is_at_most_30s_and_five_times_after_a_rate_limit():
    for exc, base in ((PortalUnavailable("down"), [10.0, 20.0, 30.0, 30.0]), (RateLimited("429"), [50.0, 100.0, 150.0, 150.0])):
        _, fn = _failing(4, exc)
        sleeps = _Sleeps()
        assert asyncio.run(with_retries("GET /x", fn, 4, 10.0, sleep=sleeps)) == "ok"
        assert len(sleeps) == 4
        for waited, least in zip(sleeps, base, strict=True):
            assert least <= waited <= least * 1.25, (sleeps, base)
    _, fn = _failing(3, RateLimited("429"))
    sleeps = _Sleeps()
    asyncio.run(with_retries("GET /x", fn, 3, 10.0, jitter=False, max_backoff=None, rate_limit_factor=1.0, sleep=sleeps))
    assert sleeps == [10.0, 20.0, 40.0]  # no limit, no longer pause after a rate limit: as asked


def test_no_wait_follows_the_last_failure_and_the_default_warning_names_the_step():
    _, fn = _failing(99, PortalUnavailable("down"))
    sleeps = _Sleeps()
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    try:
        with pytest.raises(PortalUnavailable):
            asyncio.run(with_retries("GET /x", fn, 2, 1.0, jitter=False, sleep=sleeps))
    finally:
        logger.remove(sink)
    assert sleeps == [1.0, 2.0]
    assert lines == ["GET /x failed: down; retry 1/2 in 1.0s", "GET /x failed: down; retry 2/2 in 2.0s"]


def test_a_caller_says_what_is_retried_and_how_a_retry_is_announced():
    class Died(Exception):
        pass

    calls, fn = _failing(2, Died("Target closed"))
    sleeps = _Sleeps()
    announced: list[tuple[str, int, float]] = []
    counted: list[Exception] = []
    result = asyncio.run(with_retries(
        "start", fn, 2, 0.5, counted.append, retry_if=lambda e: "closed" in str(e), jitter=False,
        announce=lambda e, n, s: announced.append((str(e), n, s)), sleep=sleeps,
    ))
    assert result == "ok" and len(calls) == 3 and sleeps == [0.5, 1.0]
    assert announced == [("Target closed", 1, 0.5), ("Target closed", 2, 1.0)]
    assert counted == []  # on_retry counts system failures only
    # what retry_if refuses is raised at once; a cancellation is never retried
    for exc in (Died("no such file"), asyncio.CancelledError("closed")):
        calls, fn = _failing(99, exc)
        with pytest.raises(type(exc)):
            asyncio.run(with_retries("start", fn, 2, 0.0, retry_if=lambda e: "closed" in str(e), sleep=sleeps))
        assert len(calls) == 1


# -- the blocking twin (the desktop client's typing): the same tries, waits and words -------------


def _failing_sync(times: int, exc: BaseException) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "ok"

    return calls, fn


def test_a_blocking_step_is_retried_like_an_async_one_and_blocks_while_it_waits():
    calls, fn = _failing_sync(0, PortalUnavailable("down"))
    retried: list[Exception] = []
    assert with_retries_sync("type", fn, 3, 0.0, retried.append) == "ok"
    assert len(calls) == 1 and retried == []
    calls, fn = _failing_sync(2, RateLimited("429"))
    assert with_retries_sync("type", fn, 3, 0.0, retried.append) == "ok"
    assert len(calls) == 3 and len(retried) == 2
    calls, fn = _failing_sync(99, PortalUnavailable("down"))
    with pytest.raises(PortalUnavailable):
        with_retries_sync("type", fn, 2, 0.0)
    assert len(calls) == 3
    for attempts, exc in ((5, PageChanged("moved")), (0, PortalUnavailable("down")), (5, KeyboardInterrupt())):
        calls, fn = _failing_sync(99, exc)
        with pytest.raises(type(exc)):
            with_retries_sync("type", fn, attempts, 0.0)
        assert len(calls) == 1  # a page change, no retries asked, an interrupt: raised at once
    # the waits, double each time and after a rate limit five times longer, block the thread
    sleeps: list[float] = []
    _, fn = _failing_sync(3, PortalUnavailable("down"))
    assert with_retries_sync("type", fn, 3, 0.5, jitter=False, sleep=sleeps.append) == "ok"
    assert sleeps == [0.5, 1.0, 2.0]
    sleeps.clear()
    _, fn = _failing_sync(2, RateLimited("429"))
    with_retries_sync("type", fn, 2, 10.0, sleep=sleeps.append)
    assert 50.0 <= sleeps[0] <= 62.5 and 100.0 <= sleeps[1] <= 125.0, sleeps
    _, fn = _failing_sync(1, PortalUnavailable("down"))
    started = time.monotonic()
    assert with_retries_sync("type", fn, 1, 0.2, jitter=False) == "ok"
    assert time.monotonic() - started >= 0.2  # time.sleep by default


def test_a_blocking_step_says_in_its_own_words_what_is_retried():
    class Interrupted(Exception):
        pass

    calls, fn = _failing_sync(99, Interrupted("form"))
    announced: list[tuple[int, float]] = []
    with pytest.raises(Interrupted):
        with_retries_sync("typing", fn, 4, 0.0, retry_if=lambda e: isinstance(e, Interrupted), jitter=False,
                          announce=lambda _e, n, s: announced.append((n, s)), sleep=lambda _s: None)
    assert len(calls) == 5 and announced == [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0)]
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    try:
        _, fn = _failing_sync(99, PortalUnavailable("down"))
        with pytest.raises(PortalUnavailable):
            with_retries_sync("typing", fn, 2, 1.0, jitter=False, sleep=lambda _s: None)
    finally:
        logger.remove(sink)
    assert lines == ["typing failed: down; retry 1/2 in 1.0s", "typing failed: down; retry 2/2 in 2.0s"]


# -- its callers keep their own waits and words ----------------------------------------------------


class _FlakyDms(FakeDms):
    """The fake DMS whose contract submit fails (no answer, nothing stored) ``fail`` times."""

    fail: int = 0

    async def create_contract(self, customer_no: str | None, values: dict[str, str], dry_run: bool) -> Submitted:
        if self.fail:
            self.fail -= 1
            self.submits[values["oem_order_no"]] += 1
            raise PortalUnavailable("DMS 500")
        return await super().create_contract(customer_no, values, dry_run)


@pytest.mark.parametrize(("fail", "written"), [(2, True), (3, False)], ids=["third-attempt", "left"])
async def test_a_rekey_write_is_tried_again_after_backoff_then_2x_backoff_without_jitter(tmp_path, fail, written):
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        dms = _FlakyDms()
        dms.fail = fail
        harness = FakeHarness(store, dms)
        [action] = await harness.approve(existing=1)
        lines: list[str] = []
        sink = logger.add(lambda m: lines.append(f"{m.record['level'].name} {m.record['message']}"), level="WARNING")
        run_id = "retry-run"
        store.start_run(run_id, "dms-rekey", "manual")
        counts: dict[str, int] = {}
        started = time.monotonic()
        try:
            await write_actions(store, Rekeyer(store, run_id, "dms-rekey", counts, logger), [dms],
                                pending_actions(store, Policy().enabled), 2, 0.2, logger)
        finally:
            logger.remove(sink)
        took = time.monotonic() - started
    finally:
        store.close()
    key = action.natural_key
    assert lines[:2] == [f"WARNING {key}: DMS 500; trying again in 0.2s (searching the DMS first)",
                         f"WARNING {key}: DMS 500; trying again in 0.4s (searching the DMS first)"]
    assert took >= 0.6  # 0.2 s, then 0.4 s
    assert dms.submits[key] == 3
    if written:
        assert len(lines) == 2 and len(harness.contracts(key)) == 1 and counts.get("unfinished", 0) == 0
    else:
        assert lines[2:] == [f"ERROR {key}: left for the next run after 3 attempts: DMS 500"]
        assert harness.contracts(key) == [] and counts["unfinished"] == 1


class _FakeChromium:
    """Playwright's ``chromium`` whose launches die as they start ``dies`` times."""

    executable_path = "/nonexistent/chromium"

    def __init__(self, dies: int, message: str) -> None:
        self.dies, self.message, self.launched = dies, message, []

    async def launch(self, **_: object) -> object:
        self.launched.append(time.monotonic())
        if len(self.launched) <= self.dies:
            raise Exception(self.message + "\nBrowser logs: ...")  # noqa: TRY002 - as Playwright's Error reads

        class _Started:
            version = "1.0"

            def on(self, *_: object) -> None:
                pass

        return _Started()


@pytest.mark.parametrize(("dies", "message", "starts"), [
    (2, "Target page, context or browser has been closed", 3),
    (3, "Browser has crashed", 3),
    (1, "Executable doesn't exist", 1),
], ids=["third-start", "all-died", "not-a-crash"])
async def test_a_browser_that_dies_as_it_starts_is_started_again_after_half_a_second_then_one(
    monkeypatch, dies, message, starts,
):
    monkeypatch.delenv("DEALERBOT_BROWSER", raising=False)
    chromium = _FakeChromium(dies, message)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    try:
        if dies < starts:
            browser = await _launch(SimpleNamespace(chromium=chromium), BrowserSettings(channel="chrome"), False)  # type: ignore[arg-type]
            assert browser.browser.version == "1.0"
        else:
            with pytest.raises(BrowserNotFound, match=f"could not start .*: {message}$"):
                await _launch(SimpleNamespace(chromium=chromium), BrowserSettings(channel="chrome"), False)  # type: ignore[arg-type]
    finally:
        logger.remove(sink)
    assert len(chromium.launched) == starts
    assert lines == [f"the browser ended as it started ({message}); starting it again"] * (starts - 1)
    gaps = [b - a for a, b in itertools.pairwise(chromium.launched)]
    for gap, least in zip(gaps, [0.5, 1.0], strict=False):
        assert least <= gap < least + 0.5, gaps


class _TypingDriver:
    """The desktop driver as the DMS client's form-typing sees it: the main window alone, each
    form typed through (True) or interrupted (False) as scripted, the steps it logs."""

    def __init__(self, typed: list[bool], opens: bool = True) -> None:
        self.typed, self.opens, self.fills, self.keys_pressed, self.steps = typed, opens, 0, [], []
        self.windows = SimpleNamespace(list=lambda: ["DMS客户端"])

    def wait(self, name: str, gone: bool = False) -> None:
        if not self.opens:
            raise PortalUnavailable(f"dms_desktop: window {name} did not open")

    def fill(self, window: str, form: str, values: dict[str, str]) -> bool:
        self.fills += 1
        return self.typed.pop(0) if self.typed else True

    def keys(self, window: str, *names: str) -> None:
        self.keys_pressed.append((window, *names))

    def step(self, text: str) -> None:
        self.steps.append(text)


def test_an_interrupted_desktop_form_is_typed_again_at_once_then_given_up_after_five_attempts():
    """The desktop writer's retype (on :func:`with_retries_sync`): opened and typed again from the
    start without a pause, each interruption in the step log; five are PortalUnavailable;
    a window that does not open is not typed again."""
    def write(driver: _TypingDriver) -> str:
        dms = DesktopDms(driver, lambda _name: None)  # type: ignore[arg-type]
        return dms._write(lambda: driver.keys("main", "new_contract"), "contract_new", "contract", {"vin": "X"},
                          True, confirm=True).result

    driver = _TypingDriver([False, False, True])
    started = time.monotonic()
    assert write(driver) == "rehearsed" and driver.fills == 3
    assert time.monotonic() - started < 0.5
    assert driver.keys_pressed == [("main", "new_contract")] * 3 + [("contract_new", "close")]
    assert driver.steps == [f"contract: interrupted while typing (attempt {n}): closed and typed again from the start"
                            for n in (1, 2)]
    driver = _TypingDriver([False] * 99)
    with pytest.raises(PortalUnavailable, match=f"^dms_desktop: the contract form was interrupted {FILL_ATTEMPTS} times "
                                                "while typing$"):
        write(driver)
    assert FILL_ATTEMPTS == 5 and driver.fills == 5
    assert driver.steps[3:] == ["contract: interrupted while typing (attempt 4): closed and typed again from the start",
                                "contract: interrupted while typing (attempt 5): given up"]
    driver = _TypingDriver([False] * 99, opens=False)
    with pytest.raises(PortalUnavailable, match="did not open"):
        write(driver)
    assert driver.fills == 0 and driver.keys_pressed == [("main", "new_contract")] and driver.steps == []

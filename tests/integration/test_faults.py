"""Runs that survive faults: a read that failed is tried again later in the run, a portal that
is down stops the run quickly (circuit breaker), and a maintenance notice postpones the run."""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from dealerbot.config import load_settings
from dealerbot.data.records import OEM_ORDER
from dealerbot.running.runner import run_bot
from dealerbot.sandbox.config import SandboxConfig
from dealerbot.sandbox.server import SandboxServer
from dealerbot.store import Store

from .conftest import PASSWORDS, ROOT, Admin
from .test_cli import _config, dealerbot


def _walk_order(admin: Admin) -> list[str]:
    """Order numbers in the order the bot lists them (oldest change first)."""
    return [o["order_no"] for o in sorted(admin.orders(), key=lambda o: (o["updated_at"], o["order_no"]))]


def _plant(admin: Admin, path: str, count: int) -> None:
    admin.oem.post("/__admin/fail-next", json={"path": path, "mode": "500", "count": count}).raise_for_status()


async def test_a_detail_read_that_keeps_failing_is_read_again_later_and_the_run_succeeds(settings, clean_sandbox):
    """Before: the one order whose page failed 4 times in a row (every retry) failed the run."""
    unlucky = _walk_order(clean_sandbox)[20]
    _plant(clean_sandbox, f"/orders/{unlucky}", settings.run.retries + 1)
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS, full=True)
    assert result.ok, result.error
    assert clean_sandbox.counters()["errors_injected"] == settings.run.retries + 1
    with Store.open(settings.store_url) as store:
        assert store.get(OEM_ORDER, unlucky) is not None
        assert store.count(OEM_ORDER) + len(list(store.iter_rejects(result.run_id))) == len(clean_sandbox.orders())
    log = (result.run_dir / "run.log").read_text(encoding="utf-8")
    assert "reading 1 failed record(s) again (round 1/2)" in log


async def test_a_portal_that_keeps_failing_trips_the_circuit_breaker_instead_of_retrying_every_read(settings, clean_sandbox):
    """Twelve orders in a row whose pages always fail: the run stops after
    max_consecutive_failures failures, not after 12 x 4 attempts x 3 rounds."""
    walk = _walk_order(clean_sandbox)
    for order_no in walk[30:42]:
        _plant(clean_sandbox, f"/orders/{order_no}", 1000)
    settings.run.concurrency = 1  # the failures come strictly one after another
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS, full=True)
    assert result.status == "failed" and result.error_kind == "system"
    assert "连续 10 次出错" in result.error and "10 system failures in a row" in result.error
    assert clean_sandbox.counters()["errors_injected"] == settings.run.max_consecutive_failures
    assert "已保存" in result.error  # what it read before stopping is kept


def _window_around_now() -> tuple[str, str]:
    now = datetime.now()
    start, end = now - timedelta(minutes=5), now + timedelta(minutes=30)
    return f"{start:%H:%M}-{end:%H:%M}", f"{end:%H:%M}"


async def test_a_maintenance_notice_postpones_the_run_until_the_window_ends_without_retrying(settings, clean_sandbox):
    window, end = _window_around_now()
    clean_sandbox.behave(maintenance_window=window)
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert result.status == "postponed" and result.error_kind == "postponed"
    assert "维护" in result.error and f"推迟到 {end}" in result.error
    assert clean_sandbox.counters()["maintenance_hits"] == 1  # recognised at once, not retried
    assert result.resume_after is not None and f"{result.resume_after:%H:%M}" == end
    assert timedelta(0) < result.resume_after - datetime.now() <= timedelta(minutes=31)
    with Store.open(settings.store_url) as store:
        run = store.run(result.run_id)
    assert run.status == "postponed" and run.resume_after == result.resume_after
    assert f"维护时间 {window}" in run.error  # the portal's own notice is kept


def test_a_postponed_run_exits_75_and_says_when_to_run_again(tmp_path, sandbox, clean_sandbox):
    window, end = _window_around_now()
    _config(tmp_path, sandbox)
    clean_sandbox.behave("dms", maintenance_window=window)
    out = dealerbot(["run", "dms-contracts"], tmp_path, DEALERBOT_DMS_PASSWORD=PASSWORDS["dms"])
    assert out.returncode == 75, out.stdout + out.stderr
    assert "已推迟 (postponed)" in out.stdout and f"{end} 后再运行" in out.stdout
    history = dealerbot(["runs"], tmp_path)
    assert "已推迟" in history.stdout and "可在" in history.stdout


async def test_the_saved_login_is_noted_once_when_the_password_changed_never_on_every_run(settings, clean_sandbox):
    """Issue 22: the note that a run used the saved login repeated on every run, a second
    after logging in. It is said where it matters: the password changed since the saved login
    was made (the new one is not tried until that login expires), and only once."""
    first = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert first.ok and first.notes == []
    second = await run_bot("oem-customers", settings, passwords=PASSWORDS)  # on the saved login
    assert second.ok and second.notes == [], second.notes
    changed = {**PASSWORDS, "oem": PASSWORDS["oem"] + "-new"}  # the saved login still holds
    third = await run_bot("oem-customers", settings, passwords=changed)
    assert third.ok and any("密码已更换" in n and "保存的登录" in n for n in third.notes), third.notes
    assert not [n for n in third.notes if re.search(r"[A-Za-z]{3,}", n)], third.notes  # for the operator: no English
    with Store.open(settings.store_url) as store:
        assert store.run(third.run_id).notes == third.notes
    fourth = await run_bot("oem-customers", settings, passwords=changed)
    assert fourth.ok and fourth.notes == [], fourth.notes  # said once


# -- many runs through random server errors --------------------------------------------------

FAULT_ORDERS = 1000


@pytest.fixture(scope="module")
def big_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=FAULT_ORDERS, seed=23)) as sb:
        yield sb


@pytest.mark.parametrize("fault_seed", [1, 2])
async def test_a_thousand_orders_through_ten_percent_server_errors_complete_in_one_run(
    big_sandbox, fault_seed, tmp_path, monkeypatch,
):
    """The issue's target: at 10% random 500s, 1,000 orders complete in one run (at least 99
    times in 100; `./run.sh soak` runs more seeds). Before, about one run in ten failed."""
    admin = Admin(big_sandbox)
    admin.reset()
    admin.behave(error_rate=0.1, fault_seed=fault_seed)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "selectors", tmp_path / "selectors")
    settings = load_settings(None, oem__url=big_sandbox.oem_url, dms__url=big_sandbox.dms_url,
                             run__backoff_seconds=0.02, run__timeout_seconds=15)
    try:
        result = await run_bot("oem-orders", settings, passwords=PASSWORDS, full=True)
        assert result.ok, result.error
        assert admin.counters()["errors_injected"] >= 50
        with Store.open(settings.store_url) as store:
            assert store.count(OEM_ORDER) + len(list(store.iter_rejects(result.run_id))) == FAULT_ORDERS
    finally:
        admin.reset()


async def test_a_failing_bulk_read_is_rendered_into_a_screenshot_of_its_own(settings, clean_sandbox):
    """Before, the only screenshot showed the healthy orders page the browser had open."""
    clean_sandbox.oem.post("/__admin/fail-next", json={"path": "/api/orders", "mode": "500", "count": 100}).raise_for_status()
    settings.run.max_consecutive_failures = 5  # list reads retry until the breaker opens: keep it short
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS, full=True)
    assert result.status == "failed" and "连续" in result.error
    names = [p.name for p in result.evidence]
    shots = [p for p in result.evidence if p.name.endswith("-response.png")]
    assert shots and shots[0].stat().st_size > 2000, names
    answer = next(p for p in result.evidence if p.name.endswith("-response.html")).read_text(encoding="utf-8")
    assert "HTTP 500" in answer and "server_error" in answer


async def test_a_portal_that_cannot_be_reached_leaves_no_blank_screenshot(settings, clean_sandbox):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = settings.model_copy(update={"dms": settings.dms.model_copy(update={"url": closed})})
    result = await run_bot("dms-contracts", unreachable, passwords=PASSWORDS)
    assert result.status == "failed" and "cannot reach" in result.error and closed in result.error
    assert not [p for p in result.evidence if p.name.endswith("-screenshot.png")]
    log = (result.run_dir / "run.log").read_text(encoding="utf-8")
    assert "no screen to capture" in log

"""Soak: a large portal that misbehaves the whole time (`./run.sh soak`, not in the default run)."""

from __future__ import annotations

import httpx
import pytest

from dealerbot.config import load_settings
from dealerbot.records import OEM_ORDER
from dealerbot.runner import run_bot
from dealerbot.sandbox.config import SandboxConfig
from dealerbot.sandbox.server import SandboxServer
from dealerbot.store import Store

pytestmark = pytest.mark.slow

async def test_ten_thousand_orders_through_errors_slowness_expiry_and_fresh_browser_contexts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=10_000, seed=3, error_rate=0.03, slow_rate=0.02, slow_ms=800)
    with SandboxServer(cfg) as sb:
        admin = httpx.Client(base_url=sb.oem_url, headers={"X-Admin-Token": sb.admin_token}, timeout=30)
        truth = admin.get("/__admin/orders").json()
        settings = load_settings(None, oem__url=sb.oem_url, run__retries=8, run__backoff_seconds=0.1,
                                 browser__recycle_requests=2000)
        expiries = []

        def expire_every_3000(counts: dict[str, int]) -> None:
            if counts["read"] // 3000 > len(expiries):
                expiries.append(admin.post("/__admin/expire-sessions").json())

        result = await run_bot("oem-orders", settings, passwords={"oem": "Oem@2026!"}, on_progress=expire_every_3000)
        assert result.ok, result.error
        assert result.counts["read"] == len(truth) == 10_000
        assert result.counts["relogins"] == len(expiries) == 3
        assert result.counts["retries"] > 0
        # Five fresh browser contexts along the way, among the errors and expiries: the login
        # moved with them (one login, then one per expiry), and nothing was read twice.
        assert result.counts["recycles"] >= 5
        assert admin.get("/__admin/counters").json()["logins"] == 1 + len(expiries)
        with Store.open(settings.store_url) as store:
            assert store.count(OEM_ORDER) + result.counts["rejected"] == len(truth)
        # An incremental run right after reads only the overlap.
        again = await run_bot("oem-orders", settings, passwords={"oem": "Oem@2026!"})
        assert again.ok and again.counts["read"] <= 2
        admin.close()


async def test_a_portal_rate_limit_pauses_the_run_instead_of_locking_the_account(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=40, seed=5, rate_limit_per_minute=30)
    with SandboxServer(cfg) as sb:
        admin = httpx.Client(base_url=sb.oem_url, headers={"X-Admin-Token": sb.admin_token}, timeout=30)
        settings = load_settings(None, oem__url=sb.oem_url, run__rate_limit_pause_seconds=61, run__backoff_seconds=0.5)
        result = await run_bot("oem-orders", settings, passwords={"oem": "Oem@2026!"})
        counters = admin.get("/__admin/counters").json()
        admin.close()
    assert result.ok, result.error
    assert result.counts["read"] == 40
    assert counters["rate_limited"] >= 1  # it did hit the limit ...
    assert counters["rate_limited"] < 30  # ... and stopped at once, never reaching the lockout


@pytest.mark.timeout(1500)  # 100 runs of about 6 s
async def test_a_thousand_orders_at_ten_percent_server_errors_complete_99_runs_in_100(tmp_path, monkeypatch):
    """The target of the hardening issue, literally: 100 seeded runs, default retry settings."""
    monkeypatch.chdir(tmp_path)
    with SandboxServer(SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=1000, seed=29, error_rate=0.1)) as sb:
        admin = httpx.Client(base_url=sb.oem_url, headers={"X-Admin-Token": sb.admin_token}, timeout=30)
        settings = load_settings(None, oem__url=sb.oem_url, run__backoff_seconds=0.02)
        failed = []
        for seed in range(100):
            admin.put("/__admin/behaviours", json={"fault_seed": seed}).raise_for_status()
            result = await run_bot("oem-orders", settings, passwords={"oem": "Oem@2026!"}, full=True)
            if not result.ok or result.counts["read"] != 1000:
                failed.append((seed, result.error, result.counts["read"]))
        injected = admin.get("/__admin/counters").json()["errors_injected"]
        admin.close()
    assert len(failed) <= 1, failed
    assert injected > 100 * 1000 * 0.08  # the faults really happened


async def test_a_throttle_set_to_the_portals_exact_limit_never_draws_a_429(tmp_path, monkeypatch):
    """Every request counts: navigations, the page's own script calls, the bot's reads. Before,
    only the bot's reads were counted and the portal answered 429 at its exact limit."""
    monkeypatch.chdir(tmp_path)
    cfg = SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=60, seed=5, rate_limit_per_minute=40)
    with SandboxServer(cfg) as sb:
        admin = httpx.Client(base_url=sb.oem_url, headers={"X-Admin-Token": sb.admin_token}, timeout=30)
        settings = load_settings(None, oem__url=sb.oem_url, run__requests_per_minute=40)
        result = await run_bot("oem-orders", settings, passwords={"oem": "Oem@2026!"})
        counters = admin.get("/__admin/counters").json()
        admin.close()
    assert result.ok, result.error
    assert result.counts["read"] == 60
    assert counters["requests"] > 60  # more than a minute's worth went through the limit ...
    assert counters["rate_limited"] == 0  # ... without a single 429

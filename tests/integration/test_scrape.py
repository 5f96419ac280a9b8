"""The scraping bots against the sandbox, checked against its ground truth."""

from __future__ import annotations

import asyncio
import os
import stat
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from dealerbot.data.records import DMS_CONTRACT, DMS_CUSTOMER, OEM_CUSTOMER, OEM_ORDER
from dealerbot.data.validate import normalize_mobile, normalize_vin
from dealerbot.running.runner import run_bot

from .conftest import PASSWORDS


def _stored_keys(store, entity) -> set[str]:
    return {r[entity.key] for r in store.iter_records(entity)}


def _rejected_keys(store, run_id, entity) -> set[str]:
    return {r["record_key"] for r in store.iter_rejects(run_id, entity)}


async def test_full_scrape_of_orders_equals_the_portal(settings, store, clean_sandbox):
    truth = {o["order_no"]: o for o in clean_sandbox.orders()}
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    stored = _stored_keys(store, OEM_ORDER)
    rejected = _rejected_keys(store, result.run_id, OEM_ORDER)
    # Every order in the portal is either stored or rejected with a reason; none twice.
    assert stored | rejected == set(truth)
    assert not stored & rejected
    assert result.counts["read"] == len(truth)
    assert result.counts["rejected"] == len(rejected) > 0  # the generator plants bad VINs/IDs
    # Values are the portal's, normalised.
    for order_no in sorted(stored)[:40]:
        row, src = store.get(OEM_ORDER, order_no), truth[order_no]
        assert row["status"] == src["status"]
        assert row["price"] == Decimal(str(src["price"])).quantize(Decimal("0.01"))
        assert row["vin"] == normalize_vin(src["vin"]).value
        assert row["mobile"] == normalize_mobile(src["mobile"]).value
        assert row["updated_at"] == datetime.fromisoformat(src["updated_at"].replace(" ", "T"))
    # A rejected VIN is really wrong.
    for rej in store.iter_rejects(result.run_id, OEM_ORDER):
        assert rej["reason"]
        assert rej["code"] in {"vin_check_digit", "vin_length", "vin_chars", "id_check_code", "id_length", "id_birthdate", "required", "bad_value"}


async def test_rerun_adds_no_duplicates_and_incremental_reads_only_changes(settings, store, clean_sandbox):
    first = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert first.ok, first.error
    stored_before = store.count(OEM_ORDER)
    rejects_before = len(_rejected_keys(store, first.run_id, OEM_ORDER))

    # Nothing changed: the incremental run reads only the overlap at the watermark.
    again = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert again.ok, again.error
    assert again.counts["read"] <= 2
    assert store.count(OEM_ORDER) == stored_before

    # Change three orders and add one in the portal.
    truth = clean_sandbox.orders()
    good = [o for o in truth if o["order_no"] in _stored_keys(store, OEM_ORDER)][:3]
    for o in good:
        r = clean_sandbox.oem.patch(f"/__admin/orders/{o['order_no']}", json={"status": "已取消"})
        r.raise_for_status()
    new = clean_sandbox.oem.post("/__admin/orders", json={
        "customer_name": "测试 客户", "mobile": "+86 139-0000-1234", "id_type": "身份证",
        "id_number": "11010519491231002X", "model_code": good[0]["model_code"], "color": "白色",
        "vin": "", "price": 199800, "status": "已下单", "planned_delivery_date": "2026-12-20",
    })
    new.raise_for_status()
    new_no = new.json()["order_no"]

    inc = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert inc.ok, inc.error
    watermark = max(datetime.fromisoformat(o["updated_at"].replace(" ", "T")) for o in truth)
    changed = {o["order_no"] for o in clean_sandbox.orders()
               if datetime.fromisoformat(o["updated_at"].replace(" ", "T")) > watermark - timedelta(seconds=1)}
    assert {o["order_no"] for o in good} | {new_no} <= changed
    assert inc.counts["read"] == len(changed)
    for o in good:
        assert store.get(OEM_ORDER, o["order_no"])["status"] == "已取消"
    added = store.get(OEM_ORDER, new_no)
    assert added["mobile"] == "13900001234" and added["customer_name"] == "测试客户"
    assert store.count(OEM_ORDER) == stored_before + 1
    assert len(_rejected_keys(store, first.run_id, OEM_ORDER)) == rejects_before

    # --full reads everything again and still stores each order once.
    full = await run_bot("oem-orders", settings, passwords=PASSWORDS, full=True)
    assert full.ok and full.counts["read"] == len(truth) + 1
    assert store.count(OEM_ORDER) == stored_before + 1


async def test_customers_and_dms_records_equal_ground_truth(settings, store, clean_sandbox):
    cases = [
        ("oem-customers", OEM_CUSTOMER, clean_sandbox.rows("oem", "customers")),
        ("dms-customers", DMS_CUSTOMER, clean_sandbox.rows("dms", "customers")),
        ("dms-contracts", DMS_CONTRACT, clean_sandbox.rows("dms", "contracts")),
    ]
    for bot, entity, truth in cases:
        result = await run_bot(bot, settings, passwords=PASSWORDS)
        assert result.ok, (bot, result.error)
        keys = {t[entity.key] for t in truth}
        stored = _stored_keys(store, entity)
        assert stored | _rejected_keys(store, result.run_id, entity) == keys, bot
        assert result.counts["read"] == len(truth), bot
    consent = {t["customer_no"]: t["consent"] for t in cases[0][2]}
    for row in store.iter_records(OEM_CUSTOMER):
        assert row["consent"] is (consent[row["customer_no"]] in (True, 1, "已授权")), row["customer_no"]
    # The generator plants the same person twice: flagged as a duplicate, kept.
    flagged = [r for r in store.iter_records(OEM_CUSTOMER) if '"duplicate"' in r["issues"]]
    assert flagged


async def test_saved_login_is_reused_and_private(settings, clean_sandbox):
    first = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert first.ok, first.error
    logins = clean_sandbox.counters()["logins"]
    state = settings.path("state") / "oem-dealer_admin.json"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    second = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert second.ok, second.error
    assert clean_sandbox.counters()["logins"] == logins  # no new login: the saved one worked


async def test_session_expiring_mid_run_logs_in_again_once(settings, store, clean_sandbox):
    truth = clean_sandbox.orders()
    expired = []

    def expire_midway(counts: dict[str, int]) -> None:
        if counts["read"] >= 40 and not expired:
            expired.append(clean_sandbox.oem.post("/__admin/expire-sessions").json())

    result = await run_bot("oem-orders", settings, passwords=PASSWORDS, on_progress=expire_midway)
    assert expired, "the test did not get to expire the session"
    assert result.ok, result.error
    assert result.counts["relogins"] == 1
    # The ended session's answer (a new, anonymous session cookie) did not pass for a login the
    # browser renewed: the read logged in again at once, without a failed retry.
    assert result.counts.get("retries", 0) == 0
    assert result.counts["read"] == len(truth)
    assert store.count(OEM_ORDER) + result.counts["rejected"] == len(truth)


async def test_portal_errors_are_retried_and_nothing_is_lost(settings, store, clean_sandbox):
    truth = clean_sandbox.orders()
    # One answer in ten is an HTTP 500 (pages, the JSON endpoint, the login POST, the notice).
    clean_sandbox.behave("oem", error_rate=0.1)
    result = await run_bot("oem-orders", settings.model_copy(update={"run": settings.run.model_copy(update={"retries": 8})}), passwords=PASSWORDS)
    assert result.ok, result.error
    assert result.counts["retries"] > 0
    assert clean_sandbox.counters()["errors_injected"] > 0
    assert store.count(OEM_ORDER) + result.counts["rejected"] == len(truth)


async def test_a_failing_detail_read_fails_the_run_promptly_as_a_system_error(settings, clean_sandbox):
    def break_portal(counts: dict[str, int]) -> None:
        if counts["read"] >= 30:
            clean_sandbox.behave("oem", error_rate=1.0)

    no_retries = settings.model_copy(update={"run": settings.run.model_copy(update={"retries": 0})})
    result = await asyncio.wait_for(run_bot("oem-orders", no_retries, passwords=PASSWORDS, on_progress=break_portal), 90)
    assert result.status == "failed" and result.error_kind == "system", result.error
    assert "500" in result.error
    assert any(p.name.endswith("-response.html") for p in result.evidence)  # the portal's error page


async def test_orders_changed_while_the_run_reads_them_are_not_lost(settings, store, clean_sandbox):
    truth = sorted(clean_sandbox.orders(), key=lambda o: o["updated_at"])
    early, late = truth[0]["order_no"], truth[len(truth) // 2]["order_no"]
    changed = []

    def change_midway(counts: dict[str, int]) -> None:
        if counts["read"] >= 20 and not changed:
            for no in (early, late):  # one already read, one probably queued but not read
                clean_sandbox.oem.patch(f"/__admin/orders/{no}", json={"status": "已取消"}).raise_for_status()
            changed.append(True)

    first = await run_bot("oem-orders", settings, passwords=PASSWORDS, on_progress=change_midway)
    assert first.ok and changed
    again = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert again.ok
    for no in (early, late):
        row = store.get(OEM_ORDER, no)
        if row is not None:  # (a rejected order has no row; its reject is re-recorded)
            assert row["status"] == "已取消", no


async def test_full_and_repeated_scrape_into_postgresql(settings, clean_sandbox):
    from postgres import empty_postgres

    from dealerbot.store import Store

    pg = empty_postgres()
    on_pg = settings.model_copy(update={"store": settings.store.model_copy(update={"url": pg})})
    truth = clean_sandbox.orders()
    first = await run_bot("oem-orders", on_pg, passwords=PASSWORDS)
    again = await run_bot("oem-orders", on_pg, passwords=PASSWORDS, full=True)
    assert first.ok and again.ok, (first.error, again.error)
    with Store.open(pg) as store:
        assert store.engine.dialect.name == "postgresql"
        assert store.count(OEM_ORDER) + first.counts["rejected"] == len(truth)
        from dealerbot.running.registry import get_bot
        from dealerbot.running.runner import watermark_key

        assert store.watermark(watermark_key(on_pg, get_bot("oem-orders")))


async def test_a_listed_key_that_is_a_path_is_rejected_not_followed(settings, store, clean_sandbox):
    """An order numbered ../logout once made the bot GET /logout (and lose its session)."""
    for bad in ("../logout", "XS 2026/1"):
        clean_sandbox.oem.post("/__admin/orders", json={
            "order_no": bad, "customer_name": "测试", "model_code": "GX3-15T-STD", "status": "已下单",
        }).raise_for_status()
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    assert result.counts["relogins"] == 0  # never logged out by a scraped key
    rejects = {r["record_key"]: r for r in store.iter_rejects(result.run_id, OEM_ORDER)}
    assert rejects["../logout"]["code"] == "bad_key" and "订单号格式不正确" in rejects["../logout"]["reason"]
    assert rejects["XS 2026/1"]["code"] == "bad_key"
    assert store.count(OEM_ORDER) + result.counts["rejected"] == len(clean_sandbox.orders())


async def test_the_watermark_belongs_to_the_portal_account_not_only_the_bot(settings, store, clean_sandbox):
    """Pointed at another portal, an incremental run once read nothing and succeeded."""
    first = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert first.ok and first.counts["read"] == len(clean_sandbox.orders())
    same = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert same.counts["read"] <= 2  # incremental: nothing changed
    other_url = settings.oem.url.replace("127.0.0.1", "localhost")  # as if another portal
    other = settings.model_copy(update={"oem": settings.oem.model_copy(update={"url": other_url})})
    elsewhere = await run_bot("oem-orders", other, passwords=PASSWORDS)
    assert elsewhere.ok and elsewhere.counts["read"] == len(clean_sandbox.orders())  # from the beginning


async def test_a_long_run_goes_on_in_fresh_browser_contexts_losing_and_repeating_nothing(settings, store, clean_sandbox):
    truth = {o["order_no"] for o in clean_sandbox.orders()}
    settings.browser.recycle_requests = 25  # about 160 requests: six fresh contexts
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    assert result.counts["recycles"] >= 5
    stored, rejected = _stored_keys(store, OEM_ORDER), _rejected_keys(store, result.run_id, OEM_ORDER)
    assert stored | rejected == truth and not stored & rejected
    assert result.counts["read"] == len(truth)  # none read twice
    assert clean_sandbox.counters()["logins"] == 1  # the login moved to every fresh context

    # The portal ends the session mid-run: the next read logs in again once, and the renewals
    # go on with the new login.
    expired = []

    def expire_midway(counts: dict[str, int]) -> None:
        if counts["read"] >= 60 and not expired:
            expired.append(clean_sandbox.oem.post("/__admin/expire-sessions").json())

    settings.browser.recycle_requests = 40
    again = await run_bot("oem-orders", settings, full=True, passwords=PASSWORDS, on_progress=expire_midway)
    assert expired and again.ok, again.error
    assert again.counts["read"] == len(truth) and again.counts["recycles"] >= 3
    assert again.counts["relogins"] == 1 and clean_sandbox.counters()["logins"] == 2


async def test_a_run_over_its_memory_limit_goes_on_in_a_fresh_browser_context(settings, store, clean_sandbox, monkeypatch):
    import dealerbot.web.portal

    monkeypatch.setattr(dealerbot.web.portal, "MEMORY_CHECK_SECONDS", 0.0)
    settings.browser.recycle_requests = 0
    settings.browser.recycle_memory_mb = 1  # always over: renewed at every read
    result = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    assert result.counts["recycles"] >= result.counts["pages"] - 1
    assert store.count(OEM_CUSTOMER) + result.counts["rejected"] == len(clean_sandbox.rows("oem", "customers"))


RENEWAL_PROBE = """
import asyncio

from dealerbot.api import Bot, BotContext


class RenewalProbe(Bot):
    name = "oem-renewal-probe"
    portal = "oem"
    description = "reads through the session, waits, then opens a screen in the browser"

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("oem") as s:
            for n in range(1, 9):
                await s.fetch_json("orders_api", {"page": n, "page_size": 5})
            await asyncio.sleep(1.5)  # past the grace of every session id the reads saw renewed
            await s.step("open the orders list", lambda: s.goto("landing"))
            ctx.note("screen=" + s.page.url)
"""


@pytest.mark.parametrize("reads", ["http", "browser"])
async def test_a_session_cookie_renewed_on_a_read_reaches_the_browser(settings, clean_sandbox, reads):
    """A portal that renews its session id answers a read with a new cookie: the browser gets it
    too, so its next screen is still logged in (no second login), whichever way reads are sent."""
    clean_sandbox.behave("oem", session_rotate_requests=3)
    settings.oem.reads = reads
    screen = await _run_own_bot(settings, clean_sandbox, "oem-renewal-probe", RENEWAL_PROBE, "screen")
    assert "/orders" in screen and "login" not in screen


SIDE_BY_SIDE = """
import asyncio

from dealerbot.api import Bot, BotContext


class SideBySide(Bot):
    name = "oem-side-by-side"
    portal = "oem"
    description = "three pages of one login read at once"

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal_pages("oem", None, 3) as sessions:
            pages = await asyncio.gather(*(s.fetch_json("orders_api", {"page": n + 1, "page_size": 5})
                                           for n, s in enumerate(sessions)))
            ctx.note("orders=" + ",".join(o["order_no"] for p in pages for o in p["items"]))
"""


async def test_the_first_reads_of_pages_side_by_side_all_carry_the_login(settings, clean_sandbox):
    """Several pages of one login reading at the same moment share one client holding the
    login (two were once made, one of them without cookies: its read found no session)."""
    orders = await _run_own_bot(settings, clean_sandbox, "oem-side-by-side", SIDE_BY_SIDE, "orders")
    assert len(set(orders.split(","))) == 15


async def _run_own_bot(settings, sandbox, name: str, source: str, note: str) -> str:
    """Run a bot written into the project folder's bots/; it must succeed on one login, never
    logging in again. Returns what it noted as ``note=...``."""
    (settings.home / "bots").mkdir(exist_ok=True)
    (settings.home / "bots" / "__init__.py").touch()
    (settings.home / "bots" / f"{name.replace('-', '_')}.py").write_text(source, encoding="utf-8")
    result = await run_bot(name, settings, passwords=PASSWORDS)
    assert result.ok, result.error
    assert result.counts.get("relogins", 0) == 0 and sandbox.counters()["logins"] == 1
    [noted] = [n for n in result.notes if n.startswith(note + "=")]
    return noted[len(note) + 1:]

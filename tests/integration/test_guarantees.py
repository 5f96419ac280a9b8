"""Guarantees of the README that a wrong change could once break with every other default test
green, each pinned end to end against the real sandbox (docs/testing.md, "Deliberate breakages
and the tests that catch them", names the breakage each test catches)."""

from __future__ import annotations

import time

from dealerbot.runner import run_bot
from dealerbot.sync import sync

from .conftest import PASSWORDS
from .test_rekey import approve, assert_written_as_planned, plan, read_both, rekey_process

# -- the portal's pace ----------------------------------------------------------------------------

PACE_PER_MINUTE = 480  # [run] requests_per_minute: one request every 0.1275 s (with the 2% margin)
PACE_WINDOW_SECONDS = 10.0  # the sandbox counts its limit in windows this long ...
PACE_LIMIT = PACE_PER_MINUTE * PACE_WINDOW_SECONDS / 60  # ... allowing exactly the bot's pace: 80 a window


async def test_a_run_at_the_portals_exact_limit_stays_within_it_and_draws_no_429(settings, store, clean_sandbox):
    """The bot's configured pace equals the portal's limit: every window holds at most the limit
    (the sandbox's own count of the fullest window), the whole run keeps the pace, no 429."""
    assert PACE_LIMIT == int(PACE_LIMIT)
    clean_sandbox.behave("oem", rate_limit_per_minute=int(PACE_LIMIT), rate_limit_window_seconds=PACE_WINDOW_SECONDS)
    paced = settings.model_copy(update={"run": settings.run.model_copy(
        update={"requests_per_minute": PACE_PER_MINUTE, "rate_limit_pause_seconds": 1})})
    started = time.monotonic()
    result = await run_bot("oem-orders", paced, passwords=PASSWORDS)
    elapsed = time.monotonic() - started
    counters = clean_sandbox.counters("oem")
    assert result.ok, result.error
    assert result.counts["read"] == len(clean_sandbox.orders())
    assert counters["rate_limited"] == 0, counters  # not one refusal
    # The fullest window, as the portal counted it: at the limit, never over it.
    assert PACE_LIMIT * 0.9 <= counters["rate_window_peak"] <= PACE_LIMIT, counters
    # Nearly two windows' worth of requests, and the whole run kept the pace.
    reads = counters["detail_views"] + counters["api_requests"]
    assert reads > 1.5 * PACE_LIMIT
    assert elapsed >= (reads - 1) * 60 / PACE_PER_MINUTE, (elapsed, reads)


# -- a kill in the middle of an update ------------------------------------------------------------


async def test_killed_right_after_an_update_was_saved_then_rerun_updates_once_and_audits_once(
    settings, store, clean_sandbox, sandbox, tmp_path,
):
    """The status updates need no approval. The run is killed (SIGKILL) just after the DMS saved
    the first one, before the ledger knew; the rerun finds the contract holding the new values,
    records the save as the killed run's (the "submitted" mark), checks it, and saves nothing again."""
    (tmp_path / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sandbox.oem_url}"\n[dms]\nurl = "{sandbox.dms_url}"\n'
        f'[run]\nbackoff_seconds = 0.05\ntimeout_seconds = 15\n[rekey]\nconcurrency = 1\n', encoding="utf-8")
    await read_both(settings)
    plan(settings, store)
    updates = [a for a in store.actions(["approved"]) if a.kind == "update_contract"]
    assert len(updates) >= 2, updates

    killed = rekey_process(tmp_path, "rekey.after_submit:1")
    assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILL: nothing cleaned up
    [victim] = [a for a in map(store.action, (u.id for u in updates)) if a.state != "approved"]
    assert victim.kind == "update_contract" and victim.state == "in_progress" and victim.submitted
    saved = next(c for c in clean_sandbox.contracts() if c["contract_no"] == victim.contract_no)
    assert all(saved[f] == new for f, (_, new) in victim.changes.items())  # the DMS saved it, unrecorded
    assert not store.audit_rows(100, natural_key=victim.natural_key)

    again = rekey_process(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_written_as_planned(clean_sandbox, store, updates)
    after = next(c for c in clean_sandbox.contracts() if c["contract_no"] == victim.contract_no)
    assert after == saved  # not saved a second time (its DMS timestamp unchanged)
    rows = [r for r in store.audit_rows(1000, natural_key=victim.natural_key) if r["event"] == "update_contract"]
    assert len(rows) == 1, rows  # one update, recorded as the killed run's save
    assert "找到已保存的记录" in rows[0]["note"] and rows[0]["target"] == victim.contract_no
    assert rows[0]["new_values"] == {f: new for f, (_, new) in victim.changes.items()}
    for other in updates:
        if other.id != victim.id:
            assert [r["event"] for r in store.audit_rows(100, natural_key=other.natural_key)] == ["update_contract"]


# -- consent, end to end ----------------------------------------------------------------------------


async def test_after_a_full_sync_with_everything_approved_no_dms_record_belongs_to_a_customer_without_consent(
    settings, store, clean_sandbox,
):
    """Checked against the OEM's own consent flags (the sandbox's ground truth), not the ledger:
    no contract or customer the sync put into the DMS belongs to a person who did not consent,
    matched by ID number, or by mobile."""
    oem_customers = clean_sandbox.rows("oem", "customers")
    refusing = [c for c in oem_customers if c["consent"] != "已授权"]
    assert refusing and {c["consent"] for c in refusing} == {"未授权"}
    refusing_ids = {c["id_number"].upper() for c in refusing}
    refusing_mobiles = {c["mobile"] for c in refusing}
    orders = {o["order_no"]: o for o in clean_sandbox.orders()}
    contracts_before = {c["contract_no"] for c in clean_sandbox.contracts()}
    customers_before = {c["customer_no"] for c in clean_sandbox.customers()}
    ordered_before = {c["oem_order_no"] for c in clean_sandbox.contracts()}
    # Not vacuous: people without consent have orders the sync would otherwise create.
    held_back = [o for o in orders.values() if o["id_number"].upper() in refusing_ids
                 and o["order_no"] not in ordered_before and o["status"] != "已取消"]
    assert len(held_back) >= 3, held_back

    first = await sync(settings, passwords=PASSWORDS)
    assert first.ok, first.stopped or [r.error for r in first.runs]
    approve(store)  # every planned creation a person can approve as it stands
    written = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert written.ok and written.counts["verified"] > 0, (written.error, written.counts)

    dms_customers = {c["customer_no"]: c for c in clean_sandbox.customers()}
    new_contracts = [c for c in clean_sandbox.contracts() if c["contract_no"] not in contracts_before]
    new_customers = [c for no, c in dms_customers.items() if no not in customers_before]
    assert len(new_contracts) == written.counts["verified"] and new_customers

    def without_consent(id_number: str, mobile: str) -> bool:
        return id_number.upper() in refusing_ids or mobile in refusing_mobiles

    for c in new_contracts:
        order = orders[c["oem_order_no"]]
        person = dms_customers[c["customer_no"]]
        assert not without_consent(order["id_number"], order["mobile"]), (c["contract_no"], order["order_no"])
        assert not without_consent(person["id_number"], person["mobile"]), (c["contract_no"], person["customer_no"])
    for person in new_customers:
        assert not without_consent(person["id_number"], person["mobile"]), person["customer_no"]
    # ... and each of those orders is listed for a person with the consent reason.
    for o in held_back:
        assert "未授权" in (store.sync_state().get(o["order_no"]) or {}).get("reason", ""), o["order_no"]

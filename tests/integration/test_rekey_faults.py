"""Re-keying through a DMS whose own page requests fail: a failed request of a form's pop-up is
a system error of that record (retried, then requeued), never the end of the run, and never a
long blind wait. Checked through the sandbox DMS's ground truth."""

from __future__ import annotations

import time

from dealerbot.running.runner import run_bot
from dealerbot.store import Store

from .conftest import PASSWORDS
from .test_rekey import assert_written_as_planned, by_order, plan


async def test_failing_customer_pop_up_requests_are_retried_and_every_contract_is_written_once(
    read_store, settings, store, clean_sandbox,
):
    """Before: the first 选择客户 search answered 500 left the bot waiting the full timeout for a
    pick row that never came, then failed the whole run (a changed screen)."""
    read_store.copy_into(settings)
    plan(settings, store)
    # Contracts of customers the DMS already has: /api/customers is then asked only by the
    # contract form's pop-up, so the planted faults all land in it.
    chosen = [a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.customer.mode == "existing"][:24]
    assert len(chosen) == 24
    assert not store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in chosen], "t")
    ready = store.actions(["approved"])  # the 24 and the status updates that need no approval
    before = by_order(clean_sandbox.contracts())

    # The pop-up's first four searches fail, and 10% of every DMS request too (seeded).
    clean_sandbox.dms.post("/__admin/fail-next", json={"path": "/api/customers", "mode": "500", "count": 4}).raise_for_status()
    clean_sandbox.behave("dms", error_rate=0.1, fault_seed=20)
    started = time.monotonic()
    result = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    elapsed = time.monotonic() - started
    injected = clean_sandbox.counters("dms")["errors_injected"]
    clean_sandbox.behave("dms", error_rate=0.0)

    assert result.ok, result.error
    assert injected >= 4
    assert result.counts["verified"] == len(ready) and result.counts["failed"] == result.counts["unfinished"] == 0
    assert_written_as_planned(clean_sandbox, store, ready)  # one contract each, as planned
    after = by_order(clean_sandbox.contracts())
    assert all(len(cs) == 1 for cs in after.values())
    assert set(after) - set(before) == {a.natural_key for a in chosen}
    # Each failed search was noticed when it failed, not after the 15 s timeout.
    assert elapsed < settings.run.timeout_seconds * 4, elapsed
    log = (result.run_dir / "run.log").read_text(encoding="utf-8")
    assert "the page's own request GET /api/customers answered HTTP 500" in log


def _approve_existing(store: Store, n: int) -> list:
    chosen = [a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.customer.mode == "existing"][:n]
    assert len(chosen) == n
    assert not store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in chosen], "t")
    return chosen


async def test_a_contract_whose_pop_up_fails_every_attempt_is_written_after_the_others_in_the_same_run(
    read_store, settings, store, clean_sandbox,
):
    """One page, one record whose pop-up search fails on all its attempts: it goes to the end of
    the queue and is written there, in the same run (before: the run failed on its first)."""
    read_store.copy_into(settings)
    plan(settings, store)
    settings.rekey.enabled = ["create_contract"]
    settings.rekey.concurrency = 1  # strictly one after another: the faults all land on the first
    chosen = _approve_existing(store, 4)
    attempts = settings.run.retries + 1
    clean_sandbox.dms.post("/__admin/fail-next", json={"path": "/api/customers", "mode": "500", "count": attempts}).raise_for_status()
    result = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    assert clean_sandbox.counters("dms")["errors_injected"] == attempts
    assert result.counts["verified"] == 4 and result.counts["failed"] == result.counts["unfinished"] == 0
    assert_written_as_planned(clean_sandbox, store, chosen)
    log = (result.run_dir / "run.log").read_text(encoding="utf-8")
    first = chosen[0].natural_key
    assert f"{first}: {attempts} attempts failed" in log and "tried again after the others (round 1/2)" in log
    numbers = {a.natural_key: store.action(a.id).contract_no for a in chosen}
    assert numbers[first] == max(numbers.values())  # the DMS numbered it last: written after the others


NO_ANSWER_PROBE = '''
import time

from dealerbot.api import Bot, BotContext, SystemFailure
from portals.dms import ContractForm


class Probe(Bot):
    name = "dms-popup-probe"
    portal = "dms"
    description = "the customer pop-up whose search gets no answer at all"

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("dms") as s:
            await s.page.route("**/api/customers?*", lambda route: route.abort("connectionrefused"))
            form = ContractForm(s)
            started = time.monotonic()
            try:
                with form.form.watch_requests("the probe's form"):
                    await form.open_new()
                    await form.pick_customer("KH000001")
            except SystemFailure as exc:
                ctx.note(f"failed={type(exc).__name__}|{exc.retryable}|{time.monotonic() - started:.1f}|{exc}")
'''


async def test_a_pop_up_request_that_gets_no_answer_is_a_retryable_failure_at_once(settings, clean_sandbox):
    """Any portal's form, through the public Form API: the pop-up's search refused by the network
    (no HTTP answer at all) ends the wait for its rows at once, naming the request."""
    (settings.home / "bots").mkdir(exist_ok=True)
    (settings.home / "bots" / "__init__.py").touch()
    (settings.home / "bots" / "dms_popup_probe.py").write_text(NO_ANSWER_PROBE, encoding="utf-8")
    result = await run_bot("dms-popup-probe", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    [noted] = [n.split("=", 1)[1] for n in result.notes if n.startswith("failed=")]
    kind, retryable, seconds, message = noted.split("|", 3)
    assert kind == "PortalUnavailable" and retryable == "True"
    assert float(seconds) < settings.run.timeout_seconds / 3, seconds  # not the 15 s wait for the rows
    assert "the page's own request GET /api/customers got no answer" in message and "the probe's form" in message


async def test_a_pop_up_that_always_fails_opens_the_breaker_and_the_next_run_writes_everything_once(
    read_store, settings, store, clean_sandbox,
):
    """Every pop-up search fails (the DMS's customer search is down): the run stops once three
    records in a row used up their attempts, nothing is half-written, and the next run writes
    every record exactly once."""
    read_store.copy_into(settings)
    plan(settings, store)
    settings.rekey.enabled = ["create_contract"]
    settings.rekey.concurrency = 1
    settings.run.requeue_rounds = 0
    chosen = _approve_existing(store, 5)
    before = by_order(clean_sandbox.contracts())
    clean_sandbox.dms.post("/__admin/fail-next", json={"path": "/api/customers", "mode": "500", "count": 1000}).raise_for_status()
    started = time.monotonic()
    failed = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    elapsed = time.monotonic() - started
    assert failed.status == "failed" and failed.error_kind == "system"
    assert "DMS连续 3 条记录多次尝试仍未能写入" in failed.error and "/api/customers answered HTTP 500" in failed.error
    assert elapsed < settings.run.timeout_seconds * 2, elapsed  # 12 failed searches, none waited out
    assert by_order(clean_sandbox.contracts()) == before  # nothing was saved

    clean_sandbox.dms.post("/__admin/reset").raise_for_status()  # the search works again (faults cleared)
    again = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert again.ok, again.error
    assert again.counts["verified"] == 5 and again.counts["found"] == 0
    assert_written_as_planned(clean_sandbox, store, chosen)


async def test_a_customer_gone_from_the_dms_fails_only_its_own_order_at_once(read_store, settings, store, clean_sandbox):
    """A customer deleted (merged) in the DMS between the review and the re-key: the pop-up finds
    nobody, so that order fails as a business failure with the reason, never the run and never
    after the full timeout; the other orders are written."""
    read_store.copy_into(settings)
    plan(settings, store)
    by_customer: dict[str, list] = {}
    for a in store.actions(["planned"]):
        if a.kind == "create_contract" and a.customer.mode == "existing":
            by_customer.setdefault(a.customer.customer_no, []).append(a)
    singles = [acts[0] for acts in by_customer.values() if len(acts) == 1][:3]
    assert len(singles) == 3
    assert not store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in singles], "t")
    gone = singles[0]
    clean_sandbox.dms.delete(f"/__admin/customers/{gone.customer.customer_no}").raise_for_status()
    started = time.monotonic()
    result = await run_bot("dms-rekey", settings.model_copy(update={"rekey": settings.rekey.model_copy(
        update={"enabled": ["create_contract"]})}), passwords=PASSWORDS)
    elapsed = time.monotonic() - started
    assert result.ok, result.error
    failed = store.action(gone.id)
    assert failed.state == "failed" and failed.failure_code == "dms_customer_missing", failed.failure_reason
    assert gone.customer.customer_no in failed.failure_reason
    assert gone.natural_key not in by_order(clean_sandbox.contracts())
    assert_written_as_planned(clean_sandbox, store, singles[1:])
    assert elapsed < settings.run.timeout_seconds * 2, elapsed  # not a wait for a pick row that never comes

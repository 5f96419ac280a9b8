"""The read-back after every DMS write, against a DMS that stores otherwise than typed.

The sandbox DMS's write faults (docs/sandbox.md: truncate, dropdown_first, round_amount,
date_shift, lost_save) answer a save as usual and store something else; its admin ground truth
(/__admin/write-faults) says which record got which. A re-key that skipped its read-back, or
compared fewer fields, would mark those records verified: here each must end failed, listed for a
person with what was planned and what the DMS holds, never submitted a second time, while every
other record is verified."""

from __future__ import annotations

from openpyxl import load_workbook

from dealerbot.review.export import export_runs, latest_runs
from dealerbot.review.sheets import WRITTEN_TITLE
from dealerbot.running.registry import entity_of_bots
from dealerbot.running.runner import run_bot
from dealerbot.sandbox.data import DMS_MODELS

from .conftest import PASSWORDS
from .test_rekey import approve, by_order, plan

CONTRACT_FAULTS = ("dropdown_first", "round_amount", "date_shift", "lost_save")


def _pick(chosen, used: set[str], test) -> str:
    found = [a for a in chosen if a.natural_key not in used and test(a)]
    assert found, "no approved action fits this fault"
    used.add(found[0].natural_key)
    return found[0].natural_key


async def test_every_write_fault_ends_as_a_listed_read_back_failure_and_nothing_else_does(
    read_store, settings, store, clean_sandbox,
):
    read_store.copy_into(settings)
    plan(settings, store)
    chosen = approve(store)
    used: set[str] = set()
    first_model = DMS_MODELS[0][0]
    targets = {
        "dropdown_first": _pick(chosen, used, lambda a: a.new_values["model_code"] != first_model),
        "round_amount": _pick(chosen, used, lambda a: float(a.new_values["price"]) % 1000 != 0),
        "date_shift": _pick(chosen, used, lambda a: bool(a.new_values["delivery_date"])),
        "lost_save": _pick(chosen, used, lambda a: True),
    }
    key = _pick(chosen, used, lambda a: a.customer.mode == "new" and len(a.customer.values["address"]) > 2)
    new_customer = next(a for a in chosen if a.natural_key == key)
    faults = {kind: {"records": [order]} for kind, order in targets.items()}
    faults["truncate"] = {"records": [new_customer.customer.values["id_number"]]}
    clean_sandbox.behave("dms", write_faults=faults)

    result = await run_bot("dms-rekey", settings, passwords=PASSWORDS)

    truth = clean_sandbox.get("dms", "/__admin/write-faults")
    assert sorted(f["kind"] for f in truth) == sorted(faults), truth  # each fault met its record once: one submit each
    faulted = set(targets.values()) | {a.natural_key for a in chosen
                                       if a.customer.values.get("id_number") == new_customer.customer.values["id_number"]}
    states = {a.natural_key: store.action(a.id) for a in chosen}
    for key, a in states.items():
        if key in faulted:
            codes = ("read_back_mismatch", "read_back_missing", "customer_read_back_mismatch")
            assert a.state == "failed" and a.failure_code in codes, (key, a.state, a.failure_reason)
        else:
            assert a.state == "verified", (key, a.state, a.failure_reason)
    assert result.counts["failed"] == len(faulted) and result.counts["verified"] == result.counts["done"] - len(faulted)
    for f in truth:  # both values, in Chinese, for a person
        if f["kind"] in ("dropdown_first", "round_amount", "date_shift"):
            reason = states[f["record"]].failure_reason
            typed, stored = (f"{v:.2f}" if isinstance(v, float) else str(v) for v in (f["typed"], f["stored"]))
            assert "写入后核对不一致" in reason and f"计划「{typed}」" in reason and f"DMS为「{stored}」" in reason, reason
    assert "找不到" in states[targets["lost_save"]].failure_reason
    person = [k for k in faulted if k not in targets.values()]
    for key in person:  # every order of the person whose new customer read back wrong
        reason = states[key].failure_reason
        assert f"地址 计划「{new_customer.customer.values['address']}」" in reason and "DMS为「" in reason, reason
    contracts = by_order(clean_sandbox.contracts())
    # Never submitted again behind the person's back; nothing written against a customer that read back wrong.
    assert targets["lost_save"] not in contracts and not any(k in contracts for k in person)
    assert all(len(contracts.get(key, [])) == 1 for key in states if key not in person and key != targets["lost_save"])

    path = settings.path("out") / "review.xlsx"
    export_runs(store, latest_runs(store), path, {"dms-rekey": ()} | entity_of_bots())
    rows = list(load_workbook(path, read_only=True)[WRITTEN_TITLE].iter_rows(min_row=2, values_only=True))
    listed = {r[0]: r for r in rows}
    for key in faulted:
        assert listed[key][2] == "失败" and listed[key][5], listed[key]
    # The next run leaves the failed ones to a person: nothing more is written.
    again = await run_bot("dms-rekey", settings, passwords=PASSWORDS)
    assert again.ok and again.counts.get("done", 0) == 0
    assert len(clean_sandbox.get("dms", "/__admin/write-faults")) == len(truth)

"""Failure screenshots, pixel by pixel: in the PNGs that real failing runs save, every place a
customer's name, mobile, ID number or address was drawn is covered by the mask, and the rest of
the screen is not. The places are found on the page by the values themselves (the sandbox's
ground truth), not by the portals' ``evidence_mask`` selectors, right before each screenshot."""

from __future__ import annotations

import re
from pathlib import Path

from dealerbot.running.runner import run_bot

from .conftest import PASSWORDS
from .pixels import personal_values, uncovered, watch_page_screenshots
from .test_failures import _edit_selector
from .test_rekey import plan

CELL = "  {table}.cell:\n    - css: \"td[data-field='{{field}}']\""
BROKEN_CELL = "  {table}.cell:\n    - css: \"td[data-col='{{field}}']\""


def _kinds(values: set[str]) -> set[str]:
    """Which kinds of personal value ``values`` are (a rough look at their shapes)."""
    kinds = set()
    for v in values:
        digits = re.sub(r"\D", "", v)
        if re.fullmatch(r"\d{17}[\dXx]", v):
            kinds.add("id")
        elif 10 <= len(digits) <= 15 and len(digits) >= len(v) - 4:
            kinds.add("mobile")
        elif any(w in v for w in ("省", "市", "路", "号")) and len(v) > 8:
            kinds.add("address")
        else:
            kinds.add("name")
    return kinds


async def test_failure_screenshots_of_the_portals_lists_cover_every_personal_value(settings, clean_sandbox, monkeypatch):
    shots = watch_page_screenshots(monkeypatch, personal_values(clean_sandbox))
    runs = []
    for portal, table, bot in (("dms", "customers", "dms-customers"), ("dms", "contracts", "dms-contracts"),
                               ("oem", "customers", "oem-customers"), ("oem", "orders", None)):
        if bot is None:  # the orders list has no cell selector: its rows' details are read over HTTP
            _edit_selector(settings, portal, "    - css: \"#order-detail dd[data-field='{field}']\"\n    - css: \"[data-field='{field}']\"",
                           "    - css: \"#order-detail dd[data-col='{field}']\"")
            bot = "oem-orders"
        else:
            _edit_selector(settings, portal, CELL.format(table=table), BROKEN_CELL.format(table=table))
        result = await run_bot(bot, settings, passwords=PASSWORDS)
        assert result.status == "failed", (bot, result.status, result.error)
        runs.append(result)

    pngs = [p.resolve() for r in runs for p in r.evidence if p.suffix == ".png"]
    assert len(pngs) >= 4
    seen: set[str] = set()
    problems = []
    for png in pngs:
        shot = shots.get(png)
        assert shot is not None, f"{png.name} was not taken through Page.screenshot (not measured)"
        assert len(shot.boxes) >= 20, f"{png.name}: a list page with {len(shot.boxes)} personal values shown"
        problems += uncovered(shot)
        seen |= {b.value for b in shot.boxes}
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    assert _kinds(seen) == {"name", "mobile", "id", "address"}, _kinds(seen)


async def test_a_read_back_failure_screenshot_during_a_rekey_covers_the_customer(
    read_store, settings, store, clean_sandbox, monkeypatch,
):
    read_store.copy_into(settings)
    plan(settings, store)
    new = next(a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.customer.mode == "new"
               and len(a.customer.values["address"]) > 2)
    assert not store.review([{"id": new.id, "checksum": new.stored_checksum, "decision": "approve"}], "t")
    clean_sandbox.behave("dms", write_faults={"truncate": {"records": [new.customer.values["id_number"]]}})
    person = {k: new.customer.values[k] for k in ("name", "mobile", "id_number", "address")}
    stored_address = person["address"][:2]  # what the sandbox's truncate fault keeps (checked below)
    shots = watch_page_screenshots(monkeypatch, [*personal_values(clean_sandbox), *person.values(), stored_address])

    await run_bot("dms-rekey", settings, passwords=PASSWORDS)

    failed = store.action(new.id)
    assert failed.state == "failed" and failed.failure_code == "customer_read_back_mismatch", failed.failure_reason
    assert [f["stored"] for f in clean_sandbox.get("dms", "/__admin/write-faults")] == [stored_address]
    pngs = [p.resolve() for p in Path(failed.evidence_dir).glob(f"{new.natural_key}-*.png")]
    assert pngs  # the DMS page as the read-back found it: the new customer's row
    for png in pngs:
        shot = shots[png]
        shown = {b.value for b in shot.boxes}
        assert {person["name"], person["id_number"], stored_address} <= shown, shown
        assert not uncovered(shot), "\n".join(uncovered(shot))

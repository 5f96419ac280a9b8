"""Failure screenshots of the new flows' list screens (交车记录, 上报记录, 线索管理, 潜客管理), pixel
by pixel: every place a buyer's or a lead's name, mobile or ID number was drawn is under the mask
(found on the page by the values themselves, the sandbox's ground truth)."""

from __future__ import annotations

from .conftest import PASSWORDS
from .pixels import personal_values, uncovered, watch_page_screenshots
from .test_failures import _edit_selector
from .test_screenshots import BROKEN_CELL, CELL


async def test_failure_screenshots_of_the_flows_lists_cover_every_personal_value(settings, clean_sandbox, monkeypatch):
    from dealerbot.running.runner import run_bot

    leads = clean_sandbox.rows("oem", "leads")
    values = [*personal_values(clean_sandbox), *(v for lead in leads for v in (lead["name"], lead["mobile"]))]
    shots = watch_page_screenshots(monkeypatch, values)
    runs = []
    for portal, table, bot in (("dms", "deliveries", "dms-deliveries"), ("oem", "reports", "oem-reports"),
                               ("oem", "leads", "oem-leads"), ("dms", "prospects", "dms-prospects")):
        _edit_selector(settings, portal, CELL.format(table=table), BROKEN_CELL.format(table=table))
        result = await run_bot(bot, settings, passwords=PASSWORDS)
        assert result.status == "failed", (bot, result.status, result.error)
        runs.append(result)
    pngs = [p.resolve() for r in runs for p in r.evidence if p.suffix == ".png"]
    assert len(pngs) >= 4
    problems = []
    for png in pngs:
        shot = shots.get(png)
        assert shot is not None, f"{png.name} was not taken through Page.screenshot (not measured)"
        assert len(shot.boxes) >= 10, f"{png.name}: a list page with {len(shot.boxes)} personal values shown"
        problems += uncovered(shot)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)

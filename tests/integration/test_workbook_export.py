"""The review workbook staff open in Excel, read back with openpyxl."""

from __future__ import annotations

import zipfile

from openpyxl import load_workbook

from dealerbot.data.records import OEM_CUSTOMER, OEM_ORDER
from dealerbot.review.export import export_runs
from dealerbot.running.registry import entity_of_bots
from dealerbot.running.runner import run_bot

from .conftest import PASSWORDS


async def test_review_workbook_rows_highlights_and_formula_safety(settings, store, clean_sandbox):
    orders = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    customers = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert orders.ok and customers.ok
    runs = [store.run(orders.run_id), store.run(customers.run_id)]
    path = settings.path("out") / "review.xlsx"
    stats = export_runs(store, runs, path, entity_of_bots())
    assert stats.path == path and path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left

    wb = load_workbook(path)
    assert wb.sheetnames == ["概要", OEM_ORDER.title, OEM_CUSTOMER.title]
    summary = {r[0].value: r[1].value for r in wb["概要"].iter_rows(min_row=2)}
    assert summary["运行编号"] in (orders.run_id, customers.run_id)

    ws = wb[OEM_ORDER.title]
    headers = [c.value for c in ws[1]]
    assert headers[:3] == ["订单号", "客户姓名", "手机号"] and headers[-2:] == ["校验结果", "问题说明"]
    assert ws.freeze_panes == "B2" and ws.auto_filter.ref.startswith("A1:")  # the header row and the order number
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == orders.counts["read"] == len(clean_sandbox.orders())
    by_result = {}
    for r in rows:
        by_result.setdefault(r[-2], []).append(r)
    assert len(by_result["拒绝"]) == orders.counts["rejected"]
    assert by_result["已修正"] and by_result["通过"]
    # Real numbers and dates, not text.
    price_col = headers.index("价格")
    assert any(isinstance(r[price_col], (int, float)) for r in by_result["通过"])
    # A repaired mobile is highlighted, the reason beside it.
    mobile_col = headers.index("手机号") + 1
    repaired_row = next(i for i, r in enumerate(rows, start=2) if r[-2] == "已修正" and "手机号" in (r[-1] or ""))
    assert ws.cell(repaired_row, mobile_col).fill.fgColor.rgb.endswith("C6EFCE")

    # Formula-like scraped text (the portal has cities like =HYPERLINK(...)) stays text.
    cws = wb[OEM_CUSTOMER.title]
    city_col = [c.value for c in cws[1]].index("城市") + 1
    formula_cells = [cws.cell(r, city_col) for r in range(2, cws.max_row + 1)
                     if str(cws.cell(r, city_col).value or "").startswith(("=", "+", "-", "@"))]
    assert formula_cells, "the sandbox plants formula-like cities"
    for cell in formula_cells:
        assert cell.data_type == "s"
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert "<f>" not in z.read(name).decode("utf-8")


async def test_incremental_export_says_its_scope_and_all_exports_everything(settings, store, clean_sandbox):
    full = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert full.ok
    order_no = next(r["order_no"] for r in store.iter_records(OEM_ORDER))
    clean_sandbox.oem.patch(f"/__admin/orders/{order_no}", json={"status": "已到店"}).raise_for_status()
    inc = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert inc.ok and 1 <= inc.counts["read"] <= 3
    bots = entity_of_bots()

    path = settings.path("out") / "daily.xlsx"
    export_runs(store, [store.run(inc.run_id)], path, bots)
    wb = load_workbook(path)
    summary = {r[0].value: r[1].value for r in wb["概要"].iter_rows(min_row=2)}
    assert "增量" in summary["范围"] and "颜色说明" in summary
    rows = list(wb[OEM_ORDER.title].iter_rows(min_row=2, values_only=True))
    assert len(rows) == inc.counts["read"] and order_no in {r[0] for r in rows}

    everything = settings.path("out") / "all.xlsx"
    export_runs(store, [store.run(full.run_id)], everything, bots, all_records=True)
    ws = load_workbook(everything)[OEM_ORDER.title]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == store.count(OEM_ORDER) + full.counts["rejected"]
    headers = [c.value for c in ws[1]]
    rejected = [r for r in rows if r[-2] == "拒绝"]
    assert rejected and all(isinstance(r[headers.index("价格")], (int, float)) for r in rejected)


def test_export_to_a_full_disk_or_an_unusable_folder_says_so_and_changes_nothing(settings, clean_sandbox, monkeypatch):
    """Before: a traceback (and the cleanup of the temp file could hide the real error)."""
    import asyncio
    import os

    from typer.testing import CliRunner

    from dealerbot.cli import app
    from dealerbot.running.runner import run_bot

    from .conftest import PASSWORDS

    assert asyncio.run(run_bot("oem-customers", settings, passwords=PASSWORDS)).ok
    runner = CliRunner()
    # A disk that is full: the workbook's temp file leads to /dev/full (ENOSPC on every write).
    target = settings.home / "review.xlsx"
    target.write_bytes(b"the workbook of yesterday")
    (settings.home / f".review.xlsx.tmp-{os.getpid()}").symlink_to("/dev/full")
    full = runner.invoke(app, ["export", "-o", str(target)])
    assert full.exit_code == 2, full.output
    assert "无法写入审核工作簿" in full.output and "No space left" in full.output
    assert full.exception is None or isinstance(full.exception, SystemExit)
    assert target.read_bytes() == b"the workbook of yesterday"  # left as it was
    # An out/ that is not a folder.
    (settings.home / "out").write_text("not a folder", encoding="utf-8")
    blocked = runner.invoke(app, ["export"])
    assert blocked.exit_code == 2 and "无法写入审核工作簿" in blocked.output, blocked.output
    assert "Traceback" not in blocked.output

"""A flow of one's own, end to end (issue #24): the example project's trade-ins registered on the
sandbox's used-car platform through the ledger, planned by `dealerbot sync`, approved, written
exactly once by the generic ledger writer, read back; a SIGKILL after the submit then a re-run
doubles nothing; a refusal is kept with the platform's words; a dry run submits nothing.
Checked against the platform's admin ground truth."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from dealerbot.config import load_settings
from dealerbot.sandbox.usedcars import DEMO_PASSWORD
from dealerbot.store import Store

from .test_cli import dealerbot
from .test_console import CONSOLE_PASSWORD, _login, serving
from .test_own_portal import _vin, run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser


@pytest.fixture
def shop(tmp_path: Path, sandbox) -> Path:
    folder = tmp_path / "shop"
    shutil.copytree(ROOT / "examples" / "usedcars", folder)
    cfg = folder / "dealerbot.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("http://127.0.0.1:8703", sandbox.usedcars_url)
                   + "\n[run]\nbackoff_seconds = 0.05\n", encoding="utf-8")
    return folder


def _store(shop: Path) -> Store:
    settings = load_settings(shop / "dealerbot.toml")
    return Store.open(settings.store_url, settings.store_code)


def test_a_flow_of_ones_own_plans_writes_once_resumes_after_a_kill_and_keeps_refusals(shop, platform, monkeypatch):
    on_platform = platform.cars()[0]
    new, refused = _vin(910001), _vin(910002)
    (shop / "trade_ins.csv").write_text(
        "vin,brand,model,reg_date,mileage_km,price,owner_name,owner_mobile\n"
        f"{new},丰田,卡罗拉,2021-05-06,42000,86000,欧阳娜,13912345678\n"
        f"{on_platform['vin']},{on_platform['brand']},{on_platform['model']},2020-01-01,1000,1000,张三,13800000000\n"
        f"{refused},本田,雅阁,,61000,98000,李建国,13800138000\n",  # no 上牌日期: the platform refuses it
        encoding="utf-8")
    before = len(platform.cars())

    planned = run(shop, "sync")  # reads, plans: registrations wait for approval ([flows.usedcars])
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "置换车辆登记" in planned.stdout and platform.counters()["submits"] == 0
    with _store(shop) as store:
        waiting = {a.natural_key: a for a in store.actions(["planned"], flow="usedcars")}
        assert set(waiting) == {new, refused}  # the car on the platform already is in sync
        assert store.actions(flow="orders") == []
    # The review workbook's sheet of the flow, filled in as staff would: one approved with an
    # edited price, one approved as planned.
    [book] = sorted((shop / "out").glob("review-*.xlsx"))
    wb = load_workbook(book)
    ws = wb["待处理-置换车辆登记"]
    heads = [c.value for c in ws[1]]
    assert {"审核", "流程", "车架号", "评估价"} <= set(heads)
    for row in ws.iter_rows(min_row=2):
        cells = dict(zip(heads, row))
        assert cells["流程"].value == "usedcars"
        if cells["记录键"].value == new:
            cells["审核"].value, cells["评估价"].value = "修改后同意", "88000.00"
        else:
            cells["审核"].value = "同意"
    wb.save(shop / "reviewed.xlsx")
    imported = run(shop, "import-review", "reviewed.xlsx", "--reviewer", "店长")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "同意 1 条，修改后同意 1 条" in imported.stdout

    rehearsal = run(shop, "run", "usedcars-flow-write", "--dry-run")  # (sync --dry-run passes it on: test_rekey)
    assert rehearsal.returncode == 0, rehearsal.stdout + rehearsal.stderr
    assert platform.counters()["submits"] == 0 and len(platform.cars()) == before  # filled, never saved
    rehearsed = [json.loads(line) for p in (shop / "logs").rglob("rehearsal.jsonl") for line in p.read_text().splitlines()]
    assert {e["key"] for e in rehearsed} == {new, refused} and "欧阳娜" not in json.dumps(rehearsed, ensure_ascii=False)

    killed = dealerbot(["run", "usedcars-flow-write"], shop, DEALERBOT_USEDCARS_PASSWORD=DEMO_PASSWORD,
                       DEALERBOT_FAILPOINTS="flow.after_submit:1")
    assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILL right after the first submit
    assert [c["vin"] for c in platform.cars()].count(new) == 1
    with _store(shop) as store:
        assert store.actions(natural_key=new, flow="usedcars")[-1].state == "in_progress"

    again = run(shop, "sync", "--flow", "usedcars")  # resumes: searches first, finds the car, never submits it again
    assert again.returncode == 0, again.stdout + again.stderr
    cars = platform.cars()
    assert [c["vin"] for c in cars].count(new) == 1 and refused not in {c["vin"] for c in cars}
    assert len(cars) == before + 1 and platform.counters()["submits"] == 2  # one per approved car, ever
    assert next(c for c in cars if c["vin"] == new)["price"] == "88000.00"  # the reviewer's edited value
    with _store(shop) as store:
        done = store.actions(natural_key=new, flow="usedcars")[-1]
        failed = store.actions(natural_key=refused, flow="usedcars")[-1]
        assert done.state == "verified" and failed.state == "failed"
        assert "上牌日期为必填项" in (failed.failure_reason or "")  # the platform's own words
        notes = [r["note"] for r in store.audit_rows(50, new)]
        assert any("找到已保存的记录" in n for n in notes)

    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)  # the console counts per flow
    with serving(load_settings(shop / "dealerbot.toml")) as (url, _), httpx.Client(base_url=url, timeout=10) as web:
        _login(web)
        for page in ("/", "/review"):
            html = web.get(page).text
            row = re.search(r'<tr data-flow="usedcars"><td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>', html)
            assert row and row.group(1).startswith("置换车辆登记") and row.groups()[1:] == ("1", "1", "0"), html

    third = run(shop, "sync")
    assert third.returncode == 0 and platform.counters()["submits"] == 2  # nothing written twice
    audit = run(shop, "audit", "--flow", "usedcars")
    assert audit.returncode == 0 and new in audit.stdout and "usedcars" in audit.stdout, audit.stdout

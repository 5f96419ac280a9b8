"""A new portal started with the two tools that write its YAML: `dealerbot init` scaffolds a
project that runs as written against the sandbox's used-car platform (its selector check, its
reading bot against the platform's admin ground truth, its own test under pytest), and
`dealerbot record` turns a scripted click-through, recorded by Playwright's recorder (codegen's
engine), into named selector entries with fallbacks merged into the selector file."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dealerbot.sandbox.usedcars import DEMO_PASSWORD
from dealerbot.web.locators import load_selector_file

from .test_cli import dealerbot

pytestmark = pytest.mark.browser



def _run(folder: Path, *args: str):
    return dealerbot(list(args), folder, DEALERBOT_USEDCARS2_PASSWORD=DEMO_PASSWORD)


DRIVE = '''
async def drive(page):
    # a clerk on the 登记置换车辆 screen, scripted: types into three fields, picks a brand, presses
    # 保存 (its confirm() is dismissed: nothing is saved)
    await page.locator("input[name=vin]").click()
    await page.keyboard.type("LSVAA1234")
    await page.locator("select[name=brand]").select_option(label="丰田")
    await page.locator("input[name=model]").click()
    await page.keyboard.type("卡罗拉")
    await page.get_by_role("button", name="保存").click()
'''


def test_a_portal_started_with_init_and_record_runs_as_written(tmp_path, sandbox, platform):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "dealerbot.toml").write_text("# the shop's own settings\n[run]\nbackoff_seconds = 0.05  # fast\n", encoding="utf-8")
    made = _run(folder, "init", "usedcars2", "--url", sandbox.usedcars_url, "--title", "二手车平台")
    assert made.returncode == 0, made.stdout + made.stderr
    config = (folder / "dealerbot.toml").read_text(encoding="utf-8")
    assert config.startswith("# the shop's own settings\n[run]\nbackoff_seconds = 0.05  # fast\n")  # kept as it was
    path = folder / "selectors" / "usedcars2.yaml"
    before = path.read_text(encoding="utf-8").splitlines()
    (folder / "drive.py").write_text(DRIVE, encoding="utf-8")

    recorded = _record_headed(folder, tmp_path)  # in a visible browser, as a person would
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    after = path.read_text(encoding="utf-8").splitlines()
    kept = iter(after)
    assert all(line in kept for line in before), "a line of the file (a comment, an entry) was lost or moved"
    assert "  car.vin:                  # recorded: locator('input[name=\"vin\"]')" in after
    f = load_selector_file(path)
    choices = {name: [(c.kind, c.value, c.name) for c in f.selectors[name].candidates] for name in f.selectors}
    assert choices["car.vin"] == [("label", "车架号", None), ("css", "input[name='vin']", None)]  # unlinked label, then css
    assert choices["car.brand"] == [("label", "品牌", None), ("css", "select[name='brand']", None)]
    assert choices["car.model"] == [("label", "车型", None), ("css", "input[name='model']", None)]
    assert choices["car.button_1"] == [("role", "button", "保存")]  # no id or name: role + name only
    assert f.endpoints["car_page"] == "/cars/add/" and any("car" in s.names for s in f.screens)
    assert platform.counters()["submits"] == 0 and "LSVAA1234" not in path.read_text(encoding="utf-8")

    check = _run(folder, "selectors", "check", "usedcars2")  # the scaffold's names and the recorded ones
    assert check.returncode == 0, check.stdout + check.stderr
    lines = {line.split("│")[1].strip(): line for line in check.stdout.splitlines() if line.count("│") >= 3}
    for name in ("login.username", "login.password", "login.submit", "list.table", "list.next", "car.vin", "car.brand",
                 "car.model", "car.button_1"):
        assert " ok " in lines[name], check.stdout

    read = _run(folder, "run", "usedcars2-list")
    assert read.returncode == 0, read.stdout + read.stderr
    with sqlite3.connect(folder / "var" / "dealerbot.sqlite") as db:
        stored = {k: json.loads(d)["brand"] for k, d in db.execute(
            "select record_key, data from records where entity = 'usedcars2_row'")}
    truth = platform.cars()
    assert stored == {c["vin"]: c["brand"] for c in truth}  # every car, three pages, by header text

    generated = _import(folder / "tests" / "test_usedcars2.py")
    generated.test_the_list_is_read_by_its_column_headers()  # the project's own test, as written


def _record_headed(folder: Path, tmp_path: Path):
    """`dealerbot record` with the browser's window shown, on a private X display (headless
    where there is no Xvfb)."""
    args = ["record", "usedcars2", "--screen", "car", "--path", "/cars/add/", "--script", "drive.py"]
    if not (shutil.which("Xvfb") and shutil.which("xdotool")):
        return _run(folder, *args, "--headless")
    from dealerbot.desktop.display import start_virtual_display

    xvfb, env = start_virtual_display(tmp_path)
    try:
        return dealerbot(args, folder, DEALERBOT_USEDCARS2_PASSWORD=DEMO_PASSWORD, **env)
    finally:
        xvfb.terminate()
        xvfb.wait(5)


def _import(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("generated_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # another Python and pytest started for one test: ~10 s
def test_the_generated_test_passes_under_pytest_in_the_project_folder(tmp_path):
    made = _run(tmp_path, "init", "shop_portal", "--columns", "order_no=订单号,customer=客户", "--personal", "customer")
    assert made.returncode == 0, made.stdout + made.stderr
    own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert own.returncode == 0 and "1 passed" in own.stdout, own.stdout + own.stderr

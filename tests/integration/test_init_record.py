"""A new portal started with the two tools that write its YAML: `dealerbot init` scaffolds a
project that runs as written against the sandbox's used-car platform (its selector check, its
reading bot against the platform's admin ground truth, its own test under pytest), and
`dealerbot record` turns a scripted click-through, recorded by Playwright's recorder (codegen's
engine), into named selector entries with fallbacks merged into the selector file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dealerbot.sandbox.usedcars import DEMO_PASSWORD

from .test_cli import dealerbot
from .test_own_portal import Platform, _sheet

pytestmark = pytest.mark.browser


@pytest.fixture
def platform(sandbox):
    p = Platform(sandbox)
    p.reset()
    yield p
    p.reset()
    p.http.close()


def _run(folder: Path, *args: str):
    return dealerbot(list(args), folder, DEALERBOT_USEDCARS2_PASSWORD=DEMO_PASSWORD)


def test_init_writes_a_portal_that_reads_every_car_and_record_adds_named_selectors(tmp_path, sandbox, platform):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "dealerbot.toml").write_text("# the shop's own settings\n[run]\nbackoff_seconds = 0.05  # fast\n", encoding="utf-8")
    made = _run(folder, "init", "usedcars2", "--url", sandbox.usedcars_url, "--title", "二手车平台")
    assert made.returncode == 0, made.stdout + made.stderr
    config = (folder / "dealerbot.toml").read_text(encoding="utf-8")
    assert config.startswith("# the shop's own settings\n[run]\nbackoff_seconds = 0.05  # fast\n")  # kept as it was
    assert f'[portals.usedcars2]\nurl = "{sandbox.usedcars_url}"' in config

    again = _run(folder, "init", "usedcars2")
    assert again.returncode == 2 and "selectors/usedcars2.yaml 已存在" in again.stderr  # nothing overwritten
    assert (folder / "dealerbot.toml").read_text(encoding="utf-8") == config

    check = _run(folder, "selectors", "check", "usedcars2")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "missing" not in check.stdout and "login.username" in check.stdout

    read = _run(folder, "run", "usedcars2-list")
    assert read.returncode == 0, read.stdout + read.stderr
    exported = _run(folder, "export", "-o", "cars.xlsx")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    rows = _sheet(folder / "cars.xlsx", "二手车平台")
    truth = platform.cars()
    assert sorted(r["车架号"] for r in rows) == sorted(c["vin"] for c in truth)  # every car, three pages
    first = next(r for r in rows if r["车架号"] == truth[0]["vin"])
    assert first["品牌"] == truth[0]["brand"] and first["车主"] == truth[0]["owner_name"]

    own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=folder,
                         capture_output=True, text=True, timeout=120)
    assert own.returncode == 0 and "1 passed" in own.stdout, own.stdout + own.stderr


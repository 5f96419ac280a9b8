"""Hostile review workbooks given to `dealerbot import-review` and to the console's 审核 page, both
real processes: a zip bomb, a corrupted deflate stream, entity expansion, an external entity, a zip
whose sizes lie, an .xls and an .ods. Each is refused with a message naming the file (exit 2 / a
4xx page, never a traceback or a 500), the ledger is unchanged, and the bomb never costs the
process more than a modest amount of memory (its peak RSS is measured)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hostile_xlsx import billion_laughs, corrupt_deflate, external_entity, lying_sizes, ods_file, xls_file, zip_bomb

from dealerbot.rekey.ledger import CustomerPlan, PlannedAction
from dealerbot.review.sheets import review_sheets
from dealerbot.review.workbook import write_workbook
from dealerbot.store import Store

from .conftest import console_login

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="peak memory read from Linux's getrusage and /proc")

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "console-pass-1"
PEAK_LIMIT_MB = 400
SECRET = "the-secret-text-of-a-local-file"
VALUES = {"model_code": "DMS-GX7L", "color": "曜石黑", "vin": "", "price": "239800.00", "deposit": "0.00",
          "delivery_date": "2026-12-20", "oem_order_no": "", "status": "待配车"}
NEW = {"name": "王芳", "mobile": "13812345678", "id_number": "11010519491231002X", "address": "杭州市"}
# Runs the CLI in this very process and prints its peak resident memory (KB) when it exits.
PEAK = ("import atexit, resource, runpy, sys\n"
        "atexit.register(lambda: print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
        "sys.argv = ['dealerbot', *sys.argv[1:]]\n"
        "runpy.run_module('dealerbot.cli', run_name='__main__')\n")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(COLUMNS="200", NO_COLOR="1", DEALERBOT_CONSOLE_PASSWORD=PASSWORD)
    return env


def _ledger(home: Path) -> dict[int, tuple[str, str]]:
    store = Store.open(f"sqlite:///{home / 'var' / 'dealerbot.sqlite'}")
    try:
        return {a.id: (a.state, a.stored_checksum) for a in store.actions()}
    finally:
        store.close()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A dealership folder whose store has planned actions, one of them approved, and a review
    workbook exported from it (the hostile files are made from it: they carry its marker)."""
    home = tmp_path / "shop"
    (home / "var").mkdir(parents=True)
    shutil.copy(ROOT / "dictionary.yaml", home / "dictionary.yaml")
    (home / "dealerbot.toml").write_text("[run]\nbackoff_seconds = 0.05\n", encoding="utf-8")
    store = Store.open(f"sqlite:///{home / 'var' / 'dealerbot.sqlite'}")
    try:
        plans = [PlannedAction("create_contract", f"XS20260000{i:02d}", dict(VALUES, oem_order_no=f"XS20260000{i:02d}"),
                               customer=CustomerPlan("new", values=NEW)) for i in range(1, 6)]
        store.save_plan([], [(p, True) for p in plans], [{
            "oem_order_no": p.natural_key, "contract_no": None, "reconcile_class": "create", "reason": "", "changes": "[]",
            "base": "{}"} for p in plans])
        first = store.actions()[0]
        assert not store.review([{"id": first.id, "checksum": first.stored_checksum, "decision": "approve"}], "审核员")
        sheets, _ = review_sheets(store)
        write_workbook(tmp_path / "review.xlsx", [], sheets)
    finally:
        store.close()
    yield home


def _hostile(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each hostile file and a word its refusal must contain."""
    src = tmp_path / "review.xlsx"
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    h = tmp_path / "hostile"
    h.mkdir()
    return {
        "bomb": (zip_bomb(src, h / "炸弹.xlsx"), "过大"),
        "lying": (lying_sizes(src, h / "lying.xlsx"), "损坏"),
        "corrupt": (corrupt_deflate(src, h / "corrupt.xlsx"), "损坏"),
        "laughs": (billion_laughs(src, h / "laughs.xlsx"), "实体"),
        "external": (external_entity(src, h / "external.xlsx", secret), "实体"),
        "xls": (xls_file(h / "old.xlsx"), "请另存为 .xlsx"),
        "ods": (ods_file(h / "calc.ods"), "请另存为 .xlsx"),
    }


def test_hostile_workbooks_are_refused_by_import_review_naming_the_file(folder, tmp_path):
    before = _ledger(folder)
    peaks = {}
    for kind, (path, word) in _hostile(tmp_path).items():
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", PEAK, "import-review", str(path)], cwd=folder, env=_env(),
                                capture_output=True, text=True, timeout=300)
        peaks[kind] = int(re.search(r"PEAK_KB (\d+)", result.stderr).group(1)) // 1024
        out = result.stdout + result.stderr
        assert result.returncode == 2, (kind, out[-3000:])
        assert "Traceback" not in out and str(path) in result.stderr and word in result.stderr, (kind, out[-3000:])
        assert SECRET not in out
        assert "已导入" not in result.stdout
        assert _ledger(folder) == before, kind  # nothing applied: the approval still there, the rest still planned
        print(f"import-review {kind}: exit {result.returncode}, peak {peaks[kind]} MB, {time.monotonic() - started:.1f} s")
    assert peaks["bomb"] < PEAK_LIMIT_MB, peaks


def _vm_hwm_mb(pid: int) -> int:
    """A process's peak resident memory (Linux's VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) // 1024


def _vm_rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) // 1024


def test_hostile_workbooks_uploaded_in_the_console_get_a_page_naming_the_file(folder, tmp_path):
    hostile = _hostile(tmp_path)
    before = _ledger(folder)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "console", "--port", str(port)], cwd=folder, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=300) as web:
            assert console_login(web, PASSWORD, proc).url.path == "/"  # 今日
            csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/review").text).group(1)
            start_mb = _vm_rss_mb(proc.pid)
            for kind, (path, word) in hostile.items():
                with path.open("rb") as fh:
                    answer = web.post("/review", data={"csrf": csrf}, files={"file": (path.name, fh)})
                assert 400 <= answer.status_code < 500, (kind, answer.status_code, answer.text[-2000:])
                error = re.search(r'id="error"[^>]*>(.*?)<', answer.text, re.S)
                assert error and path.name in error.group(1) and word in error.group(1), (kind, answer.text[-2000:])
                assert SECRET not in answer.text
                assert _ledger(folder) == before, kind
                print(f"console {kind}: HTTP {answer.status_code}, RSS {_vm_rss_mb(proc.pid)} MB, "
                      f"peak {_vm_hwm_mb(proc.pid)} MB")
            peak, after = _vm_hwm_mb(proc.pid), _vm_rss_mb(proc.pid)
            print(f"console: RSS {start_mb} MB before the uploads, peak {peak} MB, {after} MB after")
            assert peak < PEAK_LIMIT_MB and after < start_mb + 100
            assert web.get("/review").status_code == 200  # still serving
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    out = proc.stdout.read() if proc.stdout else ""
    assert "Traceback" not in out, out[-3000:]

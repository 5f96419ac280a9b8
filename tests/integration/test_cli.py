"""The `dealerbot` command as an operator uses it (a real subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from .conftest import OEM_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def dealerbot(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    full_env.update(env, COLUMNS="160", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "dealerbot.cli", *args], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=240,
    )


def _config(tmp_path: Path, sandbox, extra: str = "") -> None:
    (tmp_path / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sandbox.oem_url}"\n[dms]\nurl = "{sandbox.dms_url}"\n[run]\nbackoff_seconds = 0.05\n{extra}',
        encoding="utf-8",
    )


def test_run_runs_export_and_failure_exit_codes(tmp_path, sandbox, clean_sandbox):
    _config(tmp_path, sandbox)
    ok = dealerbot(["run", "oem-customers"], tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "oem-customers" in ok.stdout and "成功" in ok.stdout

    # The saved login makes the password irrelevant; without it the wrong one is refused.
    for state in (tmp_path / "state").glob("*.json"):
        state.unlink()
    bad = dealerbot(["run", "oem-orders"], tmp_path, DEALERBOT_OEM_PASSWORD="not-the-password")
    assert bad.returncode == 2  # configuration: the password
    assert "refused the login" in bad.stdout and "运行日志 (run log)" in bad.stdout
    assert "not-the-password" not in bad.stdout + bad.stderr

    again = dealerbot(["run", "oem-orders"], tmp_path, DEALERBOT_OEM_PASSWORD="not-the-password")
    assert again.returncode == 2 and "不再尝试" in again.stderr + again.stdout
    retry = dealerbot(["credentials", "retry", "oem"], tmp_path)
    assert retry.returncode == 0 and "再次尝试" in retry.stdout
    tried = dealerbot(["run", "oem-orders"], tmp_path, DEALERBOT_OEM_PASSWORD="not-the-password")
    assert tried.returncode == 2 and "refused the login" in tried.stdout  # typed once more, as asked

    history = dealerbot(["runs"], tmp_path)
    assert history.returncode == 0 and "成功" in history.stdout and "失败" in history.stdout

    exported = dealerbot(["export", "-o", "review.xlsx"], tmp_path)
    assert exported.returncode == 0, exported.stderr
    wb = load_workbook(tmp_path / "review.xlsx")
    assert "厂家客户" in wb.sheetnames

    unknown = dealerbot(["run", "no-such-bot"], tmp_path)
    assert unknown.returncode == 2 and "available: dms-contracts" in unknown.stderr


def test_missing_password_and_literal_password_are_explained(tmp_path, sandbox):
    _config(tmp_path, sandbox)
    missing = dealerbot(["run", "oem-customers"], tmp_path)
    assert missing.returncode == 2 and "DEALERBOT_OEM_PASSWORD" in missing.stdout
    _config(tmp_path, sandbox, extra='[dms]\n')
    (tmp_path / "dealerbot.toml").write_text('[oem]\nurl = "http://127.0.0.1:1"\npassword = "Oem@2026!"\n', encoding="utf-8")
    literal = dealerbot(["run", "oem-customers"], tmp_path)
    assert literal.returncode == 2
    assert "dealerbot.toml" in literal.stderr and "[oem] password" in literal.stderr and "DEALERBOT_OEM_PASSWORD" in literal.stderr


def test_bad_config_value_names_the_key(tmp_path):
    (tmp_path / "dealerbot.toml").write_text("[run]\nconcurrency = 0\n", encoding="utf-8")
    result = dealerbot(["runs"], tmp_path)
    assert result.returncode == 2 and "run.concurrency" in result.stderr


def test_dictionary_check_lists_each_code_the_file_lacks_with_its_order_count(tmp_path, sandbox, clean_sandbox):
    import shutil

    _config(tmp_path, sandbox)
    shutil.copy(Path(__file__).resolve().parents[2] / "dictionary.yaml", tmp_path / "dictionary.yaml")
    read = dealerbot(["run", "oem-orders", "--full"], tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD)
    assert read.returncode == 0, read.stdout + read.stderr
    carrying = sum(o["model_code"] == "EV9-AWD-LTD" for o in clean_sandbox.orders())  # the new model
    assert carrying > 0
    check = dealerbot(["dictionary", "check"], tmp_path)
    assert check.returncode == 2, check.stdout + check.stderr
    rows = [line for line in check.stdout.splitlines() if "EV9-AWD-LTD" in line]
    assert len(rows) == 1 and rows[0].split("│")[-2].strip() == str(carrying), check.stdout
    assert "GX7-25T-LUX" not in check.stdout  # mapped codes are not listed


def test_bots_and_selectors_check(tmp_path, sandbox):
    listed = dealerbot(["bots"], tmp_path)
    assert listed.returncode == 0
    for name in ("oem-orders", "oem-customers", "dms-customers", "dms-contracts"):
        assert name in listed.stdout
    _config(tmp_path, sandbox)
    (tmp_path / "selectors").mkdir()
    text = (ROOT / "selectors" / "oem.yaml").read_text(encoding="utf-8")
    text = text.replace('  orders.export:\n    - css: "#export-xlsx"', '  orders.export:\n    - css: "#export-button-v2"')
    text = text.replace('  orders.table:\n    - css: "#orders-table"', '  orders.table:\n    - css: "#orders-grid-v2"')
    (tmp_path / "selectors" / "oem.yaml").write_text(text, encoding="utf-8")
    check = dealerbot(["selectors", "check", "oem"], tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD)
    assert check.returncode == 1, check.stdout + check.stderr  # something is missing
    lines = {line.split("│")[1].strip(): line for line in check.stdout.splitlines() if line.count("│") >= 3}
    assert "fallback" in lines["orders.export"]
    assert "missing" in lines["orders.table"]
    assert " ok " in lines["login.username"]
    assert " ok " in lines["notice.ack"]
    # What the console's 状态 page shows: when the selectors were last checked, and the result.
    recorded = json.loads((tmp_path / "state" / "selectors-check-oem.json").read_text(encoding="utf-8"))
    assert recorded["missing"] >= 1 and recorded["fallback"] >= 1 and recorded["at"].startswith("20")


def test_sandbox_port_in_use_says_which(tmp_path, sandbox):
    port = sandbox.oem_url.rsplit(":", 1)[1]
    result = dealerbot(["sandbox", "--oem-port", port, "--dms-port", "0"], tmp_path)
    assert result.returncode == 2 and port in (result.stdout + result.stderr)


def test_sandbox_bad_config_value_names_the_key(tmp_path):
    (tmp_path / "dealerbot.toml").write_text("[sandbox]\nerror_rate = 7\n", encoding="utf-8")
    result = dealerbot(["sandbox"], tmp_path)
    assert result.returncode == 2 and "error_rate" in result.stderr


def test_password_stored_with_credentials_set_is_used_by_a_run(tmp_path, sandbox, clean_sandbox):
    _config(tmp_path, sandbox)
    keyring_env = {
        "PYTHON_KEYRING_BACKEND": "integration.keyring_backend.FileKeyring",
        "DEALERBOT_TEST_KEYRING_FILE": str(tmp_path / "keyring.json"),
        "PYTHONPATH": str(ROOT / "tests"),
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    full_env.update(keyring_env, COLUMNS="160")
    stored = subprocess.run(
        [sys.executable, "-m", "dealerbot.cli", "credentials", "set", "oem"], cwd=tmp_path, env=full_env,
        input=f"{OEM_PASSWORD}\n{OEM_PASSWORD}\n", capture_output=True, text=True, timeout=60,
    )
    assert stored.returncode == 0, stored.stdout + stored.stderr
    assert "FileKeyring" in stored.stdout
    assert OEM_PASSWORD not in stored.stdout + stored.stderr  # the prompt does not echo it
    ran = dealerbot(["run", "oem-customers"], tmp_path, **keyring_env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert clean_sandbox.counters()["logins"] >= 1


def test_everything_a_run_leaves_is_private_to_the_user(tmp_path, sandbox, clean_sandbox):
    """The store and its -wal/-shm, logs, evidence, saved logins and workbooks hold customers'
    data: 0600 files in 0700 folders."""
    import stat

    _config(tmp_path, sandbox)
    ok = dealerbot(["run", "oem-customers"], tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for state in (tmp_path / "state").glob("*.json"):
        state.unlink()
    failed = dealerbot(["run", "oem-orders"], tmp_path, DEALERBOT_OEM_PASSWORD="wrong-password")
    assert failed.returncode == 2  # leaves evidence: screenshot, page, trace
    assert dealerbot(["export", "-o", "out/review.xlsx"], tmp_path).returncode == 0
    made = [p for d in ("logs", "var", "out", "state") for p in [tmp_path / d, *(tmp_path / d).rglob("*")]]
    assert any(p.name.endswith("-screenshot.png") for p in made) and any(p.name == "dealerbot.sqlite" for p in made)
    wrong = [f"{p.relative_to(tmp_path)} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in made
             if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)]
    assert not wrong, wrong


def test_help_version_and_an_empty_history(tmp_path):
    helped = dealerbot(["run", "--help"], tmp_path)
    assert helped.returncode == 0 and "--dry-run" in helped.stdout and "<bool>" not in helped.stdout
    version = dealerbot(["--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("dealerbot ")
    empty = dealerbot(["runs"], tmp_path)
    assert empty.returncode == 0 and "no runs yet" in empty.stdout


def test_a_second_run_of_the_same_bot_and_account_does_not_start(tmp_path, sandbox, clean_sandbox):
    _config(tmp_path, sandbox)
    clean_sandbox.behave("dms", slow_rate=1.0, slow_ms=700)  # the first run takes a few seconds
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_DMS_PASSWORD="Dms@2026!", COLUMNS="160")
    first = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "run", "dms-customers"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import time

        deadline = time.monotonic() + 30
        while not list((tmp_path / "state" / "locks").glob("*.lock")) and time.monotonic() < deadline:
            time.sleep(0.1)
        second = dealerbot(["run", "dms-customers"], tmp_path, DEALERBOT_DMS_PASSWORD="Dms@2026!")
        assert second.returncode == 2 and "already running" in second.stderr, second.stdout + second.stderr
        other = dealerbot(["run", "oem-customers"], tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD)
        assert other.returncode == 0, other.stdout + other.stderr  # another bot is not held up
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err


def test_without_a_config_file_a_run_says_which_portals_it_uses(tmp_path):
    result = dealerbot(["run", "oem-customers"], tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD,
                       DEALERBOT_RUN__RETRIES="0", DEALERBOT_OEM__URL="http://127.0.0.1:9")
    assert "没有找到 dealerbot.toml" in result.stderr and "http://127.0.0.1:9" in result.stderr
    assert result.returncode == 1  # nothing listens there: a portal failure, said as such


def test_output_into_a_pipe_keeps_long_paths_whole(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_") and k != "COLUMNS"}
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "dealerbot.toml"
    deep.parent.mkdir(parents=True)
    deep.write_text("[run]\nconcurrency = 0\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "dealerbot.cli", "runs", "-c", str(deep)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and str(deep) in result.stderr  # one line, not broken at 80 columns


def test_a_killed_run_shows_what_it_had_stored(tmp_path, sandbox, clean_sandbox):
    import signal
    import sqlite3
    import time

    _config(tmp_path, sandbox)
    clean_sandbox.behave("oem", slow_rate=1.0, slow_ms=400)  # about 15 s for the 150 orders
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, COLUMNS="160")
    run = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "run", "oem-orders"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "var" / "dealerbot.sqlite"
    stored = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not stored:
            time.sleep(0.2)
            try:
                with sqlite3.connect(db) as conn:
                    row = conn.execute("SELECT counts FROM runs").fetchone()
            except sqlite3.Error:  # not created yet
                continue
            stored = __import__("json").loads(row[0]).get("stored", 0) if row else 0
        assert stored, "the run stored nothing to kill it after"
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(10)
    history = dealerbot(["runs"], tmp_path)
    assert "已中断" in history.stdout and "运行中" not in history.stdout
    line = next(x for x in history.stdout.splitlines() if "oem-orders" in x)
    assert int(line.split()[-2]) >= stored  # read (读取/写入, before 拒绝/失败), as saved with the last batch


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A folder `dealerbot demo --orders 80 -o final.xlsx` ran in (80: both kinds of refusal), once
    for the tests that look at what a demo leaves (a demo is a whole chain: half a minute)."""
    folder = tmp_path_factory.mktemp("demo")
    done = dealerbot(["demo", "--orders", "80", "-o", "final.xlsx"], folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "final.xlsx" in done.stdout
    return folder, done


def test_the_demo_leaves_a_final_workbook_of_what_waits_what_cannot_be_written_and_what_was_written(demo_folder):
    """`dealerbot demo` (what `./run.sh demo` runs) in an empty folder: the final workbook a user
    opens has 待处理 (what still waits for a person), 无法处理 (each refused order and why: no
    consent, a model the dictionary lacks...) and 写入结果 (exactly the ten new contracts the demo's
    reviewer approved, written and checked)."""
    from dealerbot.cli.demo import DEMO_APPROVALS

    tmp_path, done = demo_folder

    def rows(path: Path, title: str) -> list[dict]:
        ws = load_workbook(path, read_only=True)[title]
        header, *body = list(ws.iter_rows(values_only=True))
        return [dict(zip(header, r, strict=False)) for r in body if any(v is not None for v in r)]

    [reviewed] = (tmp_path / "out").glob("demo-reviewed-*.xlsx")  # the workbook the demo's reviewer filled in
    approved = {r["厂家订单号"] for r in rows(reviewed, "待处理") if r["审核"] == "同意"}
    assert len(approved) == DEMO_APPROVALS

    final = tmp_path / "final.xlsx"
    assert final.stat().st_mode & 0o077 == 0  # customer data: the user's only
    written = rows(final, "写入结果")
    assert {r["厂家订单号"] for r in written} == approved and len(written) == len(approved)
    assert all(r["操作"] == "新建合同" and r["结果"] == "已写入并核对" and r["合同号"] and r["客户编号"] for r in written)
    assert len({r["合同号"] for r in written}) == len(written)

    waiting = rows(final, "待处理")
    assert waiting and all(r["状态"] == "待审核" and not r["审核"] for r in waiting)
    assert not {r["厂家订单号"] for r in waiting} & approved  # what was written waits no more

    refused = rows(final, "无法处理")
    reasons = [r["原因"] for r in refused]
    assert refused and all(r["厂家订单号"] and r["原因"] for r in refused)
    assert any("未授权" in why for why in reasons) and any("未映射的车型代码" in why for why in reasons), reasons
    assert not {r["厂家订单号"] for r in refused} & ({r["厂家订单号"] for r in waiting} | approved)
    # The delivery reports (flow deliveries, on in the demo): reported in the sync, counted in the
    # summary; what waits for a person (an EV whose buyer did not consent, a conflict) in its sheet.
    assert "交车上报：待上报" in done.stdout and "oem-report-deliveries" in done.stdout
    held = rows(final, "待处理-交车上报")
    assert {"未授权新能源车上报（须证件号）", "与厂家记录不符"} <= {r["操作"] for r in held}, held
    assert all(r["状态"] != "待审核" for r in held if r["操作"] == "上报交车")  # only a refused report is left

    # the leads flows: every new prospect and follow-up approved and written (their runs in the
    # summary), the leads past the OEM's deadline listed for a person
    assert "leads-write" in done.stdout and "followups-write" in done.stdout and "失败 1" not in done.stdout
    overdue = rows(final, "需人工-厂家线索建潜客")
    assert overdue and all(r["记录键"].startswith("XL") and "回访已超时" in r["说明"] for r in overdue)


def test_runs_and_audit_fit_an_80_column_terminal(demo_folder, sandbox, clean_sandbox):
    """Issue #22: at 80 columns `runs` cut the run id and start time and dropped 秒, an `audit` row
    wrapped to 13 lines at 100 columns, and one header was English. Real runs and audit rows: the
    demo's chain (reads, approvals, writes) and a run refused by the portal (its error and evidence)."""
    from rich.cells import cell_len

    from dealerbot.status_text import STATUS_TEXT
    from dealerbot.store import Store

    tmp_path, _ = demo_folder  # the demo's chain (reads, approvals, writes) is in its store
    store_url = f"sqlite:///{tmp_path / 'var' / 'demo.sqlite'}"
    _config(tmp_path, sandbox)
    refused = dealerbot(["run", "oem-orders"], tmp_path, DEALERBOT_STORE__URL=store_url, DEALERBOT_OEM_PASSWORD="not-the-password")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    with Store.open(store_url) as store:
        history, audit_rows = store.runs(50, None), store.audit_rows(200, None, None)
    assert len(history) >= 6 and any(r.error for r in history) and len(audit_rows) >= 10

    def shown(command: list[str], columns: int) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-m", "dealerbot.cli", *command], cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")},
                 "COLUMNS": str(columns), "NO_COLOR": "1", "DEALERBOT_STORE__URL": store_url},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        print(result.stdout)  # what the terminal showed, for a person reading the test's output
        lines = result.stdout.splitlines()
        too_wide = [line for line in lines if cell_len(line) > columns]
        assert not too_wide, "\n".join(too_wide)
        return lines

    for columns in (80, 100):
        lines = shown(["runs", "-n", "50"], columns)
        header = next(i for i, line in enumerate(lines) if "开始" in line)
        assert "秒" in lines[header] and "状态" in lines[header] and "…" not in "\n".join(lines), "\n".join(lines)
        assert not re.search("[A-Za-z]", "".join(lines[header - 1:header + 1])), lines[header]  # Chinese headers only
        for r in history:  # each run on its own line with its id and start time whole, its seconds beside them
            seconds = f"{(r.ended_at - r.started_at).total_seconds():.0f}" if r.ended_at else "-"
            [row] = [line for line in lines if line.startswith(f"{r.run_id} ") and f" {r.started_at:%m-%d %H:%M} " in line]
            assert re.search(f" {seconds} +{STATUS_TEXT[r.status]} ", row), row

        lines = shown(["audit", "-n", "200"], columns)
        blocks = [line for line in lines if re.match(r"\d\d-\d\d \d\d:\d\d:\d\d  ", line)]
        assert len(blocks) == len(audit_rows)  # one block per audit row, headed by its time
        for row in audit_rows:
            assert any(f"{row['at']:%m-%d %H:%M:%S}" in line and row["natural_key"] in line for line in blocks)
            if row["run_id"]:
                assert any(row["run_id"] in line for line in lines)
        per_block = (len(lines) - 1) / len(audit_rows)  # the title line, then each block and the blank line before it
        assert per_block <= (7 if columns == 80 else 6), per_block

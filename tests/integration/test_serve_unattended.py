"""`dealerbot serve` started at logon (Task Scheduler, a systemd user unit): no terminal, nobody
at a prompt; the console password comes from the environment or from a private file."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import PASSWORDS, console_login
from .test_cli import _config, dealerbot

PASSWORD = "console-file-pass-1"


def _project(tmp_path: Path, sandbox) -> None:
    _config(tmp_path, sandbox)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "jobs.yaml").write_text(
        "jobs:\n  - {name: contracts, run: dms-contracts, cron: '0 3 * * *', on_start: wait}\n", encoding="utf-8")


def _password_file(folder: Path, text: str, mode: int = 0o600) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "console-password.txt"
    path.write_bytes(text.encode("utf-8"))
    path.chmod(mode)
    return path


@pytest.mark.parametrize("source", ["file", "env"])
def test_serve_with_no_terminal_takes_the_password_from_a_file_or_the_environment(tmp_path, sandbox, source):
    _project(tmp_path, sandbox)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_DMS_PASSWORD=PASSWORDS["dms"], NO_COLOR="1")
    args = ["serve", "--port", str(port)]
    if source == "file":  # written as Windows Notepad saves it: a BOM and CRLF
        args += ["--password-file", str(_password_file(tmp_path / "private", f"\ufeff{PASSWORD}\r\n"))]
        (tmp_path / "state").mkdir()  # a data folder others could open, as a checkout leaves one
        (tmp_path / "state").chmod(0o755)
    else:
        env["DEALERBOT_CONSOLE_PASSWORD"] = PASSWORD
    # As a scheduled task starts it: no terminal at all (stdin from nowhere, a session of its own).
    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", *args], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=10) as web:
            assert console_login(web, "not-the-password", proc).status_code == 401
            assert console_login(web, PASSWORD, proc).url.path == "/"  # 今日
            assert "contracts" in web.get("/schedules").text  # the scheduler runs in this process
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in out, out
    kept = tmp_path / "state" / "console-password"
    if source == "file":
        assert kept.read_text(encoding="utf-8").startswith("$argon2") and PASSWORD not in kept.read_text(encoding="utf-8")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
        assert PASSWORD not in out
        left = [p for name in ("state", "logs", "var") for p in [tmp_path / name, *(tmp_path / name).rglob("*")]]
        assert any(p.name == "console-secret" for p in left) and any(p.name == "console-sessions.sqlite" for p in left)
        wrong = [f"{p} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in left if p.exists()
                 and stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)]
        assert not wrong, wrong  # the console's and the scheduler's files: the user's alone
        # The next start with the same file keeps the hash (and with it the sessions already open).
        from dealerbot.console.auth import ConsolePassword

        before = kept.read_text(encoding="utf-8")
        assert ConsolePassword(kept.parent).adopt(PASSWORD) is False and kept.read_text(encoding="utf-8") == before
        assert ConsolePassword(kept.parent).adopt(PASSWORD + "-new") is True and kept.read_text(encoding="utf-8") != before
    else:
        assert not kept.exists()  # the environment's password is never written down


@pytest.mark.parametrize(("case", "expected"), [
    ("missing", "无法读取控制台密码文件"),
    ("world-readable", "chmod 600"),
    ("group-readable", "chmod 600"),
    ("empty", "第一行是空的"),
    ("short", "至少 8 位"),
    ("also-env", "只能用一个"),
    ("env-var-file", "chmod 600"),
])
def test_a_bad_or_missing_password_file_is_refused_with_exit_2_and_nothing_kept(tmp_path, case, expected):
    folder = tmp_path / "private"
    env: dict[str, str] = {}
    path = {
        "missing": lambda: folder / "nowhere.txt",
        "world-readable": lambda: _password_file(folder, PASSWORD, 0o644),
        "group-readable": lambda: _password_file(folder, PASSWORD, 0o640),
        "empty": lambda: _password_file(folder, "\n"),
        "short": lambda: _password_file(folder, "short\n"),
        "also-env": lambda: _password_file(folder, PASSWORD),
        "env-var-file": lambda: _password_file(folder, PASSWORD, 0o604),
    }[case]()
    args = ["serve", "--password-file", str(path)]
    if case == "also-env":
        env["DEALERBOT_CONSOLE_PASSWORD"] = PASSWORD
    if case == "env-var-file":  # the file named by the environment (a systemd unit's Environment=)
        args, env["DEALERBOT_CONSOLE_PASSWORD_FILE"] = ["serve"], str(path)
    result = dealerbot(args, tmp_path, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and (case in ("empty", "short", "also-env") or str(path) in result.stderr), result.stderr
    assert "Traceback" not in result.stderr and PASSWORD not in result.stdout + result.stderr
    assert not (tmp_path / "state" / "console-password").exists()


def test_without_any_password_and_no_terminal_the_message_names_every_way(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dealerbot.cli", "serve"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120, start_new_session=True,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}, "COLUMNS": "200"})
    assert result.returncode == 2
    assert "DEALERBOT_CONSOLE_PASSWORD" in result.stderr and "--password-file" in result.stderr

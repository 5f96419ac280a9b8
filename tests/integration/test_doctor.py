"""``dealerbot doctor`` on this machine: real browser lookup, fonts, keyring, sockets, folders.

The command itself (its lines and exit codes) runs as a subprocess for a machine that has what
a run needs, one without a browser, a read-only store folder and a broken config; the other
checks are called directly, with the real thing under them (a listening socket, the console
serving, fontconfig, Xvfb's absence, a database that does not answer)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from dealerbot.config import Settings, load_settings
from dealerbot.doctor import (
    OK,
    PROBLEM,
    WARN,
    browser_check,
    calendar_check,
    display_check,
    folders_check,
    font_check,
    passwords_checks,
    port_check,
    store_check,
    windows_fonts_check,
)

from .conftest import OEM_PASSWORD
from .test_cli import ROOT, dealerbot

FILE_KEYRING = {"PYTHON_KEYRING_BACKEND": "integration.keyring_backend.FileKeyring", "PYTHONPATH": str(ROOT / "tests")}


def _line(out: str, name: str) -> str:
    """The doctor's line for check ``name`` (with its 解决办法 line, if any)."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("[") and f"] {name}：" in line:
            fix = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].strip().startswith("解决办法") else ""
            return f"{line}\n{fix}".strip()
    raise AssertionError(f"no line for {name}:\n{out}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env.setdefault("DEALERBOT_TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    return dealerbot(["doctor", "--port", str(_free_port()), *args], tmp_path, **{**FILE_KEYRING, **env})


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str | None = None) -> Settings:
    """The settings of a project folder ``tmp_path`` (with ``toml`` as its dealerbot.toml)."""
    for name in [k for k in os.environ if k.startswith("DEALERBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    if toml is not None:
        (tmp_path / "dealerbot.toml").write_text(toml, encoding="utf-8")
    return load_settings()


def test_doctor_names_the_browser_font_and_keyring_found_here_and_passes(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from dealerbot.doctor import browser_name
    from dealerbot.web.browser import find_browser

    with sync_playwright() as pw:
        bundled = pw.chromium.executable_path
    spec = find_browser(_settings(tmp_path, monkeypatch).browser, bundled, True)  # what a run here would use
    result = _doctor(tmp_path)
    browser = _line(result.stdout, "浏览器")
    assert browser.startswith("[正常]") and browser_name(spec.executable, spec.channel) in browser, result.stdout
    if spec.executable:
        assert spec.executable in browser
    keyring = _line(result.stdout, "系统钥匙串")
    assert keyring.startswith("[正常]") and "FileKeyring" in keyring
    if shutil.which("fc-list"):
        fonts = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout.split()
        if fonts:
            font = _line(result.stdout, "中文字体")
            assert font.startswith("[正常]") and any(f.rstrip(":") in font for f in fonts), font
    assert _line(result.stdout, "控制台端口").startswith("[正常]")
    assert _line(result.stdout, "存储").startswith("[正常]") and str(tmp_path / "var") in _line(result.stdout, "存储")
    assert _line(result.stdout, "数据隐私").startswith("[正常]")
    assert not (tmp_path / "var").exists() and not (tmp_path / "logs").exists()  # the doctor creates nothing
    if calendar_check().status != PROBLEM:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "结果：" in result.stdout.splitlines()[-1]


def test_no_browser_on_path_or_from_playwright_is_a_problem_with_exit_2(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = _doctor(tmp_path, PATH=str(empty), PLAYWRIGHT_BROWSERS_PATH=str(tmp_path / "no-browsers"))
    line = _line(result.stdout, "浏览器")
    assert result.returncode == 2, result.stdout + result.stderr
    assert line.startswith(f"[{PROBLEM}]") and "没有找到可用的浏览器" in line and "解决办法" in line and "Edge" in line
    assert "问题" in result.stdout.splitlines()[-1]

    settings = _settings(tmp_path, monkeypatch)
    monkeypatch.setenv("DEALERBOT_BROWSER", "/nowhere/msedge.exe")
    named = browser_check(settings)
    assert named.status == PROBLEM and "/nowhere/msedge.exe" in named.detail


def test_a_port_held_by_a_listening_socket_is_a_problem(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        taken = port_check("127.0.0.1", port)
    assert taken.status == PROBLEM and f"127.0.0.1:{port} 已被其他程序占用" in taken.detail and "--port" in taken.fix
    assert port_check("127.0.0.1", port).status == OK  # released: free again


def test_a_port_held_by_the_dealerbot_console_itself_is_fine(settings):
    from .test_console import serving

    with serving(settings) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        running = port_check("127.0.0.1", port)
    assert running.status == OK and f"dealerbot 控制台已经在 http://127.0.0.1:{port}/ 运行" in running.detail


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` unwritable for this process: mode 0500, and for root (whom modes do not stop)
    the immutable attribute."""
    folder.chmod(0o500)
    immutable = hasattr(os, "geteuid") and os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        folder.chmod(0o700)
        pytest.skip("running as root and chattr +i is not available: cannot make a read-only folder")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o700)


def test_a_read_only_store_folder_is_a_problem_with_exit_2(tmp_path, monkeypatch):
    if shutil.which("chattr") is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root without chattr")
    locked = tmp_path / "locked"
    locked.mkdir()
    settings = _settings(tmp_path, monkeypatch, '[paths]\nvar = "locked"\n')
    with _read_only(locked):
        result = _doctor(tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD="x" * 8)
    line = _line(result.stdout, "存储")
    assert result.returncode == 2, result.stdout
    assert line.startswith(f"[{PROBLEM}]") and f"{locked} 不可写" in line and "[paths] var" in line
    assert store_check(settings).status == OK  # writable again


def test_passwords_missing_for_a_configured_portal_are_problems_and_found_ones_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FILE_KEYRING["PYTHON_KEYRING_BACKEND"])
    settings = _settings(tmp_path, monkeypatch, '[oem]\nusername = "sales01"\n')
    missing = {c.name: c for c in passwords_checks(settings)}
    assert missing["oem 密码"].status == PROBLEM and "credentials set oem" in missing["oem 密码"].fix
    monkeypatch.setenv("DEALERBOT_OEM_PASSWORD", OEM_PASSWORD)
    found = {c.name: c for c in passwords_checks(settings)}
    assert found["oem 密码"].status == OK and "DEALERBOT_OEM_PASSWORD" in found["oem 密码"].detail
    assert OEM_PASSWORD not in repr(found)
    assert found["dms 密码"].status == OK and "没有 [dms]" in found["dms 密码"].detail  # not used: no password asked
    own = {c.name: c for c in passwords_checks(_settings(tmp_path, monkeypatch, '[portals.usedcars]\nurl = "http://127.0.0.1:9"\n'
                                                                                 'username = "zhihuan01"\n'))}
    assert own["usedcars 密码"].status == PROBLEM and own["oem 密码"].status == own["dms 密码"].status == OK


def test_a_bad_config_is_a_problem_naming_the_key_and_the_other_checks_still_run(tmp_path):
    (tmp_path / "dealerbot.toml").write_text("[run]\nconcurrency = \"many\"\n", encoding="utf-8")
    result = _doctor(tmp_path)
    assert result.returncode == 2 and "run.concurrency" in _line(result.stdout, "配置文件")
    assert _line(result.stdout, "中文字体") and _line(result.stdout, "控制台端口").startswith("[正常]")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is the Linux check")
def test_the_desktop_bot_without_a_display_is_a_problem(tmp_path, monkeypatch):
    settings = _settings(tmp_path, monkeypatch, '[rekey]\nclient = "desktop"\n')
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    none = display_check(settings)
    assert none.status == PROBLEM and "DISPLAY" in none.detail
    assert display_check(_settings(tmp_path, monkeypatch, "")).status == OK  # web bots only: not needed
    if shutil.which("xdotool") and shutil.which("xclip"):
        monkeypatch.setenv("DISPLAY", ":87")  # no X server there
        gone = display_check(settings)
        assert gone.status == PROBLEM and "无法连接显示器 :87" in gone.detail


def test_a_machine_without_chinese_fonts_is_warned(tmp_path, monkeypatch):
    if not shutil.which("fc-list"):
        pytest.skip("fontconfig's fc-list is the Linux check")
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    f"<dir>{tmp_path / 'no-fonts'}</dir><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>",
                    encoding="utf-8")
    monkeypatch.setenv("FONTCONFIG_FILE", str(conf))
    missing = font_check()
    assert missing.status == WARN and "方框" in missing.detail and "fonts-noto-cjk" in missing.fix


def test_the_windows_fonts_lookup_finds_yahei_in_a_folder_laid_out_as_windows_fonts(tmp_path):
    """The lookup of the Windows branch (its folders come from %WINDIR% only on Windows): a
    folder with 微软雅黑's file name is found, one with Latin fonts only is warned about."""
    fonts, user_fonts = tmp_path / "Windows" / "Fonts", tmp_path / "LocalAppData" / "Fonts"
    fonts.mkdir(parents=True)
    user_fonts.mkdir(parents=True)
    (fonts / "arial.ttf").write_bytes(b"\0")
    missing = windows_fonts_check([fonts, user_fonts])
    assert missing.status == WARN and "中文" in missing.fix
    (user_fonts / "NotoSansSC-Regular.otf").write_bytes(b"\0")
    assert windows_fonts_check([fonts, user_fonts]).detail.startswith("NotoSansSC-Regular.otf")
    (fonts / "msyh.ttc").write_bytes(b"\0")
    found = windows_fonts_check([fonts, user_fonts])
    assert found.status == OK and found.detail.startswith(f"msyh.ttc（{fonts}")


def test_data_folders_others_can_open_are_warned_and_an_unreachable_database_is_a_problem(tmp_path, monkeypatch):
    if os.name != "posix":
        pytest.skip("POSIX modes")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs").chmod(0o755)  # as a git checkout leaves it
    settings = _settings(tmp_path, monkeypatch, '[store]\nurl = "postgresql+psycopg://dealer:secret-pw@127.0.0.1:1/none"\n')
    privacy = {c.name: c for c in folders_check(settings)}["数据隐私"]
    assert privacy.status == WARN and f"{tmp_path / 'logs'}（755）" in privacy.detail and "改为 700" in privacy.fix
    store = store_check(settings)
    assert store.status == PROBLEM and "127.0.0.1:1" in store.detail and "secret-pw" not in repr(store)


def test_the_holiday_years_known_are_named_and_a_missing_year_flagged():
    import chinese_calendar

    last = max(day.year for day in chinese_calendar.constants.holidays)
    assert calendar_check(date(last - 1, 5, 1)).status == OK
    ahead = calendar_check(date(last, 12, 7))
    assert ahead.status == WARN and f"–{last} 年" in ahead.detail and f"还没有 {last + 1} 年" in ahead.detail
    behind = calendar_check(date(last + 1, 1, 5))  # working-day jobs run Monday to Friday: a warning, not a stop
    assert behind.status == WARN and f"缺少今年（{last + 1}）" in behind.detail and "周一至周五" in behind.detail
    assert "schedules/holidays.yaml" in behind.fix and "chinesecalendar" in behind.fix


def test_the_holiday_file_counts_as_holiday_data_and_a_bad_one_is_a_problem(tmp_path, monkeypatch):
    import chinese_calendar

    from dealerbot.config import load_settings

    last = max(day.year for day in chinese_calendar.constants.holidays)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEALERBOT_CONFIG", raising=False)
    settings = load_settings(None)
    (tmp_path / "schedules").mkdir()
    holidays = tmp_path / "schedules" / "holidays.yaml"
    holidays.write_text(f"{last + 1}:\n  - {{name: 元旦, days_off: {last + 1}-01-01}}\n", encoding="utf-8")
    described = calendar_check(date(last + 1, 1, 5), settings=settings)
    assert described.status == WARN and f"还没有 {last + 2} 年" in described.detail  # this year known now
    assert f"holidays.yaml（{last + 1} 年）" in described.detail
    holidays.write_text(f"{last + 1}:\n  - {{name: 元旦, days_off: {last + 1}-01-32}}\n", encoding="utf-8")
    broken = calendar_check(date(last + 1, 1, 5), settings=settings)
    assert broken.status == PROBLEM and f"{holidays}:2" in broken.detail

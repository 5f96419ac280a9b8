"""``dealerbot doctor`` on this machine: real browser lookup, fonts, keyring, sockets, folders."""

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

from dealerbot.doctor import PROBLEM, WARN, calendar_check

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


def _calendar_ok() -> bool:
    return calendar_check().status != PROBLEM


def test_doctor_names_the_browser_font_and_keyring_found_here_and_passes(tmp_path):
    from playwright.sync_api import sync_playwright

    from dealerbot.browser import find_browser
    from dealerbot.doctor import browser_name

    with sync_playwright() as pw:
        bundled = pw.chromium.executable_path
    spec = find_browser(_defaults(tmp_path).browser, bundled, True)  # what a run here would use
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
    if _calendar_ok():
        assert result.returncode == 0, result.stdout + result.stderr
        assert "结果：" in result.stdout.splitlines()[-1]


def _defaults(tmp_path: Path):  # noqa: ANN202
    from dealerbot.config import load_settings

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return load_settings()
    finally:
        os.chdir(cwd)


def test_no_browser_on_path_or_from_playwright_is_a_problem_with_exit_2(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = _doctor(tmp_path, PATH=str(empty), PLAYWRIGHT_BROWSERS_PATH=str(tmp_path / "no-browsers"))
    line = _line(result.stdout, "浏览器")
    assert result.returncode == 2, result.stdout + result.stderr
    assert line.startswith(f"[{PROBLEM}]") and "没有找到可用的浏览器" in line and "解决办法" in line and "Edge" in line
    assert "问题" in result.stdout.splitlines()[-1]

    named = _doctor(tmp_path, DEALERBOT_BROWSER="/nowhere/msedge.exe")
    assert named.returncode == 2 and "/nowhere/msedge.exe" in _line(named.stdout, "浏览器")


def test_a_port_held_by_a_listening_socket_is_reported(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = dealerbot(["doctor", "--port", str(port)], tmp_path, **FILE_KEYRING,
                           DEALERBOT_TEST_KEYRING_FILE=str(tmp_path / "k.json"))
    line = _line(result.stdout, "控制台端口")
    assert result.returncode == 2 and line.startswith(f"[{PROBLEM}]") and f"127.0.0.1:{port} 已被其他程序占用" in line
    assert "--port" in line  # what to do


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


def test_a_read_only_store_folder_is_reported(tmp_path):
    if shutil.which("chattr") is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root without chattr")
    (tmp_path / "dealerbot.toml").write_text('[paths]\nvar = "locked"\n', encoding="utf-8")
    locked = tmp_path / "locked"
    locked.mkdir()
    with _read_only(locked):
        result = _doctor(tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD="x" * 8)
    line = _line(result.stdout, "存储")
    assert result.returncode == 2, result.stdout
    assert line.startswith(f"[{PROBLEM}]") and f"{locked} 不可写" in line and "[paths] var" in line
    writable = _doctor(tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD="x" * 8)
    assert _line(writable.stdout, "存储").startswith("[正常]")


def test_passwords_missing_for_a_configured_portal_are_problems_and_found_ones_never_shown(tmp_path):
    (tmp_path / "dealerbot.toml").write_text('[oem]\nusername = "sales01"\n', encoding="utf-8")
    missing = _doctor(tmp_path)
    assert missing.returncode == 2
    assert _line(missing.stdout, "oem 密码").startswith(f"[{PROBLEM}]") and "credentials set oem" in missing.stdout
    found = _doctor(tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD)
    assert _line(found.stdout, "oem 密码").startswith("[正常]") and "DEALERBOT_OEM_PASSWORD" in found.stdout
    assert OEM_PASSWORD not in found.stdout + found.stderr


def test_a_bad_config_is_a_problem_naming_the_key_and_the_other_checks_still_run(tmp_path):
    (tmp_path / "dealerbot.toml").write_text("[run]\nconcurrency = \"many\"\n", encoding="utf-8")
    result = _doctor(tmp_path)
    assert result.returncode == 2 and "run.concurrency" in _line(result.stdout, "配置文件")
    assert _line(result.stdout, "中文字体") and _line(result.stdout, "控制台端口").startswith("[正常]")


def test_the_desktop_bot_without_a_display_is_a_problem(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("DISPLAY is the Linux check")
    (tmp_path / "dealerbot.toml").write_text('[rekey]\nclient = "desktop"\n', encoding="utf-8")
    result = _doctor(tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD="x" * 8)
    line = _line(result.stdout, "桌面显示")
    assert result.returncode == 2 and line.startswith(f"[{PROBLEM}]") and "DISPLAY" in line
    if shutil.which("xdotool"):
        nothing = _doctor(tmp_path, DISPLAY=":87", DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD="x" * 8)
        assert _line(nothing.stdout, "桌面显示").startswith(f"[{PROBLEM}]") and "无法连接显示器 :87" in nothing.stdout


def test_a_machine_without_chinese_fonts_is_warned(tmp_path):
    if not shutil.which("fc-list"):
        pytest.skip("fontconfig's fc-list is the Linux check")
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    f"<dir>{tmp_path / 'no-fonts'}</dir><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>",
                    encoding="utf-8")
    result = _doctor(tmp_path, FONTCONFIG_FILE=str(conf))
    line = _line(result.stdout, "中文字体")
    assert line.startswith(f"[{WARN}]") and "方框" in line and "fonts-noto-cjk" in line


def test_the_holiday_years_known_are_named_and_a_missing_year_flagged():
    import chinese_calendar

    last = max(day.year for day in chinese_calendar.constants.holidays)
    assert calendar_check(date(last - 1, 5, 1)).status == "正常"
    ahead = calendar_check(date(last, 12, 7))
    assert ahead.status == WARN and f"–{last} 年" in ahead.detail and f"还没有 {last + 1} 年" in ahead.detail
    behind = calendar_check(date(last + 1, 1, 5))
    assert behind.status == PROBLEM and f"缺少今年（{last + 1}）" in behind.detail and "chinesecalendar" in behind.fix


def test_a_port_held_by_the_dealerbot_console_itself_is_fine(tmp_path, settings):
    from .test_console import serving

    with serving(settings) as (url, _):
        port = url.rsplit(":", 1)[1]
        result = dealerbot(["doctor", "--port", port], tmp_path, **FILE_KEYRING,
                           DEALERBOT_TEST_KEYRING_FILE=str(tmp_path / "k.json"))
    line = _line(result.stdout, "控制台端口")
    assert line.startswith("[正常]") and f"dealerbot 控制台已经在 http://127.0.0.1:{port}/ 运行" in line, result.stdout


def test_data_folders_others_can_open_are_warned_and_an_unreachable_database_is_a_problem(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX modes")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs").chmod(0o755)  # as a git checkout leaves it
    (tmp_path / "dealerbot.toml").write_text(
        '[store]\nurl = "postgresql+psycopg://dealer:secret-pw@127.0.0.1:1/none"\n', encoding="utf-8")
    result = _doctor(tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD="x" * 8)
    privacy = _line(result.stdout, "数据隐私")
    assert privacy.startswith(f"[{WARN}]") and f"{tmp_path / 'logs'}（755）" in privacy and "改为 700" in privacy
    store = _line(result.stdout, "存储")
    assert result.returncode == 2 and store.startswith(f"[{PROBLEM}]") and "127.0.0.1:1" in store
    assert "secret-pw" not in result.stdout + result.stderr


def test_the_windows_fonts_lookup_finds_yahei_in_a_folder_laid_out_as_windows_fonts(tmp_path):
    """The lookup of the Windows branch (its folders come from %WINDIR% only on Windows): a
    folder with 微软雅黑's file name is found, one with Latin fonts only is warned about."""
    from dealerbot.doctor import windows_fonts_check

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
    assert found.status == "正常" and found.detail.startswith(f"msyh.ttc（{fonts}")

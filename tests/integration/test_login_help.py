"""Logins that need a person (#23), end to end in real Chromium against the sandbox's OEM portal
with its captcha, SMS code and forced password change switched on:

an unattended `dealerbot run` (no TTY) stops as needs_person (exit 76) before typing anything
(no code is sent), and its message links to the run's console page; there 登录并继续 starts the
run again in the console, whose page shows a box for the captcha (its image) and then for the
SMS code (both read from the sandbox's admin API, as an eye and a phone would): a wrong code is said back and never sent again by
dealerbot, the right one logs in; the new password the portal forces is typed by the person,
kept in the keyring and used; no code or password appears in any file of the dealership's
folder; and the next unattended run on the saved login (the password now from the keyring)
asks for nothing and sends no code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from dealerbot.config import load_settings
from dealerbot.credentials import get_password, set_password
from dealerbot.running.runner import run_bot

from .conftest import OEM_PASSWORD
from .test_console import CONSOLE_PASSWORD, _wait_finished
from .test_console import serving as console_serving
from .test_console_health_schedules import file_keyring  # noqa: F401 - the fixture
from .test_run_page import _browser_page
from .test_scheduler import Receiver

PUBLIC = "http://192.168.1.20:8750"  # the console's address as the message names it
NEW_PASSWORD = "Neu@2026-1207x"
EXIT_NEEDS_PERSON = 76


def _cli_run(home: Path, bot: str) -> subprocess.CompletedProcess[str]:
    """`dealerbot run BOT` as the timetable or a script starts it: no terminal to ask on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, COLUMNS="160", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "dealerbot.cli", "run", bot], cwd=home, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)


def _scan(folder: Path, secrets: list[str], skip: tuple[str, ...]) -> list[str]:
    """Files under ``folder`` (but ``skip``) holding any of ``secrets`` (also inside zips); a
    code counts only on its own, not inside a longer number (a timestamp)."""
    import re
    import zipfile

    found = []
    for path in folder.rglob("*"):
        if not path.is_file() or path.name in skip:
            continue
        blobs = [path.read_bytes()]
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                blobs += [z.read(n) for n in z.namelist()]
        found += [f"{path}: {s}" for s in secrets for b in blobs
                  if re.search(rb"(?<![0-9])" + re.escape(s.encode()) + rb"(?![0-9])", b)]
    return found


async def _box(page, after: str = "", timeout: float = 60) -> tuple[str, str]:  # noqa: ANN001
    """Wait until the run page shows the login box (another than ``after``): its key and prompt."""
    deadline = time.monotonic() + timeout
    while True:
        box = page.locator("#login-help")
        if await box.count() and (key := await box.get_attribute("data-ask")) != after:
            return key or "", await page.inner_text("#login-help label")
        assert time.monotonic() < deadline, "the run page showed no login box"
        await page.wait_for_timeout(300)


async def test_a_login_that_needs_a_person(settings, sandbox, clean_sandbox, file_keyring, monkeypatch, tmp_path):  # noqa: F811
    receiver = Receiver()
    try:
        (tmp_path / "dealerbot.toml").write_text(
            f'[oem]\nurl = "{sandbox.oem_url}"\nlogin_steps = ["sms_code"]\n[dms]\nurl = "{sandbox.dms_url}"\n'
            f'[run]\nbackoff_seconds = 0.05\ntimeout_seconds = 15\n[notify]\nurls = ["{receiver.url}"]\n'
            f'[console]\npublic_url = "{PUBLIC}"\n', encoding="utf-8")
        clean_sandbox.behave("oem", login_sms_code=True, login_new_password=True)

        # Unattended: needs_person, exit 76, nothing typed (no code sent), a message with the link.
        cli = _cli_run(tmp_path, "oem-customers")
        assert cli.returncode == EXIT_NEEDS_PERSON, cli.stdout + cli.stderr
        assert "等待人工登录" in cli.stdout, cli.stdout
        assert clean_sandbox.get("oem", "/__admin/sms")["sent"] == 0
        [message] = receiver.messages
        link = message["message"].splitlines()[-1].removeprefix("详情：")
        assert link.startswith(f"{PUBLIC}/runs/") and "等待人工登录" in message["title"], message

        clean_sandbox.behave("oem", login_captcha=True)  # and now an image captcha on the login form too
        # The console (passwords from the keyring, as `dealerbot console` has them) on that page.
        set_password("oem", "dealer_admin", OEM_PASSWORD)
        monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
        with console_serving(load_settings(None), passwords=None) as (console, _):
            async with _browser_page(console) as page:
                await page.goto(console + link.removeprefix(PUBLIC))
                assert "门户登录需要人工" in await page.inner_text("#advice")
                await page.click("#login-continue")
                key, prompt = await _box(page)  # the captcha on the login form first, as an image
                assert "图形验证码" in prompt, prompt
                assert await page.evaluate("document.getElementById('login-captcha').naturalWidth") > 0
                captcha = clean_sandbox.get("oem", "/__admin/captcha")["answer"]
                forged = await page.request.post(page.url.split("?")[0] + "/answer", form={"answer": captcha, "key": key})
                assert forged.status == 403  # without the session's CSRF token nothing reaches the run
                await page.fill("#login-answer", "0000" if captcha != "0000" else "1111")  # misread
                await page.click("#login-answer-submit")
                key, prompt = await _box(page, after=key)  # a new image, asked again with the portal's words
                assert "图形验证码错误" in prompt, prompt
                captcha = clean_sandbox.get("oem", "/__admin/captcha")["answer"]
                await page.fill("#login-answer", captcha)
                await page.click("#login-answer-submit")
                key, prompt = await _box(page, after=key)
                assert "短信验证码" in prompt, prompt
                code = clean_sandbox.get("oem", "/__admin/sms")["code"]
                wrong = f"{(int(code) + 1) % 1_000_000:06d}"
                await page.fill("#login-answer", wrong)
                await page.click("#login-answer-submit")
                key, prompt = await _box(page, after=key)
                assert "还可尝试 2 次" in prompt and "短信验证码" in prompt, prompt  # the portal's words, asked again
                await page.wait_for_timeout(1000)
                account = clean_sandbox.get("oem", "/__admin/accounts")["D31001/dealer_admin"]
                assert account["sms_wrong"] == 1 and account["sms_sent"] == 1 and not account["locked"]  # never again by itself
                await page.fill("#login-answer", code)
                await page.click("#login-answer-submit")
                key, prompt = await _box(page, after=key)
                assert "新密码" in prompt, prompt
                assert await page.get_attribute("#login-answer", "type") == "password"
                await page.fill("#login-answer", NEW_PASSWORD)
                await page.click("#login-answer-submit")
                assert await _wait_finished(page) == "成功"
                assert "新密码已保存" in await page.inner_text("main")

        account = clean_sandbox.get("oem", "/__admin/accounts")["D31001/dealer_admin"]
        assert account["password_changed"] is True and account["sms_sent"] == 1
        assert get_password("oem", "dealer_admin") == NEW_PASSWORD
        # (the 4-digit captcha answer is masked like the code, but too short to scan binary files for)
        leaks = _scan(tmp_path, [code, wrong, NEW_PASSWORD], skip=(file_keyring.name,))
        assert not leaks, leaks

        # The saved login still works: an unattended run asks for nothing and no code is sent.
        again = await run_bot("oem-customers", load_settings(None), trigger="schedule")
        assert again.status == "succeeded", again.error
        assert clean_sandbox.get("oem", "/__admin/sms")["sent"] == 1
    finally:
        receiver.close()



def test_a_terminal_run_asks_on_its_terminal(sandbox, clean_sandbox, tmp_path):
    """`dealerbot run` on a terminal (a real pseudo-terminal): the SMS code is asked there, typed
    by the person, and the run succeeds; the code is not echoed into the run's log."""
    import pty
    import select

    (tmp_path / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sandbox.oem_url}"\nlogin_steps = ["sms_code"]\n[dms]\nurl = "{sandbox.dms_url}"\n'
        f'[run]\nbackoff_seconds = 0.05\n', encoding="utf-8")
    clean_sandbox.behave("oem", login_sms_code=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, COLUMNS="160", NO_COLOR="1")
    main, tty = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "run", "oem-customers"], cwd=tmp_path, env=env,
                            stdin=tty, stdout=tty, stderr=tty, close_fds=True)
    os.close(tty)
    seen, typed, code = b"", False, ""
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(main, 4096)
                except OSError:
                    break
            if not typed and "短信验证码".encode() in seen:
                code = clean_sandbox.get("oem", "/__admin/sms")["code"]
                os.write(main, code.encode() + b"\n")
                typed = True
        proc.wait(30)
    finally:
        os.close(main)
    assert typed, seen.decode(errors="replace")[-2000:]
    assert proc.returncode == 0, seen.decode(errors="replace")[-2000:]
    assert clean_sandbox.get("oem", "/__admin/sms")["sent"] == 1
    [log] = (tmp_path / "logs" / "runs").glob("*/run.log")
    assert code not in log.read_text(encoding="utf-8")

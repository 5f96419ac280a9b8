"""The console's 状态 and 定时任务 pages in real Chromium: a refused portal password replaced in
the console (kept in the keyring, never shown again, the refusal forgotten, the change audited),
the environment's password winning and said so, the selectors checked from a button; each
job's timetable in words, 立即运行, and a pause that survives a restart of ``dealerbot serve``.
Screenshots of each page state are kept under the test's folder (``health-*.png``,
``schedules-*.png``) for a person to look at."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import keyring
import pytest
from playwright.async_api import async_playwright
from sqlalchemy import update

from dealerbot.config import BrowserSettings
from dealerbot.credentials import set_password
from dealerbot.running.runner import run_bot
from dealerbot.store import Store
from dealerbot.web.browser import find_browser

from .conftest import DMS_PASSWORD, OEM_PASSWORD, free_port
from .keyring_backend import FileKeyring
from .test_cli import _config, dealerbot
from .test_console import _wait_finished as wait_finished
from .test_console import serving as console_serving
from .test_failures import _edit_selector

CONSOLE_PASSWORD = "console-pass-1"


@contextlib.contextmanager
def serving(settings, passwords: Mapping[str, str] | None = None) -> Iterator[tuple[str, Any]]:
    """The console for ``settings`` (passwords from the keyring and the environment, as
    `dealerbot console` has them, unless ``passwords``): its address and app."""
    with console_serving(settings, passwords) as served:
        yield served


@pytest.fixture
def file_keyring(tmp_path, monkeypatch) -> Iterator[Path]:
    """The OS keyring's API over a file of the test's (the process's backend put back after)."""
    path = tmp_path / "keyring.json"
    monkeypatch.setenv("DEALERBOT_TEST_KEYRING_FILE", str(path))
    before = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    try:
        yield path
    finally:
        keyring.set_keyring(before)


@contextlib.asynccontextmanager
async def chromium(console: str) -> AsyncIterator[Any]:
    """A real Chromium page logged in to the console at ``console``."""
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(console + "/login")
            await page.fill("#password", CONSOLE_PASSWORD)
            await page.click("#login")
            await page.wait_for_load_state()
            yield page
        finally:
            await browser.close()


async def _wait_finished(page, timeout: float = 180) -> str:
    """The run page's final status (a sync's first step may take a while here)."""
    return await wait_finished(page, timeout)


def _schedules(folder: Path, text: str) -> None:
    (folder / "schedules").mkdir(exist_ok=True)
    (folder / "schedules" / "jobs.yaml").write_text(text, encoding="utf-8")


async def test_a_refused_password_is_replaced_in_the_console_and_the_next_run_logs_in(
    settings, clean_sandbox, store, file_keyring, monkeypatch, tmp_path,
):
    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    monkeypatch.setenv("DEALERBOT_OEM_PASSWORD", OEM_PASSWORD)  # the OEM's from the environment: it wins
    _schedules(tmp_path, "jobs:\n  - {name: dms-kunden, run: dms-customers, cron: '0 6 * * *', on_start: wait}\n")
    username = settings.dms.username
    wrong = "Wrong-Pass-123"
    set_password("dms", username, wrong)  # the keyring holds a password the DMS refuses
    refused = await run_bot("dms-customers", settings)
    assert refused.status == "failed" and store.login_refusal(refused_account := _account(settings)) is not None
    logins_before = clean_sandbox.counters("dms").get("logins", 0)

    with serving(settings) as (console, _):
        async with chromium(console) as page:
            await page.goto(console + "/health")
            dms = page.locator("#portal-dms")
            assert "被门户拒绝" in await dms.inner_text()
            assert "credentials set" not in await page.content()  # nothing to type in a terminal
            await page.screenshot(path=str(tmp_path / "health-refused.png"), full_page=True)

            # The pages are not checked with the refused password either (the account could lock).
            await dms.locator("button.check-pages").click()
            assert "拒绝过现在的密码" in await page.inner_text("#error")
            assert clean_sandbox.counters("dms").get("logins", 0) == logins_before

            # Typed twice differently: refused, nothing stored, the refusal kept.
            await page.fill("#password-dms", DMS_PASSWORD)
            await page.fill("#confirm-dms", DMS_PASSWORD + "x")
            await page.click("#portal-dms button.save-password")
            assert "不一致" in await page.inner_text("#error")
            await page.screenshot(path=str(tmp_path / "health-mismatch.png"), full_page=True)
            assert json.loads(file_keyring.read_text())[f"dealerbot/dms:{username}"] == wrong
            assert store.login_refusal(refused_account) is not None

            # A form posted without the session's token is refused.
            forged = await page.request.post(console + "/health/dms/password",
                                             form={"password": "x", "confirm": "x", "csrf": "forged"})
            assert forged.status == 403

            await page.fill("#password-dms", DMS_PASSWORD)
            await page.fill("#confirm-dms", DMS_PASSWORD)
            await page.click("#portal-dms button.save-password")
            await page.wait_for_url("**/health?saved=dms*")
            assert "密码已保存。" in await page.locator("#portal-dms .password-state").inner_text()
            assert "被门户拒绝" not in await page.locator("#portal-dms").inner_text()
            assert await page.input_value("#password-dms") == "" and DMS_PASSWORD not in await page.content()
            await page.screenshot(path=str(tmp_path / "health-saved.png"), full_page=True)

            # The OEM's password comes from the environment: said so, and no form to mislead.
            oem = await page.locator("#portal-oem .environment").inner_text()
            assert oem.startswith("厂家门户的密码由管理员在服务器上设置，这里不能更换")
            assert await page.locator("#password-oem").count() == 0
            token = await page.get_attribute("input[name=csrf]", "value")
            refused_oem = await page.request.post(console + "/health/oem/password",
                                                  form={"password": "abc12345", "confirm": "abc12345", "csrf": token})
            assert refused_oem.status == 400 and "由管理员在服务器上设置" in await refused_oem.text()

            # The bot runs again from the console and logs in with the new password.
            await page.goto(console + "/schedules")
            await page.click("#job-dms-kunden button.run-now")
            assert "/runs/" in page.url
            assert await _wait_finished(page) == "成功"

    assert json.loads(file_keyring.read_text()) == {f"dealerbot/dms:{username}": DMS_PASSWORD}  # where `credentials set` keeps it
    assert store.login_refusal(refused_account) is None
    assert clean_sandbox.counters("dms").get("logins", 0) > logins_before
    [entry] = [r for r in store.audit_rows(20) if r["event"] == "password_set"]
    assert entry["actor"].startswith("控制台操作员") and entry["natural_key"] == f"dms:{username}"
    assert entry["new_values"]["refusal_cleared"] is True
    assert DMS_PASSWORD not in json.dumps(store.audit_rows(50), ensure_ascii=False, default=str)
    for path in settings.path("logs").rglob("*"):  # never in a log or a run's evidence
        if path.is_file():
            assert DMS_PASSWORD.encode() not in path.read_bytes(), path
    audit = dealerbot(["audit"], tmp_path)  # as the terminal shows the trail
    assert audit.returncode == 0 and "更换门户密码" in audit.stdout and DMS_PASSWORD not in audit.stdout, audit.stdout


def _account(settings) -> str:
    from dealerbot.running.context import account_key

    return account_key("dms", settings.dms)


async def test_the_pages_are_checked_from_the_console(settings, clean_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    monkeypatch.setenv("DEALERBOT_OEM_PASSWORD", OEM_PASSWORD)
    _edit_selector(settings, "oem", '  orders.table:\n    - css: "#orders-table"', '  orders.table:\n    - css: "#orders-grid-v2"')
    with serving(settings) as (console, _):
        async with chromium(console) as page:
            await page.goto(console + "/health")
            oem = page.locator("#portal-oem")
            assert "未检查" in await oem.locator(".check-state").inner_text()
            assert "selectors check" not in await page.content()
            await oem.locator("button.check-pages").click()
            await page.wait_for_url("**/health#portal-oem", timeout=120_000)
            shown = await oem.locator(".check-state").inner_text()
            assert "缺失 1 项" in shown and "orders.table" in shown and "联系实施人员" in shown, shown
            await page.screenshot(path=str(tmp_path / "health-checked.png"), full_page=True)
    kept = json.loads((settings.path("state") / "selectors-check-oem.json").read_text(encoding="utf-8"))
    assert kept["missing"] == 1 and kept["missing_names"] == ["orders.table"] and kept["ok"] > 10


async def test_the_timetable_in_words_run_now_and_pause(settings, clean_sandbox, store, monkeypatch, tmp_path):
    from .conftest import PASSWORDS

    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    _schedules(tmp_path, """
jobs:
  - {name: daily-sync, run: sync, cron: '30 7 * * *', days: workdays}
  - {name: customers, run: dms-customers, cron: '0 9-18 * * *', on_start: wait}
  - {name: quarterly, run: oem-orders, every: 15m}
""")
    with serving(settings, PASSWORDS) as (console, app):
        async with chromium(console) as page:
            await page.goto(console + "/schedules")
            words = {n: await page.locator(f"#job-{n} .words").inner_text() for n in ("daily-sync", "customers", "quarterly")}
            assert words == {"daily-sync": "工作日 07:30", "customers": "每小时 09:00-18:00", "quarterly": "每 15 分钟"}
            await page.screenshot(path=str(tmp_path / "schedules-words.png"), full_page=True)

            await page.click("#job-customers button.pause")
            paused = await page.locator("#job-customers .next").inner_text()
            assert "已暂停" in paused and "控制台操作员" in paused
            assert set(store.job_pauses()) == {"customers"}
            await page.screenshot(path=str(tmp_path / "schedules-paused.png"), full_page=True)
            await page.click("#job-customers button.resume")
            assert "已暂停" not in await page.locator("#job-customers .next").inner_text()
            assert store.job_pauses() == {}

            # 立即运行 on the daily sync: its run page, the chain recorded as the job's.
            await page.click("#job-daily-sync button.run-now")
            assert "/runs/" in page.url
            first = store.run(page.url.rsplit("/", 1)[1])
            assert first is not None and first.bot == "oem-orders" and first.job == "daily-sync" and first.trigger == "console"
            await page.screenshot(path=str(tmp_path / "schedules-run-now.png"), full_page=True)
            assert await _wait_finished(page) == "成功"
            deadline = time.monotonic() + 300
            while app.state.console.tasks:  # the rest of the chain: reconcile, write, workbook
                assert time.monotonic() < deadline, "the sync did not finish"
                await asyncio.sleep(0.5)
    ran = [r for r in store.runs(20) if r.job == "daily-sync"]
    assert {r.bot for r in ran} >= {"oem-orders", "oem-customers", "dms-customers", "dms-contracts"}
    assert all(r.status == "succeeded" for r in ran), [(r.bot, r.status, r.error) for r in ran]
    events = [(r["event"], r["natural_key"]) for r in store.audit_rows(10, natural_key="customers")]
    assert ("job_paused", "customers") in events and ("job_resumed", "customers") in events


def _serve(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_CONSOLE_PASSWORD=CONSOLE_PASSWORD, DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, NO_COLOR="1",
               COLUMNS="200")
    return subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in out, out
    return out


async def _wait_for_console(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "the console did not start"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) == 0:
                return
        await asyncio.sleep(0.2)


async def test_a_job_paused_in_the_console_stays_paused_after_serve_restarts(tmp_path, sandbox, clean_sandbox):
    """Paused over month-end, then the PC restarts: the job neither shows a next run nor runs,
    not even the catch-up of the firing it missed while dealerbot was off."""
    _config(tmp_path, sandbox)
    _schedules(tmp_path, "jobs:\n  - {name: contracts, run: dms-contracts, cron: '0 3 * * *', on_start: run_once}\n")
    port = free_port()
    console = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port)
    try:
        await _wait_for_console(console, proc)
        async with chromium(console) as page:
            await page.goto(console + "/schedules")
            await page.click("#job-contracts button.pause")
            assert "已暂停" in await page.locator("#job-contracts .next").inner_text()
    finally:
        _stop(proc)

    # dealerbot was off over the job's time: its last run is three days old (a catch-up is due).
    with Store.open(f"sqlite:///{tmp_path / 'var' / 'dealerbot.sqlite'}") as store:
        store.record_skipped_run("20261201-030000-dms-contracts-0001", "dms-contracts", "schedule", "earlier",
                                 job="contracts")
        t = store.tables["runs"]
        with store.engine.begin() as conn:
            conn.execute(update(t).values(started_at=datetime.now() - timedelta(days=3)))

    proc = _serve(tmp_path, port)
    try:
        await _wait_for_console(console, proc)
        async with chromium(console) as page:
            await page.goto(console + "/schedules")
            row = await page.locator("#job-contracts .next").inner_text()
            assert "已暂停" in row and "控制台操作员" in row, row
            assert await page.locator("#job-contracts button.resume").inner_text() == "恢复"
            await page.screenshot(path=str(tmp_path / "schedules-paused-after-restart.png"), full_page=True)
            await page.goto(console + "/runs")
            await page.screenshot(path=str(tmp_path / "runs-after-restart.png"), full_page=True)
    finally:
        second = _stop(proc)
    assert "job contracts is paused (by 控制台操作员" in second and "missed" not in second, second
    with Store.open(f"sqlite:///{tmp_path / 'var' / 'dealerbot.sqlite'}") as store:
        runs = [r.run_id for r in store.runs(20)]
        assert runs == ["20261201-030000-dms-contracts-0001"], runs  # no fire, no catch-up
        assert [r["event"] for r in store.audit_rows(10)] == ["job_paused"]
    listed = dealerbot(["schedule", "list"], tmp_path)
    assert listed.returncode == 0 and "每天 03:00" in listed.stdout and "已暂停" in listed.stdout, listed.stdout
    audit = dealerbot(["audit"], tmp_path)
    assert "暂停定时任务" in audit.stdout and "控制台操作员" in audit.stdout, audit.stdout
    resumed = dealerbot(["schedule", "resume", "contracts"], tmp_path)  # from a terminal, audited too
    assert resumed.returncode == 0 and "已恢复 contracts" in resumed.stdout, resumed.stdout + resumed.stderr
    assert "已暂停" not in dealerbot(["schedule", "list"], tmp_path).stdout
    with Store.open(f"sqlite:///{tmp_path / 'var' / 'dealerbot.sqlite'}") as store:
        assert store.job_pauses() == {} and store.audit_rows(1)[0]["event"] == "job_resumed"
        assert store.audit_rows(1)[0]["actor"].startswith("终端")
    unknown = dealerbot(["schedule", "pause", "no-such-job"], tmp_path)
    assert unknown.returncode == 2 and "no-such-job" in unknown.stderr


async def test_a_running_scheduler_follows_a_pause_and_a_resume_made_in_another_process(settings, monkeypatch):
    """A console (or `schedule pause`) in another process writes the pause into the store: the
    running scheduler follows it (every PAUSE_POLL_SECONDS, shortened here), and the resume too."""
    from dealerbot.running.registry import discover
    from dealerbot.schedule import scheduler as scheduling
    from dealerbot.schedule.timetable import load_timetables

    monkeypatch.setattr(scheduling, "PAUSE_POLL_SECONDS", 0.2)
    _schedules(settings.home, "jobs:\n  - {name: hourly, run: oem-orders, every: 1h, on_start: wait}\n")
    scheduler = scheduling.Scheduler(settings, load_timetables(settings.home / "schedules", discover()))
    serving = asyncio.create_task(scheduler.serve())

    async def until(paused: bool) -> None:
        deadline = time.monotonic() + 20
        while (job := scheduler.aps.get_job("hourly")) is None or (job.next_run_time is None) != paused:
            assert time.monotonic() < deadline and not serving.done(), f"the scheduler did not follow (paused={paused})"
            await asyncio.sleep(0.1)

    try:
        await until(paused=False)
        with Store.open(settings.store_url) as store:
            assert store.pause_job("hourly", "终端（clerk）")
        await until(paused=True)
        with Store.open(settings.store_url) as store:
            assert store.resume_job("hourly", "终端（clerk）")
        await until(paused=False)
    finally:
        scheduler.request_stop()
        await asyncio.wait_for(serving, 30)


async def test_no_password_yet_is_said_and_after_saving_one_the_failed_run_is_one_click_away(
    settings, clean_sandbox, store, file_keyring, monkeypatch, tmp_path,
):
    """Issue 22: with no DMS password stored, 今日 said 「未保存登录（下次运行时登录）」 and 状态
    「正常」: the first sync failed. After 保存密码 the clerk was left on 状态 with no way back to
    the failed run; the page spoke of keys (dms), environment variables and the keyring in English."""
    import keyring.backends.fail

    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    failed = await run_bot("dms-customers", settings)  # no password anywhere: it cannot log in
    assert failed.status == "failed" and failed.error_class == "CredentialsMissing"
    with serving(settings) as (console, _):
        async with chromium(console) as page:
            portals = await page.inner_text("#portals")
            assert "DMS：还没有设置密码" in portals and "未保存登录" not in portals, portals
            assert await page.get_attribute("#portals li:has-text('DMS') a.set-password", "href") == "/health#portal-dms"
            warnings = await page.inner_text("#warnings")
            assert "DMS还没有设置密码" in warnings and "设置密码" in warnings
            # Nothing synced yet: no workbook to offer.
            assert await page.locator("#download-workbook").count() == 0
            assert "同步后这里会有审核工作簿" in await page.inner_text("#approvals")
            await page.screenshot(path=str(tmp_path / "home-no-password.png"), full_page=True)

            await page.click("#portals li:has-text('DMS') a.set-password")
            assert page.url.endswith("/health#portal-dms")
            dms = page.locator("#portal-dms")
            assert "未设置" in await dms.locator(".password-state").inner_text()
            assert await dms.locator("h3").inner_text() != "dms" and (await dms.locator("h3").inner_text()).startswith("DMS")
            assert (await page.locator("#portal-oem h3").inner_text()).startswith("厂家门户")
            await page.screenshot(path=str(tmp_path / "health-no-password.png"), full_page=True)

            await page.fill("#password-dms", DMS_PASSWORD)
            await page.fill("#confirm-dms", DMS_PASSWORD + "x")
            await page.click("#portal-dms button.save-password")
            assert (await page.inner_text("#error")).startswith("DMS：两次输入的密码不一致")

            # No keyring on this machine: said in plain words, the technical detail folded away.
            keyring.set_keyring(keyring.backends.fail.Keyring())
            await page.fill("#password-dms", DMS_PASSWORD)
            await page.fill("#confirm-dms", DMS_PASSWORD)
            await page.click("#portal-dms button.save-password")
            said = await page.inner_text("#error")
            assert said == "这台电脑无法保存密码（系统钥匙串不可用），请联系管理员。", said
            assert not await page.is_visible("#error-detail code")
            assert "DEALERBOT_DMS_PASSWORD" not in said and "pypi" not in said
            await page.screenshot(path=str(tmp_path / "health-no-keyring.png"), full_page=True)
            keyring.set_keyring(FileKeyring())

            await page.fill("#password-dms", DMS_PASSWORD)
            await page.fill("#confirm-dms", DMS_PASSWORD)
            await page.click("#portal-dms button.save-password")
            await page.wait_for_url("**/health?saved=dms*")
            assert "密码已保存。" in await dms.locator(".password-state").inner_text()
            assert await dms.locator("a.rerun-failed").inner_text() == "重新运行失败的任务"
            await page.screenshot(path=str(tmp_path / "health-saved-rerun.png"), full_page=True)
            await dms.locator("a.rerun-failed").click()
            assert page.url.endswith(f"/runs/{failed.run_id}")
            await page.click("#rerun")
            assert await _wait_finished(page) == "成功"

            # 状态: the newest success by its time, not its run id; no raw key in the headings.
            await page.goto(console + "/health")
            last_ok = await page.locator("#portal-dms a[href^='/runs/']").inner_text()
            assert re_fullmatch(r"\d\d-\d\d \d\d:\d\d", last_ok), last_ok
            await page.goto(console + "/")
            assert "DMS：已保存登录" in await page.inner_text("#portals")
            assert "DMS还没有设置密码" not in await page.inner_text("#warnings")  # the OEM's is still missing
    assert json.loads(file_keyring.read_text()) == {f"dealerbot/dms:{settings.dms.username}": DMS_PASSWORD}


async def test_a_password_from_the_environment_is_said_without_naming_the_variable(settings, clean_sandbox, monkeypatch,
                                                                                   tmp_path):
    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    monkeypatch.setenv("DEALERBOT_OEM_PASSWORD", OEM_PASSWORD)
    with serving(settings) as (console, _):
        async with chromium(console) as page:
            await page.goto(console + "/health")
            note = page.locator("#portal-oem .environment")
            assert (await note.inner_text()).startswith(
                "厂家门户的密码由管理员在服务器上设置，这里不能更换；需要更换请联系管理员")
            assert not await page.locator("#portal-oem .environment details code").is_visible()
            assert "DEALERBOT_OEM_PASSWORD" in (await page.locator("#portal-oem .environment details code").text_content() or "")
            assert "正常" in await page.locator("#portal-oem .password-state").inner_text()
            await page.screenshot(path=str(tmp_path / "health-environment.png"), full_page=True)


def re_fullmatch(pattern: str, text: str) -> bool:
    import re

    return re.fullmatch(pattern, text) is not None


async def test_the_timetable_says_who_runs_it_names_jobs_and_shows_the_consoles_sync_as_the_daily_syncs_last(
    settings, clean_sandbox, store, monkeypatch, tmp_path,
):
    """Issue 22: 定时任务 showed keys (daily-sync, oem-orders), told the clerk to run `dealerbot
    serve` even when another process ran the timetable, said 上次 - for the daily sync while 今日
    showed the sync the console ran, and 今日's holiday warning named a file."""
    from datetime import date

    from dealerbot.console.home import Timetable, home_warnings
    from dealerbot.running.sync import CONSOLE_JOB
    from dealerbot.schedule.holidays import calendar_warnings

    from .conftest import PASSWORDS

    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    _schedules(tmp_path, """
jobs:
  - {name: daily-sync, run: sync, cron: '30 7 * * *', days: workdays}
  - {name: orders-daytime, run: oem-orders, every: 15m}
""")
    # 一键同步's first step, recorded as the console records it.
    synced = await run_bot("oem-orders", settings, passwords=PASSWORDS, trigger="console", job=CONSOLE_JOB)
    assert synced.ok, synced.error
    with serving(settings, PASSWORDS) as (console, _):
        async with chromium(console) as page:
            await page.goto(console + "/schedules")
            banner = await page.inner_text("#scheduler-state")
            assert "定时任务目前没有在运行，请联系管理员" in banner and "dealerbot" not in banner
            sync_row = page.locator("#job-daily-sync")
            assert (await sync_row.locator("td >> nth=0").inner_text()).startswith("每日同步")
            orders_row = page.locator("#job-orders-daytime")
            assert (await orders_row.locator("td >> nth=0").inner_text()).startswith("读取厂家订单")
            assert await orders_row.locator("td.runs").inner_text() == "读取厂家订单"
            last = await sync_row.locator("td.last").inner_text()
            recorded = store.run(synced.run_id)
            assert recorded is not None and recorded.job == CONSOLE_JOB
            assert recorded.started_at.strftime("%m-%d %H:%M") in last and "由控制台运行" in last, last
            assert await sync_row.locator("td.result").inner_text() == "成功"
            holidays = await page.inner_text("#holidays")
            assert "holidays.yaml" not in holidays and "节假日" in holidays
            await page.screenshot(path=str(tmp_path / "schedules-names.png"), full_page=True)

            # Another process of this folder runs the scheduler (its lock's pid file names it).
            locks = settings.path("state") / "locks"
            locks.mkdir(parents=True, exist_ok=True)
            (locks / "scheduler.pid").write_text(str(os.getpid()), encoding="utf-8")
            await page.reload()
            assert (await page.inner_text("#scheduler-state")).startswith("定时任务由另一个程序运行")

            # 今日: the next runs without the keys; the holiday warning asks the administrator.
            await page.goto(console + "/")
            next_runs = await page.inner_text("#next-runs")
            assert "每日同步" in next_runs and "daily-sync" not in next_runs and "orders-daytime" not in next_runs
    december = [w for w in home_warnings(settings, store, Timetable(), date(2026, 12, 20)) if "节假日" in w.text]
    assert len(december) == 1 and "请联系 dealerbot 管理员录入 2027 年节假日安排" in december[0].text
    assert "holidays.yaml" not in december[0].text and december[0].link == "/schedules#holidays"
    assert any("schedules/holidays.yaml" in w for w in calendar_warnings(settings, date(2026, 12, 20)))  # the CLI's

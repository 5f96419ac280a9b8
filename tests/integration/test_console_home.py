"""The console as the clerk's home (issue 22), in real Chromium against the sandbox: 今日 after
the login with the last sync and the approvals waiting, the review workbook downloaded from it,
一键同步 watched to its end, 立即写入DMS after a review upload written into the sandbox's DMS, and
the 机器人 page showing the bots this dealership uses. Screenshots of each page are kept under
the test's folder (``home-*.png``) for a person to look at."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openpyxl import load_workbook
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import async_playwright

from dealerbot.config import BrowserSettings
from dealerbot.rekey.ledger import AWAITING_REVIEW
from dealerbot.review.sheets import APPROVE, PENDING_HEADERS, PENDING_TITLE
from dealerbot.web.browser import find_browser

from .conftest import PASSWORDS
from .test_console import _log_in, _wait_finished, console  # noqa: F401 - the console fixture
from .test_rekey import assert_written_as_planned, plan


@contextlib.asynccontextmanager
async def _browser_page() -> AsyncIterator[Any]:
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        try:
            yield await browser.new_page(accept_downloads=True, viewport={"width": 1280, "height": 900})
        finally:
            await browser.close()


async def _text(page, selector: str) -> str:  # noqa: ANN001 - a Playwright page
    """The text of ``selector`` on a page that may reload itself meanwhile (the sync's page does)."""
    for _ in range(40):
        try:
            await page.wait_for_load_state()
            return (await page.inner_text(selector, timeout=10_000)).strip()
        except PlaywrightError:  # the page reloaded under the read
            await asyncio.sleep(0.25)
    raise AssertionError(f"{selector} could not be read")


async def _sync_finished(page, timeout: float = 300) -> str:  # noqa: ANN001
    """The sync's page reloads itself while the sync runs: its final result."""
    deadline = time.monotonic() + timeout
    while (status := await _text(page, "#sync-status")) == "运行中":
        assert time.monotonic() < deadline, "the sync did not finish"
        await asyncio.sleep(1)
    return status


def _waiting(store) -> int:  # noqa: ANN001
    return len(store.actions(states=AWAITING_REVIEW))


async def test_the_clerk_lands_on_today_downloads_the_workbook_and_syncs_with_one_button(
    console, settings, store, clean_sandbox, tmp_path,  # noqa: F811 - the fixture imported above
):
    from dealerbot.running.sync import sync

    first = await sync(settings, passwords=PASSWORDS)  # this morning's sync (`dealerbot sync`, say)
    assert first.ok, first.stopped
    waiting = _waiting(store)
    assert waiting > 0
    async with _browser_page() as page:
        await _log_in(page, console)
        assert page.url == console + "/"  # 今日, the clerk's home
        assert (await page.inner_text("header a >> nth=0")) == "今日"
        assert await _text(page, "#sync-result") == "成功"
        steps = await _text(page, "#sync-steps")
        assert "读取厂家订单" in steps and "读取DMS合同" in steps
        assert await _text(page, "#waiting") == str(waiting)
        assert "没有需要处理的失败" in await _text(page, "#failures")
        assert "厂家门户" in await _text(page, "#portals")
        await page.screenshot(path=str(tmp_path / "home-today.png"), full_page=True)

        async with page.expect_download() as info:
            await page.click("#download-workbook")
        saved = tmp_path / "from-home.xlsx"
        await (await info.value).save_as(saved)
        assert re.fullmatch(r"审核工作簿-\d{8}-\d{4}\.xlsx", (await info.value).suggested_filename)  # says what it is
        summary = dict(load_workbook(saved, read_only=True)["概要"].iter_rows(values_only=True))
        assert summary["机器人"] in {"读取厂家订单", "读取厂家客户", "读取DMS客户", "读取DMS合同", "写入DMS"}  # no bot key
        wb = load_workbook(saved, read_only=True)
        pending = [r for r in wb[PENDING_TITLE].iter_rows(min_row=2, values_only=True) if any(v is not None for v in r)]
        assert len(pending) == waiting
        summary = " ".join(str(v) for row in wb["概要"].iter_rows(values_only=True) for v in row if v is not None)
        assert "在控制台“审核”页上传" in summary and "dealerbot import-review" not in summary  # the console's way

        # 一键同步: the daily chain now, its page followed live to the end.
        await page.click("#sync-now")
        assert page.url == console + "/sync"
        await page.screenshot(path=str(tmp_path / "home-sync-running.png"), full_page=True)
        assert await _sync_finished(page) == "成功"
        await page.screenshot(path=str(tmp_path / "home-sync-done.png"), full_page=True)
        steps = await _text(page, "#sync-steps")
        assert "读取厂家客户" in steps and "失败" not in steps
        reconciled = await _text(page, "#reconciled")  # what the chain's reconciliation found
        assert reconciled.startswith("对账结果：") and "待新建" in reconciled and "冲突" in reconciled, reconciled

        # Its second run of the OEM portal used the saved login: no note about it (issue 22).
        await page.click("#sync-steps tr[data-bot='oem-customers'] a")
        assert await _wait_finished(page) == "成功"
        assert "保存的登录" not in await page.inner_text("main")

        await page.goto(console + "/")
        assert await _text(page, "#sync-result") == "成功"
        assert "控制台" in await _text(page, "#last-sync")  # started from the console
        assert await _text(page, "#waiting") == str(_waiting(store))

        # 机器人: the bots this web-DMS dealership uses, sync among them; the desktop one folded away.
        await page.goto(console + "/bots")
        shown = await page.inner_text("#bots")
        assert "一键同步" in shown and "写入DMS" in shown and "桌面客户端" not in shown
        assert "dms-rekey" not in shown and "oem-orders" not in shown  # the bots by their Chinese names
        assert not await page.is_visible("#more-bots tr[data-bot='dms-desktop-rekey']")
        await page.click("#more-bots summary")
        assert await page.is_visible("#more-bots tr[data-bot='dms-desktop-rekey']")
        await page.screenshot(path=str(tmp_path / "home-bots.png"), full_page=True)
    runs = [r for r in store.runs(50) if r.job == "console-sync"]
    assert {r.bot for r in runs} >= {"oem-orders", "oem-customers", "dms-customers", "dms-contracts"}
    assert all(r.trigger == "console" and r.status == "succeeded" for r in runs)


@pytest.mark.slow  # the default suite meets 立即写入DMS in test_clerk_morning.py, which checks the DMS the same way
async def test_write_now_after_a_review_upload_writes_the_approved_actions_into_the_dms(
    read_store, console, settings, store, clean_sandbox, tmp_path,  # noqa: F811
):
    read_store.copy_into(settings)
    plan(settings, store)
    before = len(store.actions(states=("approved",)))  # what needs no approval (the policy's) is approved already
    async with _browser_page() as page:
        await _log_in(page, console)
        async with page.expect_download() as info:
            await page.click("#download-workbook")
        path = tmp_path / "reviewed.xlsx"
        await (await info.value).save_as(path)

        # Staff approve two new contracts in the workbook (saved through openpyxl) ...
        wb = load_workbook(path)
        ws = wb[PENDING_TITLE]
        col = {h: i + 1 for i, h in enumerate(PENDING_HEADERS)}
        rows = [r for r in range(2, ws.max_row + 1)
                if ws.cell(r, col["操作"]).value == "新建合同" and ws.cell(r, col["客户编号"]).value][:2]
        assert len(rows) == 2
        for r in rows:
            ws.cell(r, col["审核"]).value = APPROVE
        wb.save(path)
        keys = {ws.cell(r, col["厂家订单号"]).value for r in rows}

        # ... upload it, and write at once.
        await page.click("#nav-review")
        await page.set_input_files("#review-file", str(path))
        await page.click("#upload")
        assert "同意 2 条" in await page.inner_text("#imported")
        assert await page.inner_text("#approved") == str(before + 2)
        assert "下次写入DMS时" not in await page.inner_text("main")
        await page.screenshot(path=str(tmp_path / "home-review-write-now.png"), full_page=True)
        approved = store.actions(states=("approved",))
        assert keys <= {a.natural_key for a in approved} and len(approved) == before + 2
        await page.click("#write-now")
        assert "/runs/" in page.url and "dms-rekey" in page.url
        assert await _wait_finished(page, timeout=180) == "成功"
        await page.screenshot(path=str(tmp_path / "home-write-run.png"), full_page=True)

        await page.goto(console + "/review")
        assert not await page.is_visible("#write-now")  # nothing approved is left waiting
    assert_written_as_planned(clean_sandbox, store, approved)  # the sandbox DMS's own ground truth


async def test_today_says_what_failed_with_what_to_do_and_warns_when_no_scheduler_runs(
    console, settings, store, clean_sandbox, tmp_path,  # noqa: F811
):
    import shutil

    from dealerbot.running.runner import run_bot

    from .conftest import ROOT

    shutil.copytree(ROOT / "schedules", settings.path("schedules"))  # the shipped timetable; no scheduler runs
    refused = await run_bot("dms-customers", settings, passwords={"dms": "not-the-password"})
    assert refused.status == "failed" and refused.error_class == "LoginRejected"
    async with _browser_page() as page:
        await _log_in(page, console)
        failures = await _text(page, "#failures")
        assert "门户拒绝了密码" in failures and "建议操作" in failures
        assert "读取DMS客户" in failures and "LoginRejected" not in failures
        assert "密码被拒绝" in await _text(page, "#portals")
        next_runs = await _text(page, "#next-runs")
        assert "每日同步" in next_runs and "daily-sync" not in next_runs  # what it does, not its key
        warnings = await _text(page, "#warnings")
        assert "调度程序没有运行" in warnings
        assert "dealerbot credentials" not in warnings + failures  # the console's way, never a CLI command
        # A year of holidays nobody entered: 今日 warns from 1 November (the sync runs Monday to Friday).
        from datetime import date

        from dealerbot.console.home import Timetable, home_warnings

        december = [w for w in home_warnings(settings, store, Timetable(), date(2026, 12, 20)) if "节假日" in w.text]
        assert len(december) == 1 and december[0].text.startswith("2027 年的节假日安排尚未录入")
        assert december[0].link == "/schedules#holidays" and "holidays.yaml" not in december[0].text
        assert not [w for w in home_warnings(settings, store, Timetable(), date(2026, 10, 20)) if "节假日" in w.text]
        assert await page.get_attribute("#failures a.fix", "href") == "/health#portal-dms"  # where its password is set
        await page.screenshot(path=str(tmp_path / "home-failure.png"), full_page=True)
        await page.click("#failures a.run")
        assert page.url.endswith(f"/runs/{refused.run_id}")

        # The failed run's workbook, from the console, says how to get everything the console's way.
        answer = await page.request.get(f"{console}/runs/{refused.run_id}/workbook")
        saved = tmp_path / "failed-run.xlsx"
        saved.write_bytes(await answer.body())
        summary = " ".join(str(v) for row in load_workbook(saved, read_only=True)["概要"].iter_rows(values_only=True)
                           for v in row if v is not None)
        assert "“全部记录”工作簿" in summary and "dealerbot export" not in summary


async def test_a_bot_already_running_is_said_with_a_link_to_the_runs_not_a_cli_command(
    console, settings, clean_sandbox, tmp_path,  # noqa: F811
):
    from dealerbot.running.registry import get_bot
    from dealerbot.running.runner import single_instance

    async with _browser_page() as page:
        await _log_in(page, console)
        with single_instance(settings, get_bot("oem-orders", home=settings.home)):  # as another process would
            await page.click("#sync-now")
            said = await page.inner_text("#error")
            assert "正在运行" in said and "dealerbot runs" not in said
            assert await page.get_attribute("#error a", "href") == "/runs"
            await page.goto(console + "/bots")
            await page.click("tr[data-bot='oem-orders'] button.run-now")
            said = await page.inner_text("#error")
            assert "读取厂家订单 正在运行" in said and "dealerbot" not in said and "oem-orders" not in said
            assert await page.get_attribute("#error a", "href") == "/runs?bot=oem-orders"
            await page.screenshot(path=str(tmp_path / "home-already-running.png"), full_page=True)


async def test_a_sync_stopped_by_a_refused_password_says_so_in_chinese_with_where_to_set_it(
    console, settings, store, clean_sandbox, tmp_path,  # noqa: F811
):
    from dealerbot.running.sync import sync

    stopped = await sync(settings, passwords={**PASSWORDS, "dms": "not-the-password"})
    assert stopped.stopped and not stopped.ok
    async with _browser_page() as page:
        await _log_in(page, console)
        await page.goto(console + "/sync")
        assert await _text(page, "#sync-status") == "失败"  # a failed step: a failed sync
        banner = await _text(page, "#sync-stopped")
        assert banner == "读取DMS客户失败，本次没有对账，也没有写入任何数据", banner
        assert not re.search(r"[A-Za-z]{3,}", banner.replace("DMS", ""))
        step = page.locator("tr.advice")
        assert "门户拒绝了密码" in await step.inner_text()
        assert await page.get_attribute("tr.advice a.set-password", "href") == "/health#portal-dms"
        steps = await _text(page, "#sync-steps")
        assert not re.search(r"\d{8}-\d{6}", steps)  # no run ids among the steps
        await page.screenshot(path=str(tmp_path / "sync-password-refused.png"), full_page=True)

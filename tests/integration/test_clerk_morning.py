"""The clerk's whole morning in the console, in real Chromium, never a terminal (issue #22's proof).

The timetable's 07:30 sync has run. The clerk logs in and lands on 今日: the last sync and how
many actions wait; downloads the review workbook, approves rows in it (saved through openpyxl, as
Excel would), uploads it and presses 立即写入DMS; watches the progress bar. The next batch fails:
the DMS refuses the saved password. The run page says so in Chinese with what to do; the clerk
sets the password in the console, goes back by 今日's failure list and presses 重新运行: success.
The sandbox DMS's own ground truth has every approved contract once.

A screenshot of each page is kept under the test's folder (``morning-NN-*.png``) for a person to
look at.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

from openpyxl import load_workbook
from playwright.async_api import Page

from dealerbot.credentials import set_password
from dealerbot.rekey.ledger import AWAITING_REVIEW
from dealerbot.review.sheets import APPROVE, PENDING_HEADERS, PENDING_TITLE
from dealerbot.running.sync import sync

from .conftest import DMS_PASSWORD, OEM_PASSWORD, ROOT
from .test_console_health_schedules import CONSOLE_PASSWORD, chromium, file_keyring, serving  # noqa: F401
from .test_rekey import assert_written_as_planned


class Shots:
    """Numbered screenshots of the morning, in order."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.n = folder, 0

    async def __call__(self, page: Page, name: str) -> None:
        self.n += 1
        await page.screenshot(path=str(self.folder / f"morning-{self.n:02d}-{name}.png"), full_page=True)


async def _status_when_done(page: Page, timeout: float = 240) -> str:
    """A run page reloads itself when the run ends: its final status."""
    deadline = time.monotonic() + timeout
    while True:
        await page.wait_for_load_state()
        try:
            status = (await page.inner_text("#status", timeout=10_000)).strip()
        except Exception:  # noqa: BLE001 - the page reloaded under the read
            status = "运行中"
        if status != "运行中":
            return status
        assert time.monotonic() < deadline, "the run did not finish"
        await asyncio.sleep(0.5)


def _approve(path: Path, count: int, skip: set[str]) -> set[str]:
    """Staff choose 同意 for ``count`` new contracts with a known customer (not in ``skip``) in
    the downloaded workbook, and save it: the orders approved."""
    wb = load_workbook(path)
    ws = wb[PENDING_TITLE]
    col = {h: i + 1 for i, h in enumerate(PENDING_HEADERS)}
    rows = [r for r in range(2, ws.max_row + 1)
            if ws.cell(r, col["操作"]).value == "新建合同" and ws.cell(r, col["客户编号"]).value
            and ws.cell(r, col["厂家订单号"]).value not in skip][:count]
    assert len(rows) == count
    for r in rows:
        ws.cell(r, col["审核"]).value = APPROVE
    wb.save(path)
    return {ws.cell(r, col["厂家订单号"]).value for r in rows}


async def _download_and_approve(page: Page, console: str, folder: Path, name: str, count: int,
                                skip: set[str]) -> set[str]:
    await page.goto(console + "/")
    async with page.expect_download() as info:
        await page.click("#download-workbook")
    path = folder / name
    await (await info.value).save_as(path)
    return _approve(path, count, skip)


async def _upload(page: Page, path: Path, approved: int) -> None:
    await page.click("#nav-review")
    await page.set_input_files("#review-file", str(path))
    await page.click("#upload")
    assert f"同意 {approved} 条" in await page.inner_text("#imported")


async def test_the_clerks_morning_from_login_to_a_fixed_password_without_a_terminal(
    settings, store, clean_sandbox, file_keyring, monkeypatch, tmp_path,  # noqa: F811 - fixtures imported above
):
    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    shutil.copytree(ROOT / "schedules", settings.path("schedules"))  # the shipped timetable: daily-sync
    set_password("oem", settings.oem.username, OEM_PASSWORD)  # kept in the keyring, as `credentials set` does
    set_password("dms", settings.dms.username, DMS_PASSWORD)
    shot = Shots(tmp_path)

    # 07:30: the timetable's daily sync (read both portals, plan, write what needs no approval).
    done = await sync(settings, trigger="schedule", job="daily-sync", workbook=True)
    assert done.ok, (done.stopped, [(r.bot, r.error) for r in done.runs])
    waiting = len(store.actions(states=AWAITING_REVIEW))
    assert waiting > 4

    with serving(settings) as (console, _):
        async with chromium(console) as page:
            # 今日: the last sync and what waits, where the login lands.
            assert page.url == console + "/"
            assert (await page.inner_text("#sync-result")).strip() == "成功"
            assert await page.inner_text("#waiting") == str(waiting)
            assert "没有需要处理的失败" in await page.inner_text("#failures")
            await shot(page, "home")

            # The workbook: two new contracts approved in it, uploaded, written at once.
            first = await _download_and_approve(page, console, tmp_path, "review-1.xlsx", 2, set())
            await _upload(page, tmp_path / "review-1.xlsx", 2)
            await shot(page, "review-uploaded")
            clean_sandbox.behave("dms", save_delay_ms=700)  # each save takes a while: a bar to watch
            await page.click("#write-now")
            assert "/runs/" in page.url and "dms-rekey" in page.url
            await page.wait_for_function(
                "() => /^\\d+ \\/ [1-9]\\d*/.test((document.getElementById('progress-text') || {}).textContent || '')",
                timeout=90_000)
            assert re.match(r"\d+ / \d+", await page.inner_text("#progress-text"))
            assert await page.locator("#log-box").get_attribute("open") is None  # the log stays folded
            await shot(page, "write-progress")
            assert await _status_when_done(page) == "成功"
            await shot(page, "write-succeeded")
            clean_sandbox.behave("dms", save_delay_ms=0)

            # Overnight the DMS's password was changed and its session ended: the saved password is
            # refused on the next batch.
            set_password("dms", settings.dms.username, "Old-Pass-2025")
            for saved in settings.path("state").glob(f"dms-{settings.dms.username}*.json"):
                saved.unlink()  # the saved login (and its password note) is of no use any more
            second = await _download_and_approve(page, console, tmp_path, "review-2.xlsx", 2, first)
            await _upload(page, tmp_path / "review-2.xlsx", 2)
            await page.click("#write-now")
            assert await _status_when_done(page) == "失败"
            failed_url = page.url
            assert "门户拒绝了密码" in await page.inner_text("#advice-title")
            assert "状态" in await page.inner_text("#advice-action")  # what to do, where
            assert await page.locator("#run-error").get_attribute("open") is None  # the detail folded
            await shot(page, "write-refused")

            # The suggested action: set the DMS password here, in the console.
            await page.click("#set-password")
            assert page.url.endswith("/health#portal-dms")
            await page.fill("#password-dms", DMS_PASSWORD)
            await page.fill("#confirm-dms", DMS_PASSWORD)
            await page.click("#portal-dms button.save-password")
            await page.wait_for_url("**/health?saved=dms*")
            assert "被门户拒绝" not in await page.locator("#portal-dms").inner_text()
            assert DMS_PASSWORD not in await page.content()
            await shot(page, "password-saved")

            # Back by 今日's list of what needs a person, to the failed run: 重新运行.
            await page.click("#nav-home")
            await page.click("#failures a.run")
            assert page.url == failed_url
            await page.click("#rerun")
            assert page.url != failed_url and "/runs/" in page.url
            assert await _status_when_done(page) == "成功"
            await shot(page, "rerun-succeeded")

            await page.click("#nav-home")
            assert "没有需要处理的失败" in await page.inner_text("#failures")
            assert await page.inner_text("#waiting") == str(waiting - 4)
            await shot(page, "home-after")

    approved = [a for a in store.actions(states=("verified",)) if a.natural_key in first | second]
    assert len(approved) == 4
    assert_written_as_planned(clean_sandbox, store, approved)  # each in the DMS once, as planned

"""The console's 操作手册: linked from every page, in Chinese, and naming every failure the run
pages can explain, in the same words."""

from __future__ import annotations

import re

from playwright.async_api import async_playwright

from dealerbot.config import BrowserSettings
from dealerbot.failure_text import ADVICE
from dealerbot.review.sheets import REMEDIES
from dealerbot.web.browser import find_browser

from .test_console import _log_in, console  # noqa: F401 - the console fixture


async def test_the_manual_is_one_click_from_every_page_and_explains_every_failure(console, tmp_path):  # noqa: F811
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await _log_in(page, console)
            for start in ("/runs", "/review", "/schedules", "/health"):
                await page.goto(console + start)
                assert await page.locator("#nav-manual").count() == 1, start
            await page.click("#nav-manual")
            text = await page.inner_text("#manual")
            assert "每天早上" in text and "状态的含义" in text and "出错时怎么办" in text
            for advice in ADVICE.values():
                assert advice.title in text and advice.action in text
            assert "{failures}" not in text and not re.search(r"dealerbot [a-z]", text)  # no command for a clerk to type
            assert await page.locator("#manual table").count() == 1  # the status table is a table
            # Issue 22: the manual says what the pages and the workbook say, in their words.
            assert "看“最近一次同步”" in text and "上次同步" not in text  # 今日's card
            for remedy in REMEDIES:  # the 处理方式 column of 无法处理, word for word
                assert remedy in text, remedy
            assert "回滚此次写入" in text and "确认，加入审核" in text and "冲突，需人工处理" in text  # the run page's words
            assert "黄色的可编辑" not in text and "表头为绿色的列" in text and "需判断" in text and "需核对" in text
            postponed = await page.inner_text("#manual tr:has-text('已推迟')")
            assert "重新运行" in postponed, postponed  # a run started by hand is not run again by itself
            await page.screenshot(path=str(tmp_path / "console-manual.png"), full_page=True)
        finally:
            await browser.close()

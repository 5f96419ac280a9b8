"""The console's login, expired sessions and error pages as a clerk meets them, in real
Chromium and over HTTP against the real console: a login with the browser fetching
/favicon.ico by itself, a form sent after the login ended, where the login leads back to, and
every error page in Chinese inside the console's layout."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from loguru import logger
from playwright.async_api import async_playwright

from dealerbot.config import BrowserSettings
from dealerbot.web.browser import find_browser

from .test_console import CONSOLE_PASSWORD, _log_in, _login, console, serving  # noqa: F401 - the console fixture

EXPIRED = "登录已过期，请重新登录"


@contextlib.asynccontextmanager
async def _browser_page() -> AsyncIterator[Any]:
    """A page of a fresh real Chromium."""
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        try:
            yield await (await browser.new_context()).new_page()
        finally:
            await browser.close()


def _end_sessions(settings) -> None:  # noqa: ANN001 - the test's Settings
    """Every open console session ends (logged in over 12 hours ago), its cookie left in the browser."""
    with contextlib.closing(sqlite3.connect(settings.path("state") / "console-sessions.sqlite")) as db, db:
        db.execute("UPDATE sessions SET created = ?", (time.time() - 13 * 3600,))


async def test_a_login_works_while_the_browser_fetches_the_favicon_and_other_pages(console):  # noqa: F811 - the fixture imported above
    """A real Chrome or Edge fetches /favicon.ico by itself while the login page is open: that,
    or any other page opened meanwhile, must not void the login form (it did: 页面已过期 (CSRF)
    at every login; chromium-headless-shell fetches no favicon)."""
    async with _browser_page() as page:
        await page.goto(console + "/login")
        icon = await page.request.get(console + "/favicon.ico")  # as the browser does, with the page's cookies
        assert icon.status in (200, 204)
        other = await page.context.new_page()
        await other.goto(console + "/runs")  # another tab, not logged in: led to the login
        assert "/login" in other.url
        assert (await page.request.get(console + "/bots", max_redirects=0)).status == 303
        await page.fill("#password", CONSOLE_PASSWORD)
        await page.click("#login")
        await page.wait_for_load_state()
        assert page.url == console + "/", await page.inner_text("body")
        assert await page.locator("#nav-home").count() == 1  # logged in: the console's menu


def test_a_stale_login_form_says_so_in_chinese_and_works_when_sent_again(console):  # noqa: F811 - the fixture imported above
    with httpx.Client(base_url=console, timeout=10) as web:
        web.get("/login")
        assert web.get("/favicon.ico").status_code in (200, 204)
        refused = web.post("/login", data={"password": CONSOLE_PASSWORD, "csrf": "from-a-page-of-yesterday"})
        assert refused.status_code == 403
        assert "页面已过期，请刷新页面后重新输入密码" in refused.text and "CSRF" not in refused.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', refused.text).group(1)  # the form shown again works
        answer = web.post("/login", data={"password": CONSOLE_PASSWORD, "csrf": csrf})
        assert answer.status_code == 303 and answer.headers["location"] == "/"


async def test_after_the_login_ended_a_page_or_a_form_leads_back_to_the_login_and_then_on(console, settings, store):  # noqa: F811 - the fixture imported above
    async with _browser_page() as page:
        await _log_in(page, console)
        assert page.url == console + "/"

        # A page opened after the login ended: the login says why, then leads to that page.
        _end_sessions(settings)
        await page.goto(console + "/runs?bot=oem-orders")
        assert "/login" in page.url
        assert await page.inner_text("#expired") == EXPIRED
        await page.fill("#password", CONSOLE_PASSWORD)
        await page.click("#login")
        await page.wait_for_load_state()
        assert page.url == console + "/runs?bot=oem-orders"

        # A form sent after the login ended: the login, in Chinese (it was mojibake: a 401
        # without a charset), and no run started; then 今日.
        await page.goto(console + "/bots")
        _end_sessions(settings)
        await page.click("tr[data-bot='oem-orders'] button.run-now")
        await page.wait_for_load_state()
        assert "/login" in page.url
        assert await page.inner_text("#expired") == EXPIRED
        await page.fill("#password", CONSOLE_PASSWORD)
        await page.click("#login")
        await page.wait_for_load_state()
        assert page.url == console + "/"

        # The login page opened with the ended session's cookie, other pages opened meanwhile:
        # the login still works.
        _end_sessions(settings)
        await page.goto(console + "/login")
        await page.request.get(console + "/favicon.ico")
        assert (await page.request.get(console + "/runs", max_redirects=0)).status == 303
        await page.fill("#password", CONSOLE_PASSWORD)
        await page.click("#login")
        await page.wait_for_load_state()
        assert page.url == console + "/"
    assert not store.runs(10)

    # The run page's live events (an EventSource, not a page): UTF-8 Chinese text.
    with httpx.Client(base_url=console, timeout=10) as web:
        assert _login(web).status_code == 303
        _end_sessions(settings)
        events = web.get("/runs/some-run/events", headers={"Accept": "text/event-stream"})
        assert events.status_code == 401 and events.text == EXPIRED
        assert "charset=utf-8" in events.headers["content-type"]


def test_the_login_leads_only_to_a_page_of_the_console(console):  # noqa: F811 - the fixture imported above
    with httpx.Client(base_url=console, timeout=10) as web:
        assert web.get("/runs?status=failed").headers["location"] == "/login?next=%2Fruns%3Fstatus%3Dfailed"
        for evil in ("//evil.com", "http://evil.com/", "https://evil.com/x", "/\\evil.com", "javascript:alert(1)", "//evil.com/runs"):
            shown = web.get("/login", params={"next": evil}).text
            assert "evil" not in shown and "javascript" not in shown, evil
            csrf = re.search(r'name="csrf" value="([^"]+)"', shown).group(1)
            answer = web.post("/login", data={"password": CONSOLE_PASSWORD, "csrf": csrf, "next": evil})
            assert answer.status_code == 303 and answer.headers["location"] == "/", evil
            web.cookies.clear()
        csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/login?next=%2Fruns%3Fstatus%3Dfailed").text).group(1)
        answer = web.post("/login", data={"password": CONSOLE_PASSWORD, "csrf": csrf, "next": "/runs?status=failed"})
        assert answer.headers["location"] == "/runs?status=failed"


@pytest.mark.parametrize(("path", "code", "said"), [
    ("/no-such-page", 404, "找不到这个页面"),
    ("/runs/no-such-run", 404, "没有这次运行"),
    ("/logout", 405, "只接收页面上的按钮提交"),  # a form's address opened as a page
    ("/boom", 500, "意外错误"),  # a page that fails unexpectedly (added below)
])
async def test_error_pages_are_chinese_pages_of_the_console(settings, clean_sandbox, monkeypatch, tmp_path, path, code, said):
    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(str(m)), level="ERROR")
    try:
        with serving(settings) as (url, app):
            @app.get("/boom")
            async def boom() -> None:
                raise RuntimeError("unexpected-failure-4711")

            async with _browser_page() as page:
                await _log_in(page, url)
                answer = await page.goto(url + path)
                assert answer.status == code
                body = await page.inner_text("body")
                await page.screenshot(path=str(tmp_path / f"console-error-{code}.png"))
                assert said in body, body
                assert await page.locator("#nav-home").count() == 1  # inside the console's layout
                assert "detail" not in body and "{" not in body and "Not Found" not in body and "Method" not in body
                assert "Traceback" not in body and "unexpected-failure-4711" not in body
                await page.click("#back-home")  # 返回今日
                assert page.url == url + "/"
    finally:
        logger.remove(sink)
    if code == 500:  # the traceback: in the log
        assert any("unexpected-failure-4711" in m and "Traceback" in m for m in logged), logged


def test_a_form_sent_incomplete_is_answered_with_a_chinese_page(console):  # noqa: F811 - the fixture imported above
    with httpx.Client(base_url=console, timeout=10) as web:
        assert _login(web).status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/review").text).group(1)
        answer = web.post("/review", data={"csrf": csrf}, headers={"Accept": "text/html"})  # no workbook
        assert answer.status_code == 422 and "提交的内容不完整" in answer.text and "返回今日" in answer.text
        assert answer.headers["content-type"].startswith("text/html") and '"detail"' not in answer.text


async def test_the_review_upload_has_a_chinese_button_and_shows_the_chosen_file(console, tmp_path):  # noqa: F811 - the fixture imported above
    """The browser's own file input says "Choose File / No file chosen" in the browser's
    language: the page has its own Chinese button and says which workbook was chosen."""
    workbook = tmp_path / "审核工作簿-已审核.xlsx"
    workbook.write_bytes(b"not read here")
    async with _browser_page() as page:
        await _log_in(page, console)
        await page.goto(console + "/review")
        button = page.locator("label[for='review-file']")
        assert await button.is_visible() and await button.inner_text() == "选择审核工作簿…"
        assert await page.inner_text("#review-file-name") == "未选择文件"
        async with page.expect_file_chooser() as chooser:
            await button.click()  # the clerk clicks the Chinese button: the file dialog opens
        await (await chooser.value).set_files(workbook)
        assert await page.inner_text("#review-file-name") == workbook.name
        await page.screenshot(path=str(tmp_path / "console-review-file.png"))

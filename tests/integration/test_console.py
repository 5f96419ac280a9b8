"""The operator console in real Chromium: log in, start bots, watch them, open a failed run's
screenshot, download the workbook, upload a review; and what it refuses. Screenshots of the main
pages are kept under the test's folder (``console-*.png``) for a person to look at."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from openpyxl import load_workbook
from playwright.async_api import async_playwright

from dealerbot.browser import find_browser
from dealerbot.config import BrowserSettings
from dealerbot.console.app import create_app

from .conftest import PASSWORDS
from .test_failures import _edit_selector

CONSOLE_PASSWORD = "console-pass-1"
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def console(settings, clean_sandbox, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, passwords=PASSWORDS), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


async def _wait_finished(page, timeout: float = 90) -> str:
    """The run page reloads itself when the run ends: its final status."""
    await page.wait_for_selector("#status", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while (status := (await page.inner_text("#status")).strip()) == "运行中":
        assert time.monotonic() < deadline, "the run did not finish"
        await asyncio.sleep(0.5)
        await page.wait_for_load_state()
    return status


async def test_the_console_runs_bots_shows_what_went_wrong_and_takes_reviews(console, settings, clean_sandbox, tmp_path):
    clean_sandbox.oem.post("/__admin/orders", json={
        "order_no": EVIL, "customer_name": "测试", "model_code": "GX3-15T-STD", "status": "已下单"}).raise_for_status()
    alerts: list[str] = []
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        page = await browser.new_page(accept_downloads=True, viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda d: (alerts.append(d.message), asyncio.ensure_future(d.dismiss())))
        try:
            # Not logged in: every page leads to the login; a wrong password is refused.
            await page.goto(console + "/runs")
            assert page.url.endswith("/login")
            await page.fill("#password", "not-the-password")
            await page.click("#login")
            assert "密码错误" in await page.inner_text("#error")
            await page.fill("#password", CONSOLE_PASSWORD)
            await page.click("#login")
            assert page.url.endswith("/bots")
            await page.screenshot(path=str(tmp_path / "console-bots.png"), full_page=True)

            # A form posted without the session's CSRF token is refused (another site cannot post).
            forged = await page.request.post(console + "/bots/oem-customers/run", form={"dry_run": ""})
            assert forged.status == 403

            # Start a bot, watch its log live, see it succeed, download its workbook.
            await page.click("tr[data-bot='oem-orders'] button.run-now")
            assert "/runs/" in page.url
            assert await _wait_finished(page) == "成功"
            await page.screenshot(path=str(tmp_path / "console-run.png"), full_page=True)
            rejects = await page.inner_text("#rejects")
            assert EVIL in rejects  # the scraped key, shown as text
            assert "身份证校验码错误" in rejects and not re.search(r"\d{17}[\dX]", rejects)  # ID numbers masked
            async with page.expect_download() as info:
                await page.click("#workbook")
            saved = tmp_path / "from-console.xlsx"
            await (await info.value).save_as(saved)
            assert "厂家订单" in load_workbook(saved, read_only=True).sheetnames

            # A run made to fail: its screenshot is shown; other evidence only downloads.
            _edit_selector(settings, "oem", '  customers.table:\n    - css: "#customers-table"',
                           '  customers.table:\n    - css: "#customers-grid-v2"')
            await page.goto(console + "/bots")
            await page.click("tr[data-bot='oem-customers'] button.run-now")
            assert await _wait_finished(page) == "失败"
            assert "customers.table" in await page.inner_text("#run-error")
            shot = await page.get_attribute("img.shot", "src")
            image = await page.request.get(console + shot)
            assert image.status == 200 and image.headers["content-type"] == "image/png"
            await page.screenshot(path=str(tmp_path / "console-failed-run.png"), full_page=True)
            run_path = page.url.split(console)[1]
            html_link = await page.get_attribute("a[href$='-page.html']", "href")
            html = await page.request.get(console + html_link)
            assert html.headers["content-type"] == "application/octet-stream"  # never rendered as a page here
            for evil_path in ("/files/..%2F..%2F..%2Fvar%2Fdealerbot.sqlite", "/files/%2E%2E", "/files/run.log"):
                answer = await page.request.get(console + run_path + evil_path)
                assert answer.status in (404, 200) and b"SQLite format" not in await answer.body()
                assert answer.status == 404 or answer.headers["content-type"].startswith("text/html")
            with httpx.Client(base_url=console, cookies={c["name"]: c["value"] for c in await page.context.cookies()}) as raw:
                # sent as typed, not normalised by a browser: the file name never leaves the run's folder
                for name in ("..%2F..%2F..%2Fvar%2Fdealerbot.sqlite", "%2E%2E%2Frun.log", "run.log"):
                    assert raw.get(f"{run_path}/files/{name}").status_code == 404

            # History filters; what is typed comes back as text, never as markup.
            await page.goto(console + "/runs?status=failed&bot=" + EVIL)
            await page.goto(console + "/runs?status=failed")
            assert "oem-customers" in await page.inner_text("#runs") and "oem-orders" not in await page.inner_text("#runs")

            # A workbook that is not a review workbook is refused, naming it, with nothing applied.
            await page.goto(console + "/review")
            not_review = tmp_path / "<img src=x onerror=alert(2)>.xlsx"
            not_review.write_bytes(saved.read_bytes())
            await page.set_input_files("#review-file", str(not_review))
            await page.click("#upload")
            assert "待处理" in await page.inner_text("#error") or "dealerbot" in await page.inner_text("#error")
            await page.screenshot(path=str(tmp_path / "console-review.png"), full_page=True)

            for name in ("schedules", "health"):
                await page.goto(f"{console}/{name}")
                await page.screenshot(path=str(tmp_path / f"console-{name}.png"), full_page=True)
            assert "dms" in await page.inner_text("#health")
        finally:
            await browser.close()
    assert not alerts, alerts  # no script of a scraped or typed value ever ran


async def test_logins_are_throttled(console):
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        page = await browser.new_page()
        try:
            for _ in range(5):
                await page.goto(console + "/login")
                await page.fill("#password", "guess")
                await page.click("#login")
            await page.goto(console + "/login")
            await page.fill("#password", CONSOLE_PASSWORD)  # even the right one waits now
            await page.click("#login")
            assert "次数过多" in await page.inner_text("#error")
            assert page.url.endswith("/login")
        finally:
            await browser.close()


def test_the_console_refuses_a_non_loopback_address_and_starts_without_a_tty_only_with_a_password(tmp_path, sandbox):
    from .test_cli import _config, dealerbot

    _config(tmp_path, sandbox)
    remote = dealerbot(["console", "--host", "0.0.0.0"], tmp_path, DEALERBOT_CONSOLE_PASSWORD=CONSOLE_PASSWORD)
    assert remote.returncode == 2 and "--allow-remote" in remote.stderr
    nopass = dealerbot(["console"], tmp_path)
    assert nopass.returncode == 2 and "DEALERBOT_CONSOLE_PASSWORD" in nopass.stderr
    assert not Path(tmp_path / "state" / "console-password").exists()


def test_serve_runs_the_console_and_the_scheduler_together_and_stops_on_sigterm(tmp_path, sandbox, clean_sandbox):
    import os
    import re
    import signal
    import subprocess
    import sys

    from .test_cli import _config

    _config(tmp_path, sandbox)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "jobs.yaml").write_text(
        "jobs:\n  - {name: contracts, run: dms-contracts, cron: '0 3 * * *', on_start: wait}\n", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_CONSOLE_PASSWORD=CONSOLE_PASSWORD, DEALERBOT_DMS_PASSWORD=PASSWORDS["dms"], NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as web:
            while True:
                assert proc.poll() is None and time.monotonic() < deadline
                try:
                    login = web.get("/login")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
            assert web.post("/login", data={"password": CONSOLE_PASSWORD, "csrf": csrf}).url.path == "/bots"
            page = web.get("/schedules").text
            assert "contracts" in page and "暂停" in page  # the scheduler runs in this process
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            assert "恢复" in web.post("/schedules/contracts/pause", data={"csrf": csrf}).text
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "已停止" in out and "Traceback" not in out


async def test_a_reviewed_workbook_uploaded_in_the_console_approves_its_rows(console, settings, store, clean_sandbox, tmp_path):
    from dealerbot.review import APPROVE, APPROVE_EDITED

    from .test_rekey import exported_pending, plan, read_both

    await read_both(settings)
    plan(settings, store)
    path = tmp_path / "reviewed.xlsx"
    wb, ws, col, rows = exported_pending(store, path)
    ws.cell(rows[0], col["审核"]).value = APPROVE
    ws.cell(rows[1], col["审核"]).value = APPROVE_EDITED
    ws.cell(rows[1], col["颜色"]).value = "曜石黑"
    wb.save(path)
    keys = [ws.cell(r, col["厂家订单号"]).value for r in rows[:2]]
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        page = await browser.new_page()
        try:
            await page.goto(console + "/login")
            await page.fill("#password", CONSOLE_PASSWORD)
            await page.click("#login")
            await page.goto(console + "/review")
            await page.set_input_files("#review-file", str(path))
            await page.click("#upload")
            assert "同意 1 条，修改后同意 1 条" in await page.inner_text("#imported")
        finally:
            await browser.close()
    approved = [store.actions(natural_key=k)[-1] for k in keys]
    assert [a.state for a in approved] == ["approved", "approved"]
    assert approved[1].new_values["color"] == "曜石黑"


async def test_the_review_page_names_approvals_a_changed_plan_dropped(console, settings, store, clean_sandbox):
    """Issue 20: an approval undone by a later plan is said to a person, with the reason."""
    from dealerbot.records import OEM_ORDER

    from .test_rekey import approve, plan, read_both

    await read_both(settings)
    plan(settings, store)
    [chosen] = approve(store, 1)
    order = store.get(OEM_ORDER, chosen.natural_key)
    colour = "冰川银" if chosen.new_values["color"] != "冰川银" else "珍珠白"
    w = store.writer("oem-later")  # the OEM portal changes the order's colour after the approval
    w.add(OEM_ORDER, {f.name: order[f.name] for f in OEM_ORDER.fields} | {"color": colour}, [])
    w.flush()
    report = plan(settings, store)
    assert [k for k, _ in report.dropped] == [chosen.natural_key]
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        page = await browser.new_page()
        try:
            await page.goto(console + "/login")
            await page.fill("#password", CONSOLE_PASSWORD)
            await page.click("#login")
            await page.goto(console + "/review")
            listed = await page.inner_text("#reapprovals")
        finally:
            await browser.close()
    assert chosen.natural_key in listed and "原已审核（测试审核员）" in listed
    assert f"{chosen.new_values['color']}→{colour}" in listed

"""The operator console in real Chromium: log in, start bots, watch them, open a failed run's
screenshot, download the workbook, upload a review; and what it refuses. Screenshots of the main
pages are kept under the test's folder (``console-*.png``) for a person to look at."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from openpyxl import load_workbook
from playwright.async_api import async_playwright

from dealerbot.config import BrowserSettings
from dealerbot.console.app import create_app, server_config
from dealerbot.web.browser import find_browser

from .conftest import PASSWORDS, console_login, free_port, wait_for_login_page
from .test_failures import _edit_selector

CONSOLE_PASSWORD = "console-pass-1"
EVIL = "<script>alert(1)</script>"


@contextlib.contextmanager
def serving(settings, passwords: Mapping[str, str] | None = PASSWORDS) -> Iterator[tuple[str, Any]]:
    """The console for ``settings`` on a free loopback port, configured as `dealerbot console`
    configures it (``passwords``: given to its runs; None: from the keyring and the environment,
    as `dealerbot console` has them): its address and its app."""
    port = free_port()
    app = create_app(settings, passwords=passwords)
    server = uvicorn.Server(server_config(app, settings, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture
def console(settings, clean_sandbox, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    with serving(settings) as (url, _):
        yield url


async def _log_in(page, console: str) -> None:  # noqa: ANN001 - a Playwright page
    """Log the browser ``page`` in to the console at ``console`` as the operator."""
    await page.goto(console + "/login")
    await page.fill("#password", CONSOLE_PASSWORD)
    await page.click("#login")


@contextlib.asynccontextmanager
async def _review_page(console: str) -> AsyncIterator[Any]:
    """A real Chromium page, logged in to the console at ``console``, on its 审核 page."""
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await _log_in(page, console)
            await page.goto(console + "/review")
            yield page
        finally:
            await browser.close()


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
            # Not logged in: every page leads to the login; a wrong password is refused; then
            # the login leads to the page asked for.
            await page.goto(console + "/runs")
            assert page.url.endswith("/login?next=%2Fruns")
            await page.fill("#password", "not-the-password")
            await page.click("#login")
            assert "密码错误" in await page.inner_text("#error")
            await page.fill("#password", CONSOLE_PASSWORD)
            await page.click("#login")
            assert page.url == console + "/runs"
            await page.goto(console + "/bots")
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
            assert "门户页面改版" in await page.inner_text("#advice-title")  # said in Chinese, detail folded
            await page.click("#run-error summary")
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
            runs_shown = await page.inner_text("#runs")
            assert "读取厂家客户" in runs_shown and "读取厂家订单" not in runs_shown  # by their Chinese names

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
            assert "DMS" in await page.inner_text("#health") and "厂家门户" in await page.inner_text("#health")
        finally:
            await browser.close()
    assert not alerts, alerts  # no script of a scraped or typed value ever ran


def _login(web: httpx.Client, password: str = CONSOLE_PASSWORD, **headers: str) -> httpx.Response:
    """The login page, then the form posted with its CSRF token (redirects not followed)."""
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/login", headers=headers).text).group(1)
    return web.post("/login", data={"password": password, "csrf": csrf}, headers=headers)


def test_forwarded_for_buys_no_guesses_and_names_no_one(tmp_path, sandbox):
    """`dealerbot console` itself: guesses sent with a new X-Forwarded-For each get no more
    tries, and the log names the real address (uvicorn believes the header from 127.0.0.1 by
    default: it took ~2,900 guesses a minute)."""
    import os
    import subprocess
    import sys

    from .test_cli import _config

    _config(tmp_path, sandbox)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_CONSOLE_PASSWORD=CONSOLE_PASSWORD, NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "console", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as web:
            wait_for_login_page(web, proc)
            started, answers = time.monotonic(), []
            for i in range(30):
                answers.append(_login(web, f"guess-{i}", **{"X-Forwarded-For": f"203.0.113.{i + 1}"}).status_code)
            seconds = time.monotonic() - started
            checked = answers.count(401)
            print(f"30 guesses in {seconds:.1f} s with a new X-Forwarded-For each: {checked} checked, "
                  f"{answers.count(429)} refused (429)")
            assert set(answers) <= {401, 429}
            assert checked <= 3 + seconds / 2, answers  # two typos free, then 1 s, 2 s, 4 s ...
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "wrong password from 127.0.0.1" in out and "203.0.113." not in out, out[-2000:]


def test_a_burst_of_wrong_passwords_keeps_the_operator_out_at_most_the_cap(settings, clean_sandbox, monkeypatch):
    """Over HTTP, with the throttle's clock in the test's hands: however many wrong passwords
    come, the wait never passes 30 s and the right password works once it is over; guesses
    are bounded to a few a minute."""
    from dealerbot.console.auth import MAX_DELAY, LoginThrottle

    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    now = [1000.0]
    with serving(settings) as (url, app), httpx.Client(base_url=url, timeout=10) as web:
        app.state.console.throttle = LoginThrottle(clock=lambda: now[0])
        checked, per_minute, waits = 0, {}, []
        while True:  # an attacker trying at every moment allowed, for ten minutes
            answer = _login(web, f"guess-{checked}")
            if answer.status_code == 429:
                wait = int(answer.headers["Retry-After"])
                assert "次数过多" in answer.text and 0 < wait <= MAX_DELAY
                waits.append(wait)
                now[0] += wait
                continue
            assert answer.status_code == 401 and "密码错误" in answer.text
            checked += 1
            minute = int((now[0] - 1000.0) // 60)
            if minute >= 10:
                break
            per_minute[minute] = per_minute.get(minute, 0) + 1
        print(f"guesses checked per minute, an attacker at every allowed moment: {per_minute}")
        assert per_minute[0] <= 8 and all(n <= 2 for m, n in per_minute.items() if m > 0)
        assert max(waits) == MAX_DELAY

        # The operator comes back in the middle of it: refused at most 30 s, then in.
        refused = _login(web)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= MAX_DELAY
        now[0] += int(refused.headers["Retry-After"])
        answer = _login(web)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert web.get("/bots").status_code == 200


def _cookie_flags(answer: httpx.Response) -> str:
    return ";".join(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith("dealerbot_console=")).lower()


def test_logout_ends_the_session_for_every_copy_of_its_cookie(console, settings, store):
    with httpx.Client(base_url=console, timeout=10) as web, httpx.Client(base_url=console, timeout=10) as thief:
        answer = _login(web)
        assert answer.status_code == 303
        flags = _cookie_flags(answer)
        assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags, flags
        page = web.get("/bots")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        thief.cookies.update(web.cookies)  # the cookie copied, e.g. from the browser's profile
        assert thief.get("/bots").status_code == 200

        assert web.post("/logout", data={"csrf": csrf}).status_code == 303
        gone = thief.get("/bots")
        assert gone.status_code == 303 and gone.headers["location"] == "/login?expired=1&next=%2Fbots"
        thief.cookies.update(web.cookies)  # as copied before the logout, whatever the server sent since
        forged = thief.post("/bots/oem-orders/run", data={"csrf": csrf, "dry_run": ""})
        assert forged.status_code == 401 and "登录" in forged.text and "charset=utf-8" in forged.headers["content-type"]
        assert web.get("/bots").status_code == 303
    assert not store.runs(10)  # no run was started with the dead session
    assert (settings.path("state") / "console-sessions.sqlite").stat().st_mode & 0o777 == 0o600


@pytest.mark.one_at_a_time("timing")  # a 1.8 s idle timeout measured (tests/conftest.py)
def test_an_idle_session_ends_and_a_new_password_ends_every_session(settings, clean_sandbox, monkeypatch):
    from dealerbot.config import ConsoleSettings

    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    settings = settings.model_copy(update={"console": ConsoleSettings(idle_minutes=0.03)})  # 1.8 s
    with serving(settings) as (url, _), httpx.Client(base_url=url, timeout=10) as web:
        assert _login(web).status_code == 303
        for _ in range(3):  # in use: it stays
            time.sleep(0.6)
            assert web.get("/bots").status_code == 200
        time.sleep(2.5)  # unused longer than the idle timeout
        answer = web.get("/bots")
        assert answer.status_code == 303 and answer.headers["location"] == "/login?expired=1&next=%2Fbots"

        assert _login(web).status_code == 303 and web.get("/bots").status_code == 200
        monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", "a-new-password-2")  # the password changed
        assert web.get("/bots").status_code == 303
        assert _login(web, "a-new-password-2").status_code == 303 and web.get("/bots").status_code == 200


def test_a_session_in_use_ends_twelve_hours_after_its_login(settings, clean_sandbox, monkeypatch):
    """[console] session_hours (12 by default): a session used all along still ends that long
    after its login. Its row in state/console-sessions.sqlite is aged instead of waiting."""
    import sqlite3

    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    sessions = settings.path("state") / "console-sessions.sqlite"

    def logged_in_ago(seconds: float) -> None:  # the login was that long ago; the session was used just now
        with contextlib.closing(sqlite3.connect(sessions)) as db, db:
            db.execute("UPDATE sessions SET created = ?, seen = ?", (time.time() - seconds, time.time()))

    with serving(settings) as (url, _), httpx.Client(base_url=url, timeout=10) as web:
        assert _login(web).status_code == 303 and web.get("/bots").status_code == 200
        logged_in_ago(12 * 3600 - 60)  # a minute before the end: still in
        assert web.get("/bots").status_code == 200
        logged_in_ago(12 * 3600 + 1)  # used a moment ago, but logged in over 12 hours ago
        answer = web.get("/bots")
        assert answer.status_code == 303 and answer.headers["location"] == "/login?expired=1&next=%2Fbots"
        assert web.get("/runs").status_code == 303  # gone for good, not only for one request
        assert _login(web).status_code == 303 and web.get("/bots").status_code == 200  # a new login starts afresh


def test_the_console_refuses_a_non_loopback_address_and_starts_without_a_tty_only_with_a_password(tmp_path, sandbox):
    from .test_cli import _config, dealerbot

    _config(tmp_path, sandbox)
    remote = dealerbot(["console", "--host", "0.0.0.0"], tmp_path, DEALERBOT_CONSOLE_PASSWORD=CONSOLE_PASSWORD)
    assert remote.returncode == 2 and "--allow-remote" in remote.stderr
    nopass = dealerbot(["console"], tmp_path)
    assert nopass.returncode == 2 and "DEALERBOT_CONSOLE_PASSWORD" in nopass.stderr
    assert not Path(tmp_path / "state" / "console-password").exists()


def test_the_password_asked_at_the_first_start_is_kept_only_as_an_argon2_hash(tmp_path, sandbox):
    """`dealerbot console` at a terminal asks for a password; the folder then holds its argon2
    hash (0600) and nowhere the password itself, and the password logs in."""
    import fcntl
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys
    import termios

    from .test_cli import _config

    _config(tmp_path, sandbox)
    password = "Gx7-控制台-Secret!"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(COLUMNS="160", NO_COLOR="1")
    leader, follower = pty.openpty()  # a terminal: the prompt hides what is typed, as for an operator
    def own_terminal() -> None:  # the pty becomes the process's controlling terminal (/dev/tty), as a real one is
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "console", "--port", str(port)], cwd=tmp_path,
                            env=env, stdin=follower, stdout=follower, stderr=follower, preexec_fn=own_terminal)
    os.close(follower)
    shown = b""

    def read_until(text: str, timeout: float = 60) -> None:
        nonlocal shown
        deadline = time.monotonic() + timeout
        while text.encode() not in shown:
            assert time.monotonic() < deadline and proc.poll() is None, shown.decode(errors="replace")
            ready, _, _ = select.select([leader], [], [], 0.5)  # never blocks past the deadline
            if ready:
                with contextlib.suppress(OSError):
                    shown += os.read(leader, 4096)

    try:
        # Type only once the hidden prompt is up: click echoes the text, then getpass turns the echo
        # off (flushing what was typed so far) and writes the prompt's last " ".
        read_until("设置控制台密码（至少 8 位）: ")
        os.write(leader, password.encode() + b"\n")
        read_until("再输入一次: ")
        os.write(leader, password.encode() + b"\n")
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as web:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if web.get("/login").status_code == 200:
                        break
                assert time.monotonic() < deadline and proc.poll() is None, shown.decode(errors="replace")
                time.sleep(0.2)
            assert _login(web, password).status_code == 303 and web.get("/bots").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.close(leader)
    assert password.encode() not in shown  # never echoed

    kept = tmp_path / "state" / "console-password"
    assert kept.read_text(encoding="utf-8").startswith("$argon2id$")
    assert kept.stat().st_mode & 0o777 == 0o600
    for path in tmp_path.rglob("*"):  # the state, the sessions, the logs: no plain password anywhere
        if path.is_file():
            data = path.read_bytes()
            assert password.encode() not in data and password.encode("utf-16-le") not in data, path


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
        with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as web:
            assert console_login(web, CONSOLE_PASSWORD, proc).url.path == "/"  # 今日
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


async def test_a_reviewed_workbook_uploaded_in_the_console_approves_its_rows(
    read_store, console, settings, store, clean_sandbox, tmp_path,
):
    from dealerbot.review.sheets import APPROVE, APPROVE_EDITED

    from .test_rekey import exported_pending, plan

    read_store.copy_into(settings)
    plan(settings, store)
    path = tmp_path / "reviewed.xlsx"
    wb, ws, col, rows = exported_pending(store, path)
    ws.cell(rows[0], col["审核"]).value = APPROVE
    ws.cell(rows[1], col["审核"]).value = APPROVE_EDITED
    ws.cell(rows[1], col["颜色"]).value = "曜石黑"
    wb.save(path)
    keys = [ws.cell(r, col["厂家订单号"]).value for r in rows[:2]]
    async with _review_page(console) as page:
        await page.set_input_files("#review-file", str(path))
        await page.click("#upload")
        assert "同意 1 条，修改后同意 1 条" in await page.inner_text("#imported")
    approved = [store.actions(natural_key=k)[-1] for k in keys]
    assert [a.state for a in approved] == ["approved", "approved"]
    assert approved[1].new_values["color"] == "曜石黑"


async def test_the_review_page_names_approvals_a_changed_plan_dropped(read_store, console, settings, store, clean_sandbox):
    """Issue 20: an approval undone by a later plan is said to a person, with the reason."""
    from dealerbot.data.records import OEM_ORDER

    from .test_rekey import approve, plan

    read_store.copy_into(settings)
    plan(settings, store)
    [chosen] = approve(store, 1)
    order = store.get(OEM_ORDER, chosen.natural_key)
    colour = "冰川银" if chosen.new_values["color"] != "冰川银" else "珍珠白"
    w = store.writer("oem-later")  # the OEM portal changes the order's colour after the approval
    w.add(OEM_ORDER, {f.name: order[f.name] for f in OEM_ORDER.fields} | {"color": colour}, [])
    w.flush()
    report = plan(settings, store)
    assert [k for k, _ in report.dropped] == [chosen.natural_key]
    async with _review_page(console) as page:
        listed = await page.inner_text("#reapprovals")
    assert chosen.natural_key in listed and "原已审核（测试审核员）" in listed
    assert f"{chosen.new_values['color']}→{colour}" in listed

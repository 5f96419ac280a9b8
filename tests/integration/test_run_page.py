"""A run's page in the console, in real Chromium against the sandbox: a failure explained in
Chinese with what to do and 重新运行; a long re-key's progress bar (n of N) and its 停止; a dry
run's rehearsed writes; rejects under Chinese field labels. A screenshot of each state is kept
under the test's folder (``run-*.png``) for a person to look at."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import async_playwright

from dealerbot.config import BrowserSettings
from dealerbot.web.browser import find_browser

from .test_console import CONSOLE_PASSWORD, _log_in, _wait_finished, serving
from .test_rekey import approve, plan

ID_NUMBER = re.compile(r"\d{17}[\dX]")


@pytest.fixture
def console(settings, clean_sandbox, monkeypatch) -> Any:
    monkeypatch.setenv("DEALERBOT_CONSOLE_PASSWORD", CONSOLE_PASSWORD)
    with serving(settings) as (url, _):
        yield url


@contextlib.asynccontextmanager
async def _browser_page(console: str) -> AsyncIterator[Any]:
    """A real Chromium page logged in to the console; no script error or dialog goes unnoticed."""
    async with async_playwright() as pw:
        spec = find_browser(BrowserSettings())
        browser = await pw.chromium.launch(executable_path=spec.executable, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await _log_in(page, console)
            yield page
            assert not errors, errors
        finally:
            await browser.close()


async def _start(page: Any, console: str, bot: str, dry_run: bool = False) -> str:
    """Start ``bot`` on the 机器人 page; the run page's address."""
    await page.goto(console + "/bots")
    if dry_run:
        await page.check(f"tr[data-bot='{bot}'] input[name='dry_run']")
    await page.click(f"tr[data-bot='{bot}'] button.run-now")
    assert "/runs/" in page.url
    return page.url


async def test_a_failed_run_says_what_went_wrong_in_chinese_and_runs_again(console, clean_sandbox, tmp_path):
    clean_sandbox.behave("oem", error_rate=1.0)  # the OEM portal answers every request with HTTP 500
    async with _browser_page(console) as page:
        failed_url = await _start(page, console, "oem-customers")
        assert await _wait_finished(page) == "失败"
        title = await page.inner_text("#advice-title")
        assert "厂家门户" in title and re.search(r"[\u4e00-\u9fff]{4}", title), title
        action = await page.inner_text("#advice-action")
        assert action.startswith("建议操作") and "重新运行" in action
        details = page.locator("#run-error")
        assert await details.get_attribute("open") is None  # the technical detail is folded
        assert "HTTP 500" not in await page.inner_text("#advice")
        await page.click("#run-error summary")
        assert "500" in await page.inner_text("#run-error")
        await page.screenshot(path=str(tmp_path / "run-failed.png"), full_page=True)

        # A form posted without the session's CSRF token starts nothing.
        forged = await page.request.post(failed_url + "/rerun", form={})
        assert forged.status == 403

        clean_sandbox.behave("oem", error_rate=0.0)  # the portal is back
        await page.click("#rerun")
        assert "/runs/" in page.url and page.url != failed_url
        assert await _wait_finished(page) == "成功"
        assert await page.locator("#advice").count() == 0
        await page.screenshot(path=str(tmp_path / "run-rerun-succeeded.png"), full_page=True)
        # The customer list states its total (共 N 条): the run knew it, for its progress bar.
        table = page.locator("#counts-table")
        headers = [h.strip() for h in await table.locator("th").all_inner_texts()]
        values = [v.strip() for v in await table.locator("td").all_inner_texts()]
        shown = dict(zip(headers, values, strict=True))
        assert shown["列表总数"] == shown["读取"] == str(len(clean_sandbox.rows("oem", "customers")))


async def test_a_long_rekey_shows_its_progress_and_stops_after_its_current_records(
    read_store, console, settings, store, clean_sandbox, tmp_path,
):
    read_store.copy_into(settings)
    plan(settings, store)
    chosen = approve(store, 15)
    total = len(store.actions(["approved"]))
    assert total >= 15
    clean_sandbox.behave("dms", save_delay_ms=900)  # each save takes a while: a run long enough to watch
    before = Counter(c["oem_order_no"] for c in clean_sandbox.contracts())
    async with _browser_page(console) as page:
        await _start(page, console, "dms-rekey")
        assert await page.locator("#log-box").get_attribute("open") is None  # the log is folded
        await page.wait_for_function(
            "() => /^[1-9]\\d* \\/ \\d+/.test(document.getElementById('progress-text').textContent)", timeout=90_000)
        text = await page.inner_text("#progress-text")
        done, of = (int(x) for x in re.match(r"(\d+) / (\d+)", text).groups())
        assert of == total and 0 < done < total, text
        assert "剩余" in text
        bar = page.locator("#bar")
        assert int(await bar.get_attribute("max") or await bar.evaluate("b => b.max")) == total
        counts = await page.inner_text("#counts")
        assert "已写入并核对" in counts or "失败" in counts or "已在DMS中找到" in counts, counts
        assert not re.search(r"\b(verified|done|read|pages)\b", counts)
        await page.screenshot(path=str(tmp_path / "run-progress.png"), full_page=True)
        await page.click("#stop")
        assert await _wait_finished(page) == "已中断"
        await page.screenshot(path=str(tmp_path / "run-stopped.png"), full_page=True)
        assert "重新运行" in await page.inner_text("#advice")

        assert "失败证据" not in await page.inner_text("main")  # stopping is no failure: no evidence

    run = store.runs(1, "dms-rekey")[0]
    assert not run.evidence
    verified = [store.action(a.id) for a in store.actions() if a.state == "verified"]
    assert 0 < len(verified) < total, "the stop came before every action was written"
    assert run.counts.get("verified") == len(verified)
    assert {store.action(a.id).state for a in chosen} <= {"verified", "approved"}  # none left half-way
    # The sandbox's ground truth: every verified action's contract holds its planned values, a
    # new contract was made only for a verified create, and none twice.
    contracts = clean_sandbox.contracts()
    by_no = {c["contract_no"]: c for c in contracts}
    for action in verified:
        held = by_no[action.contract_no]
        assert held["oem_order_no"] == action.natural_key or action.kind != "create_contract"
    after = Counter(c["oem_order_no"] for c in contracts)
    created = {k for k in after if after[k] > before.get(k, 0)}
    assert created <= {a.natural_key for a in verified if a.kind == "create_contract"}
    assert created, "some contract was created before the stop"
    assert all(after[k] == 1 for k in created)  # each once


async def test_a_dry_run_lists_what_it_would_have_written(read_store, console, settings, store, clean_sandbox, tmp_path):
    read_store.copy_into(settings)
    plan(settings, store)
    approve(store, 4)
    ready = store.actions(["approved"])
    contracts, customers = clean_sandbox.contracts(), clean_sandbox.customers()
    async with _browser_page(console) as page:
        await _start(page, console, "dms-rekey", dry_run=True)
        assert await _wait_finished(page) == "成功"
        assert "演练（未写入）" in await page.inner_text("#dry-run-mark")
        table = await page.inner_text("#rehearsal")
        rows = await page.locator("#rehearsal tr").count()
        assert rows - 1 == len(ready)
        for action in ready:
            assert action.natural_key in table
        assert "新建合同" in table and "可以写入" in table
        assert not ID_NUMBER.search(table)  # ID numbers masked, as in every artifact
        await page.screenshot(path=str(tmp_path / "run-dry-run.png"), full_page=True)
        assert clean_sandbox.contracts() == contracts and clean_sandbox.customers() == customers
        assert {store.action(a.id).state for a in ready} == {"approved"}

        # 正式写入: the same bot for real, then its live page; the finished page lists what it wrote.
        forged = await page.request.post(page.url + "/go-live", form={})
        assert forged.status == 403
        dry_url = page.url
        await page.click("#go-live")
        assert "/runs/" in page.url and page.url != dry_url
        assert await _wait_finished(page) == "成功"
        assert await page.locator("#dry-run-mark").count() == 0
        headers = await page.locator("#counts-table th").all_inner_texts()
        assert "本次计划写入" in headers and "待写入操作" not in headers, headers
        written = await page.inner_text("#written")
        assert await page.locator("#written tr").count() - 1 == len(ready)
        for action in ready:
            done = store.action(action.id)
            assert done.state == "verified"
            assert action.natural_key in written and done.contract_no in written
        assert "已核对" in written and not ID_NUMBER.search(written)
        assert not re.search(r"\b(model_code|status|oem_order_no|price|vin)\b", written), written  # by Chinese headers
        await page.screenshot(path=str(tmp_path / "run-go-live-written.png"), full_page=True)
    held = {c["contract_no"]: c for c in clean_sandbox.contracts()}
    for action in ready:  # the sandbox's ground truth: each contract the page names is in the DMS
        assert held[store.action(action.id).contract_no]["oem_order_no"] == action.natural_key


async def test_rejects_are_listed_under_chinese_field_labels_with_what_to_do(read_store, console, settings, store, tmp_path):
    read_store.copy_into(settings)
    run = next(r for r in store.runs(50, "oem-orders") if r.counts.get("rejected"))
    async with _browser_page(console) as page:
        await page.goto(f"{console}/runs/{run.run_id}")
        rejects = await page.inner_text("#rejects")
        assert "证件号码" in rejects and "厂家订单" in rejects
        assert not re.search(r"\b(id_number|order_no|vin|mobile|oem_order)\b", rejects), rejects
        assert "建议操作" in rejects and "运行本身没有失败" in await page.inner_text("#rejects-note")
        assert not ID_NUMBER.search(rejects)
        await page.screenshot(path=str(tmp_path / "run-rejects.png"), full_page=True)



async def test_a_run_cancelled_under_it_says_so_in_chinese_and_logs_english(console, settings, store, clean_sandbox, tmp_path):
    from dealerbot.running.runner import run_bot

    from .conftest import PASSWORDS

    clean_sandbox.behave("oem", slow_rate=1.0, slow_ms=400)  # every page takes a while
    started: dict[str, str] = {}
    task = asyncio.create_task(run_bot("oem-customers", settings, passwords=PASSWORDS,
                                       on_start=lambda run_id, _dir: started.setdefault("id", run_id)))
    deadline = time.monotonic() + 60
    while "id" not in started:
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    clean_sandbox.behave("oem", slow_rate=0.0)
    run = store.run(started["id"])
    assert run.status == "interrupted"
    assert run.error.startswith("运行被中断") and not re.search(r"[A-Za-z]{4,}", run.error.replace("Ctrl-C", "").replace("dealerbot", ""))
    log = (settings.path("logs") / "runs" / run.run_id / "run.log").read_text(encoding="utf-8")
    assert "interrupted by the operator" in log
    async with _browser_page(console) as page:
        await page.goto(f"{console}/runs/{run.run_id}")
        assert await page.inner_text("#advice-title") == "运行被中断"
        assert await page.locator("#rerun").count() == 1
        action = await page.inner_text("#advice-action")
        assert "未完成的记录继续" not in action and "重新读取" in action, action  # a reading bot reads again
        assert "calm" in (await page.get_attribute("#advice", "class") or "")
        await page.screenshot(path=str(tmp_path / "run-interrupted.png"), full_page=True)


async def test_a_run_started_here_and_postponed_by_maintenance_asks_for_a_rerun_after_it(console, clean_sandbox, tmp_path):
    from datetime import datetime, timedelta

    now = datetime.now()
    end = now + timedelta(minutes=30)
    if end.date() != now.date():  # the window must not cross midnight
        pytest.skip("too close to midnight for a maintenance window around now")
    clean_sandbox.behave("oem", maintenance_window=f"{now - timedelta(minutes=1):%H:%M}-{end:%H:%M}")
    async with _browser_page(console) as page:
        await _start(page, console, "oem-customers")
        assert await _wait_finished(page) == "已推迟"
        action = await page.inner_text("#advice-action")
        assert "维护" in action and "重新运行" in action and "自动" in action and "不会自动" in action, action
        # waiting for the maintenance is no failure: not the red failure box
        assert "calm" in (await page.get_attribute("#advice", "class") or "")
        assert "失败" not in await page.inner_text("main")  # neither its box nor its evidence speaks of a failure
        assert await page.eval_on_selector("#advice", "e => getComputedStyle(e).borderColor") != "rgb(176, 0, 32)"
        assert await page.locator("#rerun").count() == 1
        await page.screenshot(path=str(tmp_path / "run-postponed.png"), full_page=True)


async def test_a_refused_password_leads_to_the_portals_password_on_the_status_page(console, settings, store, clean_sandbox, tmp_path):
    from dealerbot.running.runner import run_bot

    refused = await run_bot("oem-customers", settings, passwords={"oem": "Wrong-Pass-1"})
    assert refused.error_class == "LoginRejected"
    async with _browser_page(console) as page:
        await page.goto(f"{console}/runs/{refused.run_id}")
        assert await page.inner_text("#advice-title") == "厂家门户：门户拒绝了密码"
        assert "“状态”页" in await page.inner_text("#advice-action")
        link = page.locator("#set-password")
        assert await link.get_attribute("href") == "/health#portal-oem"
        assert "Wrong-Pass-1" not in await page.content()
        await page.screenshot(path=str(tmp_path / "run-password-refused.png"), full_page=True)
        await link.click()
        assert page.url.endswith("/health#portal-oem")


async def test_the_runs_list_and_a_runs_page_speak_the_clerks_words(read_store, console, settings, store, tmp_path):
    from dealerbot.running.runner import run_bot

    read_store.copy_into(settings)
    refused = await run_bot("oem-customers", settings, passwords={"oem": "Wrong-Pass-1"}, trigger="console")
    from .conftest import PASSWORDS

    step = await run_bot("dms-customers", settings, passwords={"dms": "Wrong-Pass-1"}, job="console-sync",
                         trigger="console")
    rehearsed = await run_bot("dms-rekey", settings, passwords=PASSWORDS, options={"dry_run": True})
    started = store.run(refused.run_id).started_at
    async with _browser_page(console) as page:
        await page.goto(f"{console}/runs")
        row = page.locator(f"#runs tr[data-run='{refused.run_id}']")
        cells = await row.locator("td").all_inner_texts()
        assert cells[0].strip() == "读取厂家客户", cells
        reason = row.locator("td.reason a")
        assert (await reason.inner_text()).strip() == "厂家门户：门户拒绝了密码"
        assert await reason.get_attribute("href") == f"/runs/{refused.run_id}"
        table = await page.inner_text("#runs")
        assert "dealerbot credentials" not in table and "no password" not in table
        assert not re.search(r"\b(oem|dms)-(customers|orders|contracts|rekey)\b", table), table
        assert not re.search(r"console-sync|orders-daytime", table), table
        sync_row = await page.locator(f"#runs tr[data-run='{step.run_id}'] td").all_inner_texts()
        assert sync_row[3].strip() == "控制台 · 一键同步", sync_row
        assert "DMS：门户拒绝了密码" in sync_row[6]
        dry_row = await page.locator(f"#runs tr[data-run='{rehearsed.run_id}'] td").all_inner_texts()
        assert dry_row[0].split() == ["写入DMS", "演练"], dry_row
        # the 机器人 filter: a drop-down of the bots' Chinese names
        options = await page.locator("#bot-filter option").all_inner_texts()
        assert "读取厂家客户" in options and "写入DMS" in options and "dms-rekey" not in options, options
        await page.select_option("#bot-filter", label="读取厂家客户")
        await page.click("form[action='/runs'] button")
        assert "bot=oem-customers" in page.url
        shown = {t.strip() for t in await page.locator("#runs tr td:first-child").all_inner_texts()}
        assert shown == {"读取厂家客户"}, shown
        await page.screenshot(path=str(tmp_path / "runs-list.png"), full_page=True)

        # the run's page: its bot by name and when, the run id only small
        await page.goto(f"{console}/runs/{refused.run_id}")
        title = await page.inner_text("#run-title")
        assert title.startswith(f"读取厂家客户 · {started:%m-%d %H:%M}"), title
        assert await page.inner_text("#run-id") == refused.run_id
        assert not title.startswith("oem-customers")
        evidence = await page.locator("#evidence-files a").all_inner_texts() if await page.locator("#evidence-files").count() else []
        assert all("（给技术人员）" in e for e in evidence), evidence
        await page.screenshot(path=str(tmp_path / "run-titled.png"), full_page=True)

        # the 机器人 page names the bots in Chinese
        await page.goto(f"{console}/bots")
        names = [t.strip() for t in await page.locator("#bots tr[data-bot] td:first-child").all_inner_texts()]
        assert "读取厂家客户" in names and "写入DMS" in names, names
        assert not any(re.fullmatch(r"[a-z-]+", n) for n in names), names
        await page.screenshot(path=str(tmp_path / "bots.png"), full_page=True)

"""The scheduler with real APScheduler, real bots against the sandbox, and notifications that
arrive at a local webhook receiver (apprise's json:// target on loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from apscheduler.triggers.date import DateTrigger

from dealerbot.errors import AlreadyRunning
from dealerbot.running.registry import discover, get_bot
from dealerbot.running.runner import run_bot, single_instance
from dealerbot.schedule.scheduler import Scheduler
from dealerbot.schedule.timetable import load_timetables
from dealerbot.store import Store

from .conftest import OEM_PASSWORD, PASSWORDS
from .test_cli import _config

pytestmark = pytest.mark.one_at_a_time("timing")  # firing times and backoffs measured (tests/conftest.py)


class Receiver:
    """A webhook that records every JSON message posted to it."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.messages.append(json.loads(body.decode("utf-8")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _timetable(settings, text: str):
    folder = settings.home / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "jobs.yaml").write_text(text, encoding="utf-8")
    return load_timetables(folder, discover())


async def _until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.2)


@asynccontextmanager
async def _serving(settings, jobs, grace: float, wait: float) -> AsyncIterator[Scheduler]:
    """A scheduler serving ``jobs`` for the block, then stopped (it must stop within ``wait``)."""
    scheduler = Scheduler(settings, jobs, passwords=PASSWORDS, grace=grace)
    serving = asyncio.create_task(scheduler.serve())
    try:
        yield scheduler
    finally:
        scheduler.request_stop()
        await asyncio.wait_for(serving, wait)


def _runs(settings, job: str) -> list:
    with Store.open(settings.store_url) as store:
        return [r for r in store.runs(100) if r.job == job]


async def test_a_job_runs_its_bot_on_time_again_and_again_and_skips_while_it_runs_elsewhere(settings, clean_sandbox, receiver):
    settings.notify.urls = [receiver.url]
    jobs = _timetable(settings, "jobs:\n  - {name: customers, run: oem-customers, every: 4s, on_start: wait}\n")
    async with _serving(settings, jobs, grace=30, wait=60):
        await _until(lambda: len([r for r in _runs(settings, "customers") if r.status == "succeeded"]) >= 2)
        # The same bot started by hand for the same account: the next firing is skipped and recorded.
        while True:
            try:
                with single_instance(settings, get_bot("oem-customers")):
                    await _until(lambda: any(r.status == "skipped" and "正在为同一账号运行" in r.error
                                             for r in _runs(settings, "customers")))
                break
            except AlreadyRunning:  # a scheduled run holds it just now: take it after that one
                await asyncio.sleep(0.2)
    runs = _runs(settings, "customers")
    assert {r.trigger for r in runs} == {"schedule"}
    # (a firing while the job's own previous run went on, on a slow machine, is skipped as such)
    assert {r.error.split("，")[0] for r in runs if r.status == "skipped"} <= {"oem-customers 正在为同一账号运行", "上一次运行尚未结束"}
    assert not [r for r in runs if r.status in ("running", "failed")]
    sent = [m for m in receiver.messages if "未运行" in m["title"]]
    assert any("正在为同一账号运行" in m["message"] for m in sent)


async def test_a_firing_too_late_is_recorded_not_dropped_silently(settings, clean_sandbox):
    jobs = _timetable(settings, "jobs:\n  - {name: late, run: oem-customers, cron: '0 3 * * *', misfire_grace_seconds: 30}\n")
    async with _serving(settings, jobs, grace=5, wait=30) as scheduler:
        await asyncio.sleep(0.5)
        # As if the machine had been busy: the firing comes 10 minutes after its time.
        scheduler.aps.add_job(scheduler._fire, DateTrigger(datetime.now().astimezone() - timedelta(minutes=10)),
                              args=["late", "schedule"], id="late@slow", misfire_grace_time=30)
        await _until(lambda: bool(_runs(settings, "late")), 20)
    (run,) = _runs(settings, "late")
    assert run.status == "skipped" and "错过" in run.error


async def test_after_the_machine_was_off_a_missed_job_runs_once_on_start(settings, clean_sandbox):
    jobs = _timetable(settings, "jobs:\n  - {name: daily, run: oem-customers, cron: '0 3 * * *', on_start: run_once}\n"
                                "  - {name: patient, run: dms-contracts, cron: '0 3 * * *', on_start: wait}\n")
    with Store.open(settings.store_url) as store:  # both last ran three days ago
        for job, bot in (("daily", "oem-customers"), ("patient", "dms-contracts")):
            store.start_run(f"old-{job}", bot, "schedule", job=job)
            store.finish_run(f"old-{job}", "succeeded", {})
            with store.engine.begin() as conn:
                conn.execute(store.tables["runs"].update().where(store.tables["runs"].c.run_id == f"old-{job}")
                             .values(started_at=datetime.now() - timedelta(days=3)))
    async with _serving(settings, jobs, grace=30, wait=60):
        await _until(lambda: any(r.trigger == "catch-up" and r.status == "succeeded" for r in _runs(settings, "daily")))
        await asyncio.sleep(1)
    assert [r.trigger for r in _runs(settings, "daily")] == ["catch-up", "schedule"]  # newest first: once
    assert [r.run_id for r in _runs(settings, "patient")] == ["old-patient"]  # waits for its time


async def test_a_run_postponed_by_maintenance_is_run_again_when_the_window_ends(settings, clean_sandbox, receiver):
    settings.notify.urls = [receiver.url]
    now = datetime.now()
    clean_sandbox.behave("dms", maintenance_window=f"{now - timedelta(minutes=5):%H:%M}-{now + timedelta(minutes=30):%H:%M}")
    jobs = _timetable(settings, "jobs:\n  - {name: contracts, run: dms-contracts, cron: '0 3 * * *'}\n")
    async with _serving(settings, jobs, grace=10, wait=30) as scheduler:
        scheduler.aps.add_job(scheduler._fire, DateTrigger(datetime.now().astimezone()), args=["contracts", "schedule"],
                              id="contracts@now")
        await _until(lambda: scheduler.aps.get_job("contracts@postponed") is not None, 30)
        again = scheduler.aps.get_job("contracts@postponed").next_run_time
    (run,) = _runs(settings, "contracts")
    assert run.status == "postponed" and run.resume_after is not None
    assert again.replace(tzinfo=None) == run.resume_after
    sent = [m for m in receiver.messages if "已推迟" in m["title"]]
    assert sent and sent[0]["message"].splitlines()[0] == "门户正在维护", sent
    assert f"维护预计到 {run.resume_after:%H:%M} 结束" in sent[0]["message"]


async def test_a_failed_run_is_notified_and_a_notification_that_cannot_be_sent_never_fails_a_run(settings, clean_sandbox, receiver):
    settings.notify.urls = [receiver.url]
    failed = await run_bot("oem-customers", settings, passwords={"oem": "Wrong-Pass-5", "dms": PASSWORDS["dms"]})
    assert failed.status == "failed"
    (message,) = [m for m in receiver.messages if "失败" in m["title"]]
    assert "oem-customers" in message["title"] and "门户拒绝了密码" in message["message"]
    assert str(failed.run_dir) not in message["message"]  # a folder on the server: not for a phone
    assert "Wrong-Pass-5" not in json.dumps(message, ensure_ascii=False)
    # Nobody listens at this address: the run still succeeds, and the log says what happened.
    receiver.close()
    settings.notify.on = ["succeeded"]
    ok = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert ok.ok, ok.error
    assert "not sent" in (ok.run_dir / "run.log").read_text(encoding="utf-8")


def test_sigterm_stops_the_scheduler_cleanly_and_the_run_is_recorded_interrupted(tmp_path, sandbox, clean_sandbox):
    _config(tmp_path, sandbox)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "jobs.yaml").write_text(
        "jobs:\n  - {name: orders, run: oem-orders, every: 2s, options: {full: true}, on_start: wait}\n", encoding="utf-8")
    clean_sandbox.behave("oem", slow_rate=1.0, slow_ms=300)  # a run that takes a while
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, COLUMNS="160", NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "schedule", "start"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    store_url = f"sqlite:///{tmp_path / 'var' / 'dealerbot.sqlite'}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else "no run started"
            if (tmp_path / "var" / "dealerbot.sqlite").exists():
                with Store.open(store_url) as store:
                    if any(r.status == "running" for r in store.runs(5)):
                        break
            time.sleep(0.3)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        clean_sandbox.behave("oem", slow_rate=0.0)
    assert proc.returncode == 0, out
    assert "调度程序已停止" in out and "Traceback" not in out
    with Store.open(store_url) as store:
        runs = store.runs(10)
    assert runs and not [r for r in runs if r.status == "running"]
    # the run that was cut short (a firing meanwhile, every 2 s, is recorded skipped: on a busy
    # machine one may come after it)
    ran = [r for r in runs if r.status != "skipped"]
    assert ran[0].status == "interrupted" and ran[0].trigger == "schedule" and ran[0].job == "orders"


async def test_firings_missed_while_the_scheduler_was_held_up_start_one_run(settings, clean_sandbox):
    jobs = _timetable(settings, "jobs:\n  - {name: often, run: oem-customers, every: 2s, coalesce: true, on_start: wait}\n")
    async with _serving(settings, jobs, grace=30, wait=60) as scheduler:
        await asyncio.sleep(0.3)
        scheduler.aps.pause()  # as if the event loop had been blocked: three firings pass
        await asyncio.sleep(7)
        resumed = datetime.now()
        scheduler.aps.resume()
        await asyncio.sleep(1.5)
        started = [r for r in _runs(settings, "often") if r.started_at >= resumed - timedelta(seconds=0.2)]
    ran = [r for r in started if r.status != "skipped"]
    assert len(ran) == 1, [(r.status, r.started_at) for r in started]  # three missed firings, one run
    # a firing that came while that one still ran is skipped as such, never a second run at once
    assert all("尚未结束" in (r.error or "") for r in started if r.status == "skipped")


async def test_a_job_that_cannot_start_is_recorded_and_the_scheduler_goes_on(settings, clean_sandbox):
    settings.dictionary_path.unlink()  # sync cannot start without its dictionary
    jobs = _timetable(settings, "jobs:\n  - {name: broken, run: sync, every: 2s, on_start: wait}\n"
                                "  - {name: fine, run: dms-contracts, every: 2s, on_start: wait}\n")
    scheduler = Scheduler(settings, jobs, passwords=PASSWORDS, grace=30)
    serving = asyncio.create_task(scheduler.serve())
    try:
        await _until(lambda: len(_runs(settings, "broken")) >= 2 and any(r.status == "succeeded" for r in _runs(settings, "fine")))
    finally:
        scheduler.request_stop()
        await asyncio.wait_for(serving, 60)
    broken = _runs(settings, "broken")
    assert {r.status for r in broken} == {"failed"} and all("dictionary" in r.error for r in broken)
    assert not serving.exception()


async def test_a_scheduled_sync_leaves_the_review_workbook_for_staff(settings, clean_sandbox):
    """Staff review what a timed sync found: its workbook is in out/, like `dealerbot sync`'s."""
    from openpyxl import load_workbook

    jobs = _timetable(settings, "jobs:\n  - {name: daily, run: sync, every: 1h, on_start: wait}\n")
    scheduler = Scheduler(settings, jobs, passwords=PASSWORDS, grace=30)
    await scheduler._fire("daily", "schedule")  # the firing itself, not an hour's wait
    books = sorted(settings.path("out").glob("*.xlsx"))
    assert books, "no review workbook after a scheduled sync"
    sheets = load_workbook(books[-1], read_only=True).sheetnames
    assert "待处理" in sheets and books[-1].stat().st_mode & 0o077 == 0, sheets


def _start_scheduler(folder, out, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, COLUMNS="200", NO_COLOR="1")
    return subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "schedule", "start", *args], cwd=folder, env=env,
                            stdout=out, stderr=subprocess.STDOUT, text=True)


def _wait_for(path, text: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(encoding="utf-8"):
        assert proc.poll() is None and time.monotonic() < deadline, path.read_text(encoding="utf-8")
        time.sleep(0.2)


def test_a_second_scheduler_in_the_same_folder_is_refused_and_a_killed_one_frees_the_folder(tmp_path, sandbox):
    """Two schedulers of one folder would each fire every job: the second records a skip each time."""
    _config(tmp_path, sandbox)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "jobs.yaml").write_text(
        "jobs:\n  - {name: customers, run: oem-customers, cron: '0 3 * * *', on_start: wait}\n", encoding="utf-8")
    logs = [tmp_path / f"scheduler-{n}.out" for n in range(3)]
    outs = [p.open("w", encoding="utf-8") for p in logs]
    first = _start_scheduler(tmp_path, outs[0])
    procs = [first]
    try:
        _wait_for(logs[0], "调度程序已启动", first)
        second = _start_scheduler(tmp_path, outs[1])
        procs.append(second)
        assert second.wait(timeout=60) == 2
        said = " ".join(logs[1].read_text(encoding="utf-8").split())  # as one line, however it wrapped
        assert "调度程序已在运行" in said and str(tmp_path) in said and f"进程 {first.pid}" in said, said
        assert "Traceback" not in said and "调度程序已启动" not in said
        assert first.poll() is None  # the first goes on
        # Killed outright (no clean-up at all), the first leaves the folder free for the next.
        first.kill()
        first.wait(timeout=30)
        third = _start_scheduler(tmp_path, outs[2])
        procs.append(third)
        _wait_for(logs[2], "调度程序已启动", third)
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=60) == 0, logs[2].read_text(encoding="utf-8")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        for f in outs:
            f.close()


def _seconds(line: str) -> int:
    hh, mm, ss = (int(x) for x in line[:8].split(":"))
    return hh * 3600 + mm * 60 + ss


def test_a_store_that_cannot_be_opened_is_said_once_notified_once_tried_less_and_less_often_then_recovered(
    tmp_path, sandbox, clean_sandbox, receiver,
):
    """A damaged store once made the scheduler print a traceback at every firing."""
    # the first pause 2 s instead of 5 s (then 4 s, 8 s): the same growth, 21 s sooner
    _config(tmp_path, sandbox, f'[notify]\nurls = ["{receiver.url}"]\n[store]\nretry_first_seconds = 2\n')
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "jobs.yaml").write_text(
        "jobs:\n  - {name: customers, run: oem-customers, every: 2s, on_start: wait}\n", encoding="utf-8")
    (tmp_path / "var").mkdir()
    db = tmp_path / "var" / "dealerbot.sqlite"
    db.write_bytes(b"not a database, just text " * 200)
    log = tmp_path / "scheduler.out"
    store_url = f"sqlite:///{db}"
    with log.open("w", encoding="utf-8") as out:
        proc = _start_scheduler(tmp_path, out, "--verbose")  # the debug lines show each try
        try:
            deadline = time.monotonic() + 90
            while log.read_text(encoding="utf-8").count("still cannot be opened") < 2:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")[-3000:]
                time.sleep(0.3)
            db.rename(db.with_name("damaged.sqlite"))  # as the message advises: dealerbot makes a new one
            while True:
                assert proc.poll() is None and time.monotonic() < deadline + 60, log.read_text(encoding="utf-8")[-3000:]
                if "数据库已恢复可用" in log.read_text(encoding="utf-8") and db.exists():
                    with Store.open(store_url) as store:
                        if any(r.status == "succeeded" and r.job == "customers" for r in store.runs(10)):
                            break
                time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=90) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    text = log.read_text(encoding="utf-8")
    assert "Traceback" not in text
    lines = text.splitlines()
    said = [ln for ln in lines if "调度程序无法打开数据库" in ln]
    assert len(said) == 1 and "数据库文件已损坏" in said[0] and str(db) in said[0], said  # once, plainly
    tries = [ln for ln in lines if "still cannot be opened" in ln or "数据库已恢复可用" in ln]
    times = [_seconds(said[0])] + [_seconds(ln) for ln in tries]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 2 s, 4 s, 8 s apart, each read from whole-second times (off by less than 1 s either way)
    assert len(gaps) == 3 and 1 <= gaps[0] <= 4 and gaps[1] >= gaps[0] + 1 and gaps[2] >= gaps[1] + 3, (gaps, tries)
    assert "2 秒后重试" in said[0], said
    sent = [m for m in receiver.messages if "无法打开数据库" in m["title"]]
    assert len(sent) == 1 and "数据库文件已损坏" in sent[0]["message"], receiver.messages


async def test_rejects_approvals_waiting_and_a_dropped_approval_are_each_told_in_a_message(settings, store, sandbox,
                                                                                          clean_sandbox, receiver, tmp_path):
    """A sync whose reads reject records and whose plan waits for a person sends a message for
    each, naming the bot, the run and the counts a person finds in the review workbook; a later
    `dealerbot reconcile` that drops a person's approval (the OEM changed the order) names the
    order and what changed, on the terminal and in the message."""
    from openpyxl import load_workbook

    from dealerbot.running.sync import sync

    from .test_cli import dealerbot
    from .test_rekey import approve

    settings.notify.urls = [receiver.url]
    settings.console.public_url = "http://192.168.1.20:8750"
    hold = ["create_contract", "update_contract", "cancel_contract"]  # every action waits: no re-key run, faster
    settings.rekey.approval_required = hold
    done = await sync(settings, passwords=PASSWORDS, workbook=True)
    assert done.ok, done.stopped

    def rows(title: str) -> list[dict]:
        header, *body = list(load_workbook(done.workbook_path, read_only=True)[title].iter_rows(values_only=True))
        return [dict(zip(header, r, strict=False)) for r in body]

    titles = [m["title"] for m in receiver.messages]
    # Rejects: one message per reading run that rejected records, its count as the workbook shows it.
    sheets = {"oem-orders": "厂家订单", "oem-customers": "厂家客户"}
    for bot, sheet in sheets.items():
        [run] = [r for r in done.runs if r.bot == bot]
        refused = sum(1 for r in rows(sheet) if r["校验结果"] == "拒绝")
        assert refused, (bot, "the sandbox's data has records a read rejects")
        [message] = [m for m in receiver.messages if m["title"].startswith(f"dealerbot：{bot} ")]
        assert message["title"] == f"dealerbot：{bot} 有 {refused} 条新的被拒绝记录", titles
        assert message["message"].endswith(f"/runs/{run.run_id}")
    # Approvals waiting: the count of the workbook's 待处理 rows that wait for a person.
    waiting = [r for r in rows("待处理") if r["状态"] == "待审核"]
    assert waiting
    [message] = [m for m in receiver.messages if "等待审核" in m["title"]]
    assert message["title"] == f"dealerbot：{len(waiting)} 条操作等待审核", titles
    assert done.workbook_path.name in message["message"] and "import-review" not in message["message"]
    for sent in receiver.messages:  # no one's mobile or ID number in a message
        text = sent["title"] + sent["message"]
        assert not any(r["手机号"] and str(r["手机号"]) in text or r["证件号码"] and str(r["证件号码"]) in text
                       for r in waiting)

    # A person approves a new contract; the OEM then changes that order's colour.
    [chosen] = approve(store, 1)
    colour = "冰川银" if chosen.new_values["color"] != "冰川银" else "珍珠白"
    clean_sandbox.oem.patch(f"/__admin/orders/{chosen.natural_key}", json={"color": colour}).raise_for_status()
    assert (await run_bot("oem-orders", settings, passwords=PASSWORDS)).ok
    receiver.messages.clear()
    _config(tmp_path, sandbox, f'[notify]\nurls = ["{receiver.url}"]\n[rekey]\napproval_required = {json.dumps(hold)}\n')
    planned = dealerbot(["reconcile"], tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    change = f"{chosen.new_values['color']}→{colour}"
    said = next(line for line in planned.stdout.splitlines() if chosen.natural_key in line)
    assert "原已审核、因计划变化作废 1 条" in planned.stdout and change in said, planned.stdout
    [message] = receiver.messages
    assert "原已审核、因计划变化作废 1 条" in message["message"]
    assert f"{chosen.natural_key}（" in message["message"] and change in message["message"]

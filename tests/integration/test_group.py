"""A dealership group on real PostgreSQL: worker processes (``dealerbot worker``), sandbox
stores on loopback, procrastinate as the task engine. Skipped, saying so, without PostgreSQL
(``DEALERBOT_TEST_POSTGRES_URL``; .ci/run starts one)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from postgres import empty_postgres
from sqlalchemy import create_engine, text

from dealerbot.config import load_settings
from dealerbot.data.records import OEM_ORDER
from dealerbot.sandbox.config import SandboxConfig
from dealerbot.sandbox.server import SandboxServer
from dealerbot.store import Store

from .conftest import DMS_PASSWORD, OEM_PASSWORD, ROOT, Admin

WORKERS = 3
ORDERS = 10  # per store (the sandbox's minimum)


@pytest.fixture
def pg() -> str:
    return empty_postgres()


class Sandboxes:
    """One sandbox OEM portal and DMS per store, each with its own orders (different seeds: the
    stores' order and contract numbers coincide, as they do between real dealers); started as
    tests ask for them."""

    def __init__(self) -> None:
        self.servers: list[SandboxServer] = []

    def take(self, n: int) -> list[SandboxServer]:
        while len(self.servers) < n:
            seed = 300 + len(self.servers)
            self.servers.append(SandboxServer(SandboxConfig(
                oem_port=0, dms_port=0, usedcars_port=0, orders=ORDERS, seed=seed)).start())
        return self.servers[:n]


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[Sandboxes]:
    pool = Sandboxes()
    yield pool
    for sb in pool.servers:
        sb.stop()


def _reset(servers: list[SandboxServer]) -> list[Admin]:
    admins = [Admin(sb) for sb in servers]
    for a in admins:
        a.reset()
    return admins


def _folder(tmp_path: Path, pg: str, stores: dict[str, tuple[str, str]], extra: str = "") -> Path:
    """A group's project folder: dealerbot.toml with ``stores`` (code -> OEM url, DMS url)."""
    lines = [
        "[store]", f'url = "{pg}"',
        "[run]", "backoff_seconds = 0.05", "timeout_seconds = 20",
        "[rekey]", "approval_required = []",  # what reconciliation plans is written at once
        "[group]", 'name = "测试集团"', "stalled_seconds = 3", "heartbeat_seconds = 0.5",
    ]
    for code, (oem, dms) in stores.items():
        lines += [f"[stores.{code}]", f'name = "门店{code}"', f"[stores.{code}.oem]", f'url = "{oem}"',
                  f"[stores.{code}.dms]", f'url = "{dms}"']
    (tmp_path / "dealerbot.toml").write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    shutil.copytree(ROOT / "selectors", tmp_path / "selectors")
    shutil.copy(ROOT / "dictionary.yaml", tmp_path / "dictionary.yaml")
    return tmp_path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    # COLUMNS: tables and messages unwrapped whatever the test folder's path (longer under xdist)
    env.update(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, PYTHONUNBUFFERED="1",
               COLUMNS="200")
    return env


def _dealerbot(folder: Path, *args: str, log: str = "") -> subprocess.Popen[bytes]:
    out = open(folder / (log or f"{args[0]}.log"), "ab")  # noqa: SIM115 - the process owns it
    return subprocess.Popen([sys.executable, "-m", "dealerbot.cli", *args, "-c", str(folder / "dealerbot.toml")],
                            cwd=folder, env=_env(), stdout=out, stderr=subprocess.STDOUT)


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dealerbot.cli", *args, "-c", str(folder / "dealerbot.toml")],
                          cwd=folder, env=_env(), capture_output=True, text=True, timeout=120)


def _jobs(pg: str) -> Counter[str]:
    engine = create_engine(pg)
    try:
        with engine.connect() as conn:
            return Counter({s: n for s, n in conn.execute(text(
                "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"))})
    finally:
        engine.dispose()


def _wait_until_done(pg: str, timeout: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = _jobs(pg)
        if jobs and not jobs["todo"] and not jobs["doing"]:
            return
        assert all(p.poll() is None for p in procs), "a worker ended early"
        time.sleep(0.5)
    raise AssertionError(f"jobs not done after {timeout:.0f}s: {dict(_jobs(pg))}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def _check_store_synced(store: Store, admin: Admin) -> None:
    """The user's view of one store after its sync: every OEM order dealerbot accepted has
    exactly one contract in that store's DMS, each written once; nothing left to write."""
    state = store.sync_state()
    assert state and set(Counter(s["reconcile_class"] for s in state.values())) <= {"in_sync", "rejected"}, \
        Counter(s["reconcile_class"] for s in state.values())
    # In sync: one contract in the DMS, or none where none is due (an order cancelled before
    # it had one).
    in_sync = {k: 1 if s["contract_no"] else 0 for k, s in state.items() if s["reconcile_class"] == "in_sync"}
    dms = Counter(c["oem_order_no"] for c in admin.contracts() if c.get("oem_order_no"))
    assert {k: dms[k] for k in in_sync} == in_sync
    assert sum(in_sync.values()) > 0
    assert not [a for a in store.actions() if a.state not in ("verified", "superseded", "skipped")]
    audit = Counter((r["event"], r["natural_key"]) for r in store.audit_rows(10_000))
    assert all(n == 1 for (event, _), n in audit.items() if event in ("create_contract", "create_customer")), audit
    assert store.count(OEM_ORDER) > 0


@pytest.mark.timeout(900)
@pytest.mark.parametrize("stores", [3, pytest.param(20, marks=pytest.mark.slow)], ids=lambda n: f"{n}-stores")
def test_three_workers_sync_every_store_and_a_killed_worker_loses_and_doubles_nothing(pg, sandboxes, tmp_path, stores):
    servers = sandboxes.take(stores)
    admins = _reset(servers)
    codes = [f"S{i + 1:02d}" for i in range(stores)]
    folder = _folder(tmp_path, pg, {c: (sb.oem_url, sb.dms_url) for c, sb in zip(codes, servers, strict=True)})
    # Store S01's DMS saves slowly, so that its worker can be killed in the middle of writing.
    admins[0].behave("dms", save_delay_ms=700)
    seeded = len(admins[0].contracts())
    first = _dealerbot(folder, "worker", "--queues", "store.S01", log="worker-killed.log")
    try:
        queued = _cli(folder, "group", "run", "S01")
        assert queued.returncode == 0 and "已排队" in queued.stdout, queued.stdout + queued.stderr
        deadline = time.monotonic() + 120
        while len(admins[0].contracts()) < seeded + 2:
            assert time.monotonic() < deadline and first.poll() is None, "S01's re-key never started"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:  # also when the test fails: a worker left running would take the next test's jobs
        first.kill()  # SIGKILL: no goodbye, its job stays "doing", its run stays "running"
        first.wait()
    admins[0].behave("dms", save_delay_ms=0)

    workers = [_dealerbot(folder, "worker", "--concurrency", "1", log=f"worker-{i}.log") for i in range(WORKERS)]
    try:
        _wait_until_done(pg, 120, workers)  # a worker's sweep gives S01's job back to the queue; it resumes
        assert _jobs(pg) == Counter({"succeeded": 1})
        queued = _cli(folder, "group", "run", "all")
        assert queued.returncode == 0 and queued.stdout.count("已排队") == stores, queued.stdout + queued.stderr
        _wait_until_done(pg, 420, workers)
    finally:
        _stop(workers)
    assert all(p.returncode == 0 for p in workers), [p.returncode for p in workers]

    jobs = _jobs(pg)
    assert jobs == Counter({"succeeded": stores + 1}), jobs  # S01 twice: the killed job taken over, then a new one
    with Store.open(pg) as base:
        for code, admin in zip(codes, admins, strict=True):
            _check_store_synced(base.for_code(code), admin)
        s01 = base.for_code("S01")
        statuses = Counter(r.status for r in s01.runs(100))
        assert statuses["interrupted"] >= 1, statuses  # the killed run, marked by the sweep
        taken_over = [r for r in s01.runs(100) if r.trigger == "retry"]
        assert taken_over and all(r.status == "succeeded" for r in taken_over)
    for code in codes:  # each store's review workbook, written by the worker's sync, private to the user
        books = sorted((folder / "out" / code).glob("*.xlsx"))
        assert books and load_workbook(books[-1], read_only=True).sheetnames, code
        assert books[-1].stat().st_mode & 0o077 == 0
    status = _cli(folder, "group", "status")
    assert status.returncode == 0, status.stderr
    lines = {line.split("│")[1].strip(): line for line in status.stdout.splitlines() if line.startswith("│ S")}
    assert sorted(lines) == codes and all("│ 成功 │" in line for line in lines.values()), status.stdout
    _check_console_shows_every_store(folder, codes, pg)


def _check_console_shows_every_store(folder: Path, codes: list[str], pg: str) -> None:
    """The operator console of the group (``dealerbot console``) lists every store, synced."""
    import re
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**_env(), "DEALERBOT_CONSOLE_PASSWORD": "console-pass-1"}
    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "console", "--port", str(port), "-c",
                             str(folder / "dealerbot.toml")], cwd=folder, env=env,
                            stdout=open(folder / "console.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, follow_redirects=True) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    login = http.get("/login")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None, "the console did not start"
                    time.sleep(0.2)
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
            http.post("/login", data={"password": "console-pass-1", "csrf": csrf}).raise_for_status()
            page = http.get("/stores")
            assert page.status_code == 200, page.text[:500]
            rows = re.findall(r'<a href="/stores/(S\d+)">', page.text)
            assert rows == codes and page.text.count('class="ok"') >= len(codes)
            one = http.get("/stores/S01")
            assert one.status_code == 200 and "接手重试" in one.text  # the run taken over after the kill
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            assert http.post("/stores/S02/sync", data={"csrf": csrf}).status_code == 200
            assert http.post("/stores/S02/sync", data={"csrf": "forged"}).status_code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    engine = create_engine(pg)
    with engine.connect() as conn:
        waiting = conn.execute(text("SELECT args->>'store' FROM procrastinate_jobs WHERE status = 'todo'")).scalars().all()
    engine.dispose()
    assert waiting == ["S02"]  # queued from the console for the group's workers


def test_two_schedulers_defer_each_firing_once_per_store(pg, tmp_path):
    codes = [f"S{i + 1:02d}" for i in range(20)]  # no worker runs the jobs: no portal is reached
    folder = _folder(tmp_path, pg, {c: (f"http://127.0.0.1:9/{c}/oem", f"http://127.0.0.1:9/{c}/dms") for c in codes})
    (folder / "schedules").mkdir()
    (folder / "schedules" / "group.yaml").write_text(
        "jobs:\n  - name: orders-often\n    run: oem-orders\n    every: 2s\n    misfire_grace_seconds: 30\n"
        "  - name: nightly\n    run: sync\n    cron: '0 3 * * *'\n    stores: [S01, S02]\n"
        "  - name: rekey-often\n    run: dms-rekey\n    every: 2s\n    stores: [S03]\n", encoding="utf-8")
    with Store.open(pg) as base:  # S03's DMS login waits for a person (an SMS code): its writes wait too
        st = base.for_code("S03")
        st.start_run("20261208-070000-dms-customers-aaaa", "dms-customers", "schedule")
        st.finish_run("20261208-070000-dms-customers-aaaa", "needs_person", {}, "门户登录需要人工", None, [])
    schedulers = [_dealerbot(folder, "schedule", "start", log=f"scheduler-{i}.log") for i in range(2)]
    time.sleep(8)  # about three firings of orders-often (after start-up); no worker runs them
    _stop(schedulers)
    assert all(p.returncode == 0 for p in schedulers), [(folder / f"scheduler-{i}.log").read_text() for i in range(2)]
    with Store.open(pg) as base:
        for code in codes:
            st = base.for_code(code)
            fires = st.fires("orders-often")
            assert len(fires) >= 2, fires
            assert len({f["fire_at"] for f in fires}) == len(fires)
            skipped = [r for r in st.runs(100) if r.status == "skipped" and r.job == "orders-often"]
            # One firing deferred the job; each later one found it still waiting: each firing
            # acted on once, whichever scheduler claimed it (two would double the skips).
            assert len(skipped) == len(fires) - 1, (code, fires, skipped)
            assert st.fires("nightly") == []
        # The re-key of S03 is never queued while its login waits: each firing is recorded as
        # skipped, saying why (the reading job of the same store is queued as usual).
        waits = [r for r in base.for_code("S03").runs(100) if r.job == "rekey-often"]
        assert len(waits) >= 2 and all(r.status == "skipped" and "等待人工登录" in (r.error or "") for r in waits), waits
    engine = create_engine(pg)
    with engine.connect() as conn:
        per_store = Counter(conn.execute(text(
            "SELECT args->>'store' FROM procrastinate_jobs WHERE queueing_lock LIKE :lock"), {"lock": "%:orders-often"}
        ).scalars())
        queues = set(conn.execute(text("SELECT DISTINCT queue_name FROM procrastinate_jobs")).scalars())
        rekeys = conn.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE queueing_lock LIKE :lock"),
                              {"lock": "%:rekey-often"}).scalar()
    engine.dispose()
    assert per_store == Counter(dict.fromkeys(codes, 1))
    assert rekeys == 0
    assert queues == {"shared"}  # oem-orders only needs the OEM portal: any worker may run it


def test_workers_sharing_an_oem_account_share_its_request_budget(pg, sandboxes, tmp_path):
    """Two stores log into one OEM account (a group login) from two workers at once: the
    portal's per-account limit is never exceeded (its own counter of refusals stays 0)."""
    servers = sandboxes.take(3)
    admins = _reset(servers)
    oem = servers[0]
    window, limit = 1.0, 25  # the portal: at most 25 requests per account in a 1-second window
    admins[0].behave("oem", rate_limit_per_minute=limit, rate_limit_window_seconds=window)
    stores = {f"S{i:02d}": (oem.oem_url, servers[i].dms_url) for i in (1, 2)}
    folder = _folder(tmp_path, pg, stores, extra="")
    toml = (folder / "dealerbot.toml").read_text()
    # 20 requests a second for the account, below the portal's 25 (room for clock jitter); two
    # workers each keeping that pace on their own would send 40.
    (folder / "dealerbot.toml").write_text(toml.replace("[run]\n", "[run]\nrequests_per_minute = 1200\n"))
    assert _cli(folder, "group", "run", "all").returncode == 0
    workers = [_dealerbot(folder, "worker", log=f"worker-{i}.log") for i in range(2)]
    try:
        _wait_until_done(pg, 300, workers)
    finally:
        _stop(workers)
    counters = admins[0].counters("oem")
    assert counters["rate_limited"] == 0, counters
    assert _jobs(pg) == Counter({"succeeded": 2})
    with Store.open(pg) as base:
        for code in stores:
            assert [r.status for r in base.for_code(code).runs(10)].count("succeeded") == 5  # the whole sync
        engine = create_engine(pg)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM request_budget")).scalar() >= 1  # one shared pace
        engine.dispose()


def test_a_group_config_names_its_mistakes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "dealerbot.toml"
    cfg.write_text('[stores."S 01"]\nname = "x"\n', encoding="utf-8")
    r = _cli(tmp_path, "group", "status")
    assert r.returncode == 2 and "store code" in r.stderr
    # A store's bad section is refused by every command, naming it, before anything runs.
    cfg.write_text('[stores.S01]\nname = "x"\n[stores.S02]\n[stores.S02.dms]\nurl = "htp:/127.0.0.1:8822"\n',
                   encoding="utf-8")
    for args in (("group", "status"), ("--store", "S01", "runs"), ("worker",)):
        r = _cli(tmp_path, *args)
        assert r.returncode == 2 and "[stores.S02.dms] url" in r.stderr and "not a web address" in r.stderr, r.stderr
    cfg.write_text('[stores.S01]\n[stores.S01.dms]\nusername = "s"\npassword = "x"\n', encoding="utf-8")
    r = _cli(tmp_path, "group", "status")
    assert r.returncode == 2 and "DEALERBOT_S01_DMS_PASSWORD" in r.stderr and "--store S01 credentials set dms" in r.stderr
    cfg.write_text('[stores.S01]\nname = "x"\n', encoding="utf-8")
    r = _cli(tmp_path, "group", "status")
    assert r.returncode == 2 and "PostgreSQL" in r.stderr
    for args in (("runs",), ("reconcile",), ("run", "oem-orders")):  # a store's commands need --store
        r = _cli(tmp_path, *args)
        assert r.returncode == 2 and "--store" in r.stderr, (args, r.stderr)
    cfg.write_text(f'[store]\nurl = "{os.environ.get("DEALERBOT_TEST_POSTGRES_URL", "postgresql://x@127.0.0.1:1/x")}"\n'
                   '[stores.S01]\nname = "x"\n', encoding="utf-8")
    r = _cli(tmp_path, "worker", "--queues", "store.S9")
    assert r.returncode == 2 and "store.S9" in r.stderr and "store.S01" in r.stderr, r.stderr
    settings = load_settings(cfg)
    assert settings.for_store("S01").path("state") == tmp_path / "state" / "S01"

def test_workers_sweeping_at_once_take_a_dead_workers_job_over_once_and_never_from_a_live_one(pg, tmp_path):
    import asyncio

    from dealerbot.group.engine import GroupEngine

    folder = _folder(tmp_path, pg, {"S01": ("http://127.0.0.1:9/oem", "http://127.0.0.1:9/dms")})
    settings = load_settings(folder / "dealerbot.toml")

    async def main() -> None:
        async with GroupEngine(settings) as one, GroupEngine(settings) as two:
            job_id = await one.defer("S01", "sync", job="nightly")
            engine = create_engine(pg)
            with engine.begin() as conn:  # a worker took the job, then died an hour ago
                dead = conn.execute(text("INSERT INTO procrastinate_workers (last_heartbeat) "
                                         "VALUES (now() - interval '1 hour') RETURNING id")).scalar()
                conn.execute(text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :j"),
                             {"w": dead, "j": job_id})
            with Store.open(pg, "S01") as st:
                st.start_run("r-dead", "dms-rekey", "schedule", engine_job=job_id)
            taken = await asyncio.gather(one.sweep_stalled(), two.sweep_stalled())
            assert sorted(sum(taken, [])) == [job_id]  # once, by one of them
            with engine.begin() as conn:
                status, attempts = conn.execute(text("SELECT status::text, attempts FROM procrastinate_jobs WHERE id = :j"),
                                                {"j": job_id}).one()
                assert (status, attempts) == ("todo", 1)
                # A live worker takes it up again; a sweep acting on the old snapshot leaves it alone.
                live = conn.execute(text("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")).scalar()
                conn.execute(text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :j"),
                             {"w": live, "j": job_id})
            with Store.open(pg, "S01") as st:
                st.start_run("r-live", "dms-rekey", "retry", engine_job=job_id)
                assert st.run("r-dead").status == "interrupted"
                assert st.take_over_engine_job(job_id, dead) == ("", [])
                assert st.run("r-live").status == "running"
            engine.dispose()

    asyncio.run(main())


def test_a_job_that_cannot_start_shows_as_a_failed_run_of_its_store(pg, tmp_path):
    import asyncio

    from dealerbot.group.engine import GroupEngine

    folder = _folder(tmp_path, pg, {"S01": ("http://127.0.0.1:9/oem", "http://127.0.0.1:9/dms")})
    toml = (folder / "dealerbot.toml").read_text(encoding="utf-8")
    (folder / "dealerbot.toml").write_text(toml.replace('name = "门店S01"', 'name = "门店S01"\ndictionary = "gone.yaml"'),
                                           encoding="utf-8")
    settings = load_settings(folder / "dealerbot.toml")

    async def main() -> None:
        async with GroupEngine(settings) as engine:
            await engine.defer("S01", "sync", job="nightly")
            stopping = asyncio.Event()
            serving = asyncio.create_task(engine.serve(["store.S01"], stopping=stopping))
            deadline = time.monotonic() + 60
            while _jobs(pg)["succeeded"] < 1:
                assert time.monotonic() < deadline and not serving.done()
                await asyncio.sleep(0.2)
            stopping.set()
            await serving

    asyncio.run(main())
    with Store.open(pg, "S01") as st:
        [run] = st.runs(10)
    assert run.status == "failed" and "gone.yaml" in (run.error or "") and run.job == "nightly"


def test_credentials_set_keeps_a_group_wide_and_a_stores_own_password_apart(tmp_path):
    import json

    (tmp_path / "dealerbot.toml").write_text('[stores.S01]\nname = "x"\n', encoding="utf-8")
    env = {**_env(), "PYTHON_KEYRING_BACKEND": "integration.keyring_backend.FileKeyring",
           "DEALERBOT_TEST_KEYRING_FILE": str(tmp_path / "keyring.json"), "PYTHONPATH": str(ROOT / "tests")}
    for args, password in ((["credentials", "set", "dms"], "group-login-1"),
                           (["--store", "S01", "credentials", "set", "dms"], "pudong-only-1")):
        done = subprocess.run([sys.executable, "-m", "dealerbot.cli", *args], cwd=tmp_path, env=env, timeout=60,
                              input=f"{password}\n{password}\n", capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    stored = json.loads((tmp_path / "keyring.json").read_text(encoding="utf-8"))
    assert stored == {"dealerbot/dms:sales01": "group-login-1", "dealerbot/S01/dms:sales01": "pudong-only-1"}


def _defer(folder: Path, *jobs: tuple[str, str]) -> None:
    """Queue ``jobs`` (store, bot) at once, as `dealerbot group run STORE BOT` does."""
    import asyncio

    from dealerbot.group.engine import GroupEngine

    async def main() -> None:
        async with GroupEngine(load_settings(folder / "dealerbot.toml")) as engine:
            for store, bot in jobs:
                assert await engine.defer(store, bot, job=f"manual-{bot}") is not None

    asyncio.run(main())


def test_two_jobs_of_one_store_never_run_at_once_and_two_stores_do(pg, sandboxes, tmp_path):
    """Store jobs carry the lock store:<code>: two of S01's queued together run one after the
    other, even on a worker with room for three, while S02's runs beside them. Ground truth: the
    runs' start and end times in the store."""
    servers = sandboxes.take(2)
    admins = _reset(servers)
    for a in admins:  # each run lasts a few seconds: long enough to overlap if nothing stopped it
        a.behave("dms", slow_rate=1.0, slow_ms=150)
    folder = _folder(tmp_path, pg, {c: (sb.oem_url, sb.dms_url) for c, sb in zip(("S01", "S02"), servers, strict=True)})
    _defer(folder, ("S01", "dms-contracts"), ("S01", "dms-customers"), ("S02", "dms-contracts"))
    worker = _dealerbot(folder, "worker", "--concurrency", "3")
    try:
        _wait_until_done(pg, 180, [worker])
    finally:
        _stop([worker])
        for a in admins:
            a.behave("dms", slow_rate=0.0)
    assert _jobs(pg) == Counter({"succeeded": 3})
    with Store.open(pg) as base:
        s01 = sorted(base.for_code("S01").runs(10), key=lambda r: r.started_at)
        [s02] = base.for_code("S02").runs(10)
    assert [r.status for r in s01] == ["succeeded", "succeeded"] and s02.status == "succeeded"
    first, second = s01
    assert first.ended_at <= second.started_at, (first, second)  # S01: one at a time
    # S02 ran beside S01 (the worker did run jobs at once: the lock, not the worker, kept S01's apart)
    assert any(s02.started_at < r.ended_at and r.started_at < s02.ended_at for r in s01), (s01, s02)


def test_a_worker_stopped_by_sigterm_finishes_its_current_record_and_a_later_run_writes_the_rest_once(
        pg, sandboxes, tmp_path):
    """SIGTERM to `dealerbot worker` while its job re-keys: the contract being saved is finished
    (read back, verified) and nothing more is started; the job runs again later and writes the
    rest, each contract once (the sandbox's DMS is the ground truth)."""
    import asyncio

    from .test_rekey import assert_written_as_planned, plan, read_both

    [server] = sandboxes.take(1)
    [admin] = _reset([server])
    folder = _folder(tmp_path, pg, {"S01": (server.oem_url, server.dms_url)})
    toml = (folder / "dealerbot.toml").read_text(encoding="utf-8")
    (folder / "dealerbot.toml").write_text(toml.replace("[rekey]\n", "[rekey]\nconcurrency = 1\n"), encoding="utf-8")
    settings = load_settings(folder / "dealerbot.toml").for_store("S01")
    asyncio.run(read_both(settings))  # read and planned here: the worker's job is the re-key alone
    with Store.open(pg, "S01") as st:
        plan(settings, st)
        planned = st.actions(["approved"])  # [rekey] approval_required = []: everything goes through
    assert len([a for a in planned if a.kind == "create_contract"]) >= 2
    admin.behave("dms", save_delay_ms=1500)  # the DMS answers a save late: the stop comes inside a record
    seeded = {c["contract_no"] for c in admin.contracts()}
    _defer(folder, ("S01", "dms-rekey"))
    worker = _dealerbot(folder, "worker", "--queues", "store.S01", log="worker-stopped.log")
    try:
        deadline = time.monotonic() + 120
        while len(admin.contracts()) == len(seeded):  # the first contract is saved; its answer is on its way
            assert time.monotonic() < deadline and worker.poll() is None, "the re-key never started"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=90) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    admin.behave("dms", save_delay_ms=0)
    written = {c["oem_order_no"]: c["contract_no"] for c in admin.contracts() if c["contract_no"] not in seeded}
    with Store.open(pg, "S01") as st:
        states = Counter(st.action(a.id).state for a in planned)
        verified = {a.natural_key: a.contract_no for a in map(st.action, (a.id for a in planned))
                    if a.state == "verified" and a.kind == "create_contract"}
        [stopped] = [r for r in st.runs(10) if r.bot == "dms-rekey"]
    # Nothing half-done: each contract the DMS got is one the ledger verified, none is in flight,
    # and the rest is left untouched for the next run.
    assert written and written == verified
    assert set(states) <= {"verified", "approved"} and states["approved"] >= 1, states
    assert stopped.status == "interrupted" and "当前记录已完成" in (stopped.error or ""), stopped

    later = _dealerbot(folder, "worker", "--queues", "store.S01", log="worker-later.log")
    try:
        _wait_until_done(pg, 120, [later])  # the stopped job, tried again
    finally:
        _stop([later])
    assert _jobs(pg) == Counter({"succeeded": 1})
    with Store.open(pg, "S01") as st:
        assert_written_as_planned(admin, st, planned)  # every action verified, one contract per order
        rekeys = sorted((r.trigger, r.status) for r in st.runs(10) if r.bot == "dms-rekey")
        created = Counter(r["natural_key"] for r in st.audit_rows(1000) if r["event"] == "create_contract")
    assert rekeys == [("manual", "interrupted"), ("retry", "succeeded")], rekeys
    assert created and set(created.values()) == {1}, created

"""The run store on a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal

import pytest
from postgres import empty_postgres
from sqlalchemy import MetaData, Table, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from dealerbot.data.records import OEM_ORDER
from dealerbot.errors import ConfigError
from dealerbot.rekey.ledger import CustomerPlan, PlannedAction
from dealerbot.store import SCHEMA_HEAD, Store, build_metadata, schema_version


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A fresh, empty store of each backend a dealership may use."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return empty_postgres()


def _order(no: str, status: str) -> dict:
    return {"order_no": no, "customer_name": "王芳", "price": Decimal("189800.00"), "status": status,
            "updated_at": datetime(2026, 11, 20, 10, 31, 5)}


def test_upserts_by_key_keep_first_run_and_stream_back(url):
    with Store.open(url) as store:
        w = store.writer("run-1", batch_size=2)
        w.add(OEM_ORDER, _order("A", "已下单"), [])
        w.add(OEM_ORDER, _order("B", "已下单"), [])
        w.add(OEM_ORDER, _order("A", "已配车"), [{"field": "mobile", "code": "x", "severity": "flag", "message": "m"}])
        w.reject(OEM_ORDER, "C", "vin_check_digit", "vin", "VIN校验位错误", {"order_no": "C"})
        w.reject(OEM_ORDER, "B", "vin_check_digit", "vin", "VIN校验位错误", {"order_no": "B"})
        w.flush()
        assert [r["record_key"] for r in store.iter_open_rejects(OEM_ORDER)] == ["B", "C"]  # B: rejected last
        w2 = store.writer("run-2")
        w2.add(OEM_ORDER, _order("B", "在途"), [])
        w2.flush()
        assert [r["record_key"] for r in store.iter_open_rejects(OEM_ORDER)] == ["C"]  # B accepted since
        assert store.count(OEM_ORDER) == 2
        a, b = store.get(OEM_ORDER, "A"), store.get(OEM_ORDER, "B")
        assert a["status"] == "已配车" and a["price"] == Decimal("189800.00") and '"flag"' in a["issues"]
        assert b["status"] == "在途" and b["first_run_id"] == "run-1" and b["last_run_id"] == "run-2"
        assert [r["order_no"] for r in store.iter_records(OEM_ORDER, "run-1")] == ["A"]
        assert [r["record_key"] for r in store.iter_rejects("run-1")] == ["C", "B"]


def test_runs_of_a_killed_process_are_marked_interrupted(url):
    code = f"from dealerbot.store import Store; s = Store.open({url!r}); s.start_run('r-dead', 'oem-orders', 'manual')"
    subprocess.run([sys.executable, "-c", code], check=True)  # the process ends with the run "running"
    with Store.open(url) as store:
        store.start_run("r-alive", "oem-orders", "manual")  # this process: alive
        assert store.close_abandoned_runs() == ["r-dead"]
        assert store.run("r-dead").status == "interrupted" and store.run("r-dead").ended_at
        assert store.run("r-alive").status == "running"
        store.finish_run("r-alive", "succeeded", {"read": 1})
        assert store.runs(1)[0].counts == {"read": 1}


def test_a_store_from_an_older_dealerbot_gains_the_new_columns(tmp_path):
    import sqlite3

    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE runs (run_id VARCHAR(80) PRIMARY KEY, bot VARCHAR(64) NOT NULL, trigger VARCHAR(32) NOT NULL,"
        " started_at DATETIME NOT NULL, ended_at DATETIME, status VARCHAR(16) NOT NULL, counts TEXT NOT NULL,"
        " error TEXT, evidence_dir TEXT, evidence TEXT NOT NULL, options TEXT NOT NULL)"
    )
    con.execute("INSERT INTO runs VALUES ('old-1', 'oem-orders', 'manual', '2026-11-01 08:00:00', NULL, 'running', '{}', NULL, NULL, '[]', '{}')")
    con.commit()
    con.close()
    with Store.open(f"sqlite:///{db}") as store:
        assert store.run("old-1").status == "running"
        assert store.close_abandoned_runs() == []  # another host's (unknown) run is left alone
        store.start_run("new-1", "oem-orders", "manual")
        assert {r.run_id for r in store.runs()} == {"old-1", "new-1"}


def test_rejects_without_a_key_are_each_shown(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        for run in ("run-1", "run-2"):
            w = store.writer(run)
            for _ in range(3):
                w.reject(OEM_ORDER, "", "required", "order_no", "缺少订单号", {"customer_name": "王芳"})
            w.flush()
        open_rejects = list(store.iter_open_rejects(OEM_ORDER))
        assert len(open_rejects) == 3 and {r["run_id"] for r in open_rejects} == {"run-2"}


def test_the_migrations_build_exactly_the_schema_the_code_uses(url):
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from dealerbot.store import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD
    with Store.open(url) as store:
        assert schema_version(store.engine) == SCHEMA_HEAD
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), store.meta)
        assert diff == [], diff
        assert len(store.store_id()) == 32


def test_a_store_of_the_previous_version_with_data_upgrades_in_place(tmp_path):
    """dealerbot 0.1 made its tables with create_all and had no migrations."""
    db = tmp_path / "v01.sqlite"
    engine = create_engine(f"sqlite:///{db}")
    _, tables = build_metadata()
    meta = MetaData()  # those tables as 0.1 had them: no columns of migration 0007
    tables = {n: Table(n, meta, *(c._copy() for c in tables[n].columns if c.name not in ("store", "engine_job")))
              for n in ("runs", "rejects", "watermarks", "oem_order", "oem_customer", "dms_customer", "dms_contract")}
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(tables["oem_order"].insert().values(
            order_no="XS2026000001", status="在途", issues="[]", first_run_id="r1", last_run_id="r1",
            scraped_at=datetime(2026, 11, 20, 8, 0)))
        conn.execute(tables["watermarks"].insert().values(bot="oem-orders", value="2026-11-20T08:00:00", run_id="r1",
                                                          updated_at=datetime(2026, 11, 20, 8, 0)))
    engine.dispose()
    with Store.open(f"sqlite:///{db}") as store:
        assert schema_version(store.engine) == SCHEMA_HEAD
        assert store.get(OEM_ORDER, "XS2026000001")["status"] == "在途"
        assert store.watermark("oem-orders") == "2026-11-20T08:00:00"
        assert store.actions() == [] and store.store_id()


def _action(key: str = "XS2026000001", color: str = "白") -> PlannedAction:
    return PlannedAction("create_contract", key, {"color": color, "status": "待配车"}, customer=CustomerPlan("existing", "KH1"))


def test_one_open_action_per_order_claims_are_exclusive_and_audit_is_append_only(url):
    with Store.open(url) as store:
        ids = store.save_plan([], [(_action(), True)], [])
        first = store.action(ids["XS2026000001"])
        assert first.state == "planned" and first.stored_checksum == first.plan_checksum == _action().checksum()
        with pytest.raises(IntegrityError):  # a second create for the same order can never be planned
            store.save_plan([], [(_action(color="黑"), True)], [])
        # Superseding the open one makes room for the new plan.
        ids2 = store.save_plan([first.id], [(_action(color="黑"), False)], [])
        assert store.action(first.id).state == "superseded"
        second = store.action(ids2["XS2026000001"])
        assert second.state == "approved" and second.reviewed_by == "policy"
        store.start_run("run-a", "dms-rekey", "manual")
        store.start_run("run-b", "dms-rekey", "manual")
        assert store.claim(second.id, "run-a") and not store.claim(second.id, "run-b")
        claimed = store.action(second.id)
        assert claimed.state == "in_progress" and claimed.run_id == "run-a" and claimed.attempts == 1
        store.record_written(claimed, "run-a", "HT2026110001", "dms-rekey")
        row = store.audit_rows(5)[0]
        assert row["event"] == "create_contract" and row["target"] == "HT2026110001" and row["new_values"]["color"] == "黑"
        with store.engine.begin() as conn, pytest.raises(DBAPIError):
            conn.execute(text("UPDATE audit SET actor = 'someone else'"))
        with store.engine.begin() as conn, pytest.raises(DBAPIError):
            conn.execute(text("DELETE FROM audit"))
        assert store.audit_rows(5)[0]["actor"] == "dms-rekey"
        # A run that ends without finishing leaves the action to be taken over where it stands.
        store.finish_run("run-a", "interrupted", {})
        [left] = store.abandoned_actions()
        assert left.state == "written" and store.claim(left.id, "run-b", ("in_progress", "written"), from_run="run-a")
        assert store.action(left.id).run_id == "run-b"


def test_two_processes_opening_a_new_store_at_once_both_succeed(tmp_path):
    db = tmp_path / "race.sqlite"
    code = f"from dealerbot.store import Store; Store.open('sqlite:///{db}').close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    with Store.open(f"sqlite:///{db}") as store:
        assert schema_version(store.engine) == SCHEMA_HEAD


def test_a_damaged_store_is_refused_before_anything_reads_or_writes_it(tmp_path):
    db = tmp_path / "db.sqlite"
    with Store.open(f"sqlite:///{db}") as store:
        w = store.writer("run-1")
        for i in range(3000):
            w.add(OEM_ORDER, _order(f"XS{i:010d}", "已下单"), [])
        w.flush()
    raw = bytearray(db.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 4096] = b"\xff" * 4096  # a bad disk block in the middle
    db.write_bytes(bytes(raw))
    before = db.read_bytes()
    with pytest.raises(ConfigError, match="数据库文件已损坏") as err:
        Store.open(f"sqlite:///{db}")
    assert str(db) in str(err.value)
    assert db.read_bytes() == before  # nothing written into it
    text = tmp_path / "notes.sqlite"
    text.write_text("these are not the droids", encoding="utf-8")
    with pytest.raises(ConfigError, match="数据库文件已损坏"):
        Store.open(f"sqlite:///{text}")


def test_two_stores_of_a_group_share_one_database_and_never_see_each_others_rows(url):
    """Two stores whose portals use the same order and contract numbers: each store's records,
    rejects, watermark, ledger, audit and runs are its own."""
    with Store.open(url, store="S01") as one, Store.open(url, store="S02") as two:
        for store, status in ((one, "已下单"), (two, "在途")):
            store.start_run(f"run-{store.code}", "oem-orders", "schedule")
            w = store.writer(f"run-{store.code}")
            w.add(OEM_ORDER, _order("XS2026000001", status), [])
            w.reject(OEM_ORDER, "XS2026000002", "vin_check_digit", "vin", "VIN校验位错误", {"order_no": "XS2026000002"})
            w.flush()
            store.set_watermark("oem-orders@x", f"2026-12-0{1 if store is one else 2}T08:00:00", f"run-{store.code}")
            store.save_plan([], [(_action(color="白" if store is one else "黑"), False)],
                            [{"oem_order_no": "XS2026000001", "contract_no": None, "reconcile_class": "missing", "reason": "",
                              "changes": "[]", "base": "{}"}])
        assert one.get(OEM_ORDER, "XS2026000001")["status"] == "已下单"
        assert two.get(OEM_ORDER, "XS2026000001")["status"] == "在途"
        assert one.count(OEM_ORDER) == two.count(OEM_ORDER) == 1
        assert [r["record_key"] for r in one.iter_open_rejects(OEM_ORDER)] == ["XS2026000002"]
        assert one.watermark("oem-orders@x") == "2026-12-01T08:00:00" and two.watermark("oem-orders@x") == "2026-12-02T08:00:00"
        [a1], [a2] = one.actions(), two.actions()  # one open action per order *per store*
        assert (a1.new_values["color"], a2.new_values["color"]) == ("白", "黑")
        assert one.action(a2.id) is None and not one.claim(a2.id, "run-S01")
        assert [r.run_id for r in one.runs()] == ["run-S01"] and two.run("run-S01") is None
        assert set(one.sync_state()) == {"XS2026000001"} and one.latest_actions()["XS2026000001"].id == a1.id
        with pytest.raises(IntegrityError):  # still one open action per order within a store
            two.save_plan([], [(_action(), True)], [])
        # A timetable firing is claimed once per store, whoever tries first.
        assert one.claim_fire("nightly", "2026-12-06T19:00:00Z", "a") and two.claim_fire("nightly", "2026-12-06T19:00:00Z", "a")
        assert not one.claim_fire("nightly", "2026-12-06T19:00:00Z", "b")
        assert [f["scheduler"] for f in one.fires("nightly")] == ["a"]
    with pytest.raises(ConfigError, match="store code"):
        Store.open(url, store="S 01; drop")


def test_a_single_store_install_upgrades_into_the_store_keyed_schema_in_place(tmp_path):
    """A dealership's SQLite store from before groups (schema 0006), with records, a watermark
    and an open action: after the upgrade all of it is store ``main``'s, unchanged."""
    from alembic import command
    from alembic.config import Config

    from dealerbot.store import MIGRATIONS

    db = tmp_path / "shop.sqlite"
    engine = create_engine(f"sqlite:///{db}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(text("INSERT INTO oem_order (order_no, status, issues, first_run_id, last_run_id, scraped_at) "
                          "VALUES ('XS2026000001', '在途', '[]', 'r1', 'r1', '2026-11-20 08:00:00')"))
        conn.execute(text("INSERT INTO watermarks VALUES ('oem-orders', '2026-11-20T08:00:00', 'r1', '2026-11-20 08:00:00')"))
        conn.execute(text(
            "INSERT INTO actions (kind, natural_key, customer, new_values, plan_values, old_values, checksum, "
            "plan_checksum, state, needs_approval, conflict, note, planned_at, updated_at, attempts) VALUES "
            "('create_contract', 'XS2026000001', '{}', '{}', '{}', '{}', 'c', 'c', 'planned', 1, 0, '', "
            "'2026-11-20 08:00:00', '2026-11-20 08:00:00', 0)"))
    engine.dispose()
    with Store.open(f"sqlite:///{db}") as store:
        assert schema_version(store.engine) == SCHEMA_HEAD and store.code == "main"
        assert store.get(OEM_ORDER, "XS2026000001")["status"] == "在途"
        assert store.watermark("oem-orders") == "2026-11-20T08:00:00"
        [action] = store.actions()
        assert action.state == "planned"
        with pytest.raises(IntegrityError):  # the open-action index still holds after the copy
            store.save_plan([], [(_action(), True)], [])
    with Store.open(f"sqlite:///{db}", store="S02") as other:
        assert other.get(OEM_ORDER, "XS2026000001") is None and other.actions() == []


def test_a_store_at_0008_keeps_its_orders_reconciliation_through_the_rename_of_klass(url):
    """Migration 0011 renames ``order_sync.klass`` to ``reconcile_class`` (issue #21): a store at
    0008 with reconciled orders of two stores upgrades with every value, key and index kept."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from dealerbot.store import MIGRATIONS

    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
        for store, order_no, contract_no, klass in (("main", "XS2026000001", "HT2026110001", "in_sync"),
                                                    ("main", "XS2026000002", None, "conflict"),
                                                    ("S02", "XS2026000001", None, "rejected")):
            conn.execute(text(
                "INSERT INTO order_sync (store, oem_order_no, contract_no, klass, reason, changes, base, action_id, "
                "reconciled_at) VALUES (:store, :no, :contract, :klass, :reason, '[]', '{}', NULL, '2026-11-20 08:00:00')"),
                {"store": store, "no": order_no, "contract": contract_no, "klass": klass, "reason": f"{klass} 原因"})
    engine.dispose()
    with Store.open(url) as store:
        assert schema_version(store.engine) == SCHEMA_HEAD
        with store.engine.connect() as conn:
            rows = sorted(conn.execute(text("SELECT store, oem_order_no, contract_no, reconcile_class, reason "
                                            "FROM order_sync")).all())
            indexes = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes("order_sync")}
        assert [tuple(r) for r in rows] == [("S02", "XS2026000001", None, "rejected", "rejected 原因"),
                                            ("main", "XS2026000001", "HT2026110001", "in_sync", "in_sync 原因"),
                                            ("main", "XS2026000002", None, "conflict", "conflict 原因")]
        assert indexes.get("ix_order_sync_reconcile_class") == ["reconcile_class"] and "ix_order_sync_klass" not in indexes
        with pytest.raises(IntegrityError):  # the (store, order) key survived the copy
            with store.engine.begin() as conn:
                conn.execute(text("INSERT INTO order_sync (store, oem_order_no, reconcile_class, reason, changes, base, "
                                  "reconciled_at) VALUES ('main', 'XS2026000001', 'create', '', '[]', '{}', "
                                  "'2026-11-20 08:00:00')"))


_HOLD = ("import sys; from dealerbot.store import Store; s = Store.open({url!r}, {code!r}); "
         "held = s.ledger_lock('dms-rekey run-1'); held.__enter__(); print('held', flush=True); sys.stdin.readline()")


def test_the_ledger_lock_keeps_planning_and_writing_apart_across_processes(url):
    """What a reconcile meets while a re-key run (another process, another machine) writes."""
    from dealerbot.store import LedgerLock

    with Store.open(url, "S01") as store:
        writer = subprocess.Popen([sys.executable, "-c", _HOLD.format(url=url, code="S01")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "held"
        lock = LedgerLock(store, "reconcile")
        assert not lock.try_acquire() and lock.holder().startswith("dms-rekey run-1")
        other = LedgerLock(store.for_code("S02"), "reconcile")  # another store of the group: not held up
        assert other.try_acquire()
        other.release()
        told: list[str] = []

        def the_rekey_finishes(who: str) -> None:  # while the reconcile waits
            told.append(who)
            writer.stdin.write("\n")
            writer.stdin.flush()

        with store.ledger_lock("reconcile", on_wait=the_rekey_finishes):
            assert writer.wait(30) == 0  # it got the lock only once the holder was gone
        assert len(told) == 1 and told[0].startswith("dms-rekey run-1")
        # A holder killed outright leaves no lock behind.
        killed = subprocess.Popen([sys.executable, "-c", _HOLD.format(url=url, code="S01")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert killed.stdout.readline().strip() == "held"
        killed.kill()
        killed.wait()
        # PostgreSQL ends a killed client's session (and its advisory lock) once it sees the
        # connection closed: a moment, longer on a loaded machine; SQLite's file lock goes at once.
        deadline = time.monotonic() + (10 if url.startswith("postgresql") else 0)
        while not lock.try_acquire():
            assert time.monotonic() < deadline, f"the killed holder's lock is still held: {lock.holder()}"
            time.sleep(0.1)
        lock.release()
        with store.ledger_lock("reconcile", on_wait=lambda who: pytest.fail(f"waited for {who}")):
            pass


def test_the_ledger_lock_holds_between_tasks_of_one_process(url):
    """The console runs a re-key and its timetable's sync in one event loop: the sync's
    reconcile waits without blocking the loop, so the re-key can finish."""
    import asyncio

    async def main() -> list[str]:
        with Store.open(url) as store:
            held, finish = asyncio.Event(), asyncio.Event()

            async def rekey() -> None:
                async with store.ledger_lock_async("dms-rekey run-2"):
                    held.set()
                    await finish.wait()

            task = asyncio.create_task(rekey())
            await held.wait()
            told: list[str] = []
            async with store.ledger_lock_async("reconcile", on_wait=lambda who: (told.append(who), finish.set())):
                assert task.done()
            return told

    told = asyncio.run(main())
    assert len(told) == 1 and told[0].startswith("dms-rekey run-2")

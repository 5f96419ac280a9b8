"""The run store on a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import create_engine

from dealerbot.records import OEM_ORDER
from dealerbot.store import Store, _build_metadata

PG_ENV = "DEALERBOT_TEST_POSTGRES_URL"  # set by .ci/run, which starts a PostgreSQL server


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A fresh, empty store of each backend a dealership may use."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    pg = os.environ.get(PG_ENV)
    if not pg:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (CI does)")
    engine = create_engine(pg)
    _build_metadata()[0].drop_all(engine)
    engine.dispose()
    return pg


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

"""The run store on a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from decimal import Decimal

from dealerbot.records import OEM_ORDER
from dealerbot.store import Store


def _order(no: str, status: str) -> dict:
    return {"order_no": no, "customer_name": "王芳", "price": Decimal("189800.00"), "status": status,
            "updated_at": datetime(2026, 11, 20, 10, 31, 5)}


def test_upserts_by_key_keep_first_run_and_stream_back(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        w = store.writer("run-1", batch_size=2)
        w.add(OEM_ORDER, _order("A", "已下单"), [])
        w.add(OEM_ORDER, _order("B", "已下单"), [])
        w.add(OEM_ORDER, _order("A", "已配车"), [{"field": "mobile", "code": "x", "severity": "flag", "message": "m"}])
        w.reject(OEM_ORDER, "C", "vin_check_digit", "vin", "VIN校验位错误", {"order_no": "C"})
        w.flush()
        w2 = store.writer("run-2")
        w2.add(OEM_ORDER, _order("B", "在途"), [])
        w2.flush()
        assert store.count(OEM_ORDER) == 2
        a, b = store.get(OEM_ORDER, "A"), store.get(OEM_ORDER, "B")
        assert a["status"] == "已配车" and a["price"] == Decimal("189800.00") and '"flag"' in a["issues"]
        assert b["status"] == "在途" and b["first_run_id"] == "run-1" and b["last_run_id"] == "run-2"
        assert [r["order_no"] for r in store.iter_records(OEM_ORDER, "run-1")] == ["A"]
        assert [r["record_key"] for r in store.iter_rejects("run-1")] == ["C"]


def test_runs_of_a_killed_process_are_marked_interrupted(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    code = f"from dealerbot.store import Store; s = Store.open({url!r}); s.start_run('r-dead', 'oem-orders', 'manual')"
    subprocess.run([sys.executable, "-c", code], check=True)  # the process ends with the run "running"
    with Store.open(url) as store:
        store.start_run("r-alive", "oem-orders", "manual")  # this process: alive
        assert store.close_abandoned_runs() == ["r-dead"]
        assert store.run("r-dead").status == "interrupted" and store.run("r-dead").ended_at
        assert store.run("r-alive").status == "running"
        store.finish_run("r-alive", "succeeded", {"read": 1})
        assert store.runs(1)[0].counts == {"read": 1}

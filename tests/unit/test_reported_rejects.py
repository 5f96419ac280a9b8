"""The store's memory of the rejects a message named (``reported_rejects``), on a real SQLite file."""

from __future__ import annotations

from datetime import datetime

from dealerbot.data.records import OEM_ORDER
from dealerbot.store import Store


def _read(store: Store, run_id: str, rejects: dict[str, str], accepted: tuple[str, ...] = ()) -> None:
    """A reading run of oem-orders: ``rejects`` order no -> reason, ``accepted`` order nos."""
    store.start_run(run_id, "oem-orders", "manual")
    w = store.writer(run_id)
    for no in accepted:
        w.add(OEM_ORDER, {"order_no": no, "status": "已下单", "updated_at": datetime(2026, 12, 1)}, [])
    for no, reason in rejects.items():
        w.reject(OEM_ORDER, no, "vin_check_digit", "vin", reason, {"order_no": no})
    w.flush()


def _news(store: Store, run_id: str) -> list[str]:
    fresh = store.unreported_rejects("oem-orders", run_id)
    store.mark_rejects_reported("oem-orders", run_id, fresh)
    return sorted(r["record_key"] or r["reason"] for r in fresh)


def test_a_reject_is_news_once_then_again_when_it_changes_or_after_the_record_was_accepted(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        _read(store, "r1", {"A": "VIN校验位错误：应为 1，实为 4", "B": "VIN校验位错误：应为 9，实为 8", "": "订单号为空"})
        assert _news(store, "r1") == ["A", "B", "订单号为空"]
        _read(store, "r2", {"A": "VIN校验位错误：应为 1，实为 4", "B": "VIN校验位错误：应为 9，实为 8", "": "订单号为空"})
        assert _news(store, "r2") == []  # the same rejects: nothing new
        _read(store, "r3", {"A": "VIN校验位错误：应为 1，实为 7", "B": "VIN校验位错误：应为 9，实为 8"})
        assert _news(store, "r3") == ["A"]  # A's VIN changed and is still wrong: news
        _read(store, "r4", {}, accepted=("B",))  # B fixed at the OEM
        assert _news(store, "r4") == []
        _read(store, "r5", {"B": "VIN校验位错误：应为 9，实为 8"})
        assert _news(store, "r5") == ["B"]  # wrong again after it was accepted: news again
        # Not sent (so not marked): named the next time.
        _read(store, "r6", {"C": "VIN校验位错误：应为 2，实为 3"})
        assert [r["record_key"] for r in store.unreported_rejects("oem-orders", "r6")] == ["C"]
        _read(store, "r7", {"C": "VIN校验位错误：应为 2，实为 3"})
        assert _news(store, "r7") == ["C"]
        # Another dealership store of the same database has its own memory.
        other = store.for_code("S02")
        assert other.unreported_rejects("oem-orders", "r7") == []  # r7's rejects are not S02's
        # Only digests are kept: no reason, no value.
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT * FROM reported_rejects").fetchall()
        assert rows and not any("VIN" in str(v) or "应为" in str(v) for row in rows for v in row)

"""Planning a rollback against a real store (SQLite and PostgreSQL), without a browser: what is
refused with nothing changed, what an open action of the same order becomes, and that a plan is
stored once. The whole loop against the sandbox: tests/integration/test_rollback.py."""

from __future__ import annotations

import pytest
from postgres import empty_postgres

from dealerbot.errors import RollbackRefused
from dealerbot.rekey.ledger import PlannedAction, Policy
from dealerbot.rekey.rollback import plan_rollback, save_plan
from dealerbot.store import Store

CONTRACT = {"oem_order_no": "XS1", "model_code": "DMS-GX3S", "color": "珍珠白", "vin": "", "price": "100000.00",
            "deposit": "0", "delivery_date": "2026-12-20", "status": "待配车"}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else empty_postgres()
    with Store.open(url) as s:
        yield s


def _write(store: Store, run_id: str, new: dict[str, str], finish: bool = True) -> None:
    """What a re-key run leaves after updating contract HT1 of order XS1 from CONTRACT to ``new``."""
    store.start_run(run_id, "dms-rekey", "manual")
    [action_id] = store.save_plan([], [(PlannedAction("update_contract", "XS1", new, CONTRACT, contract_no="HT1"), False)],
                                  []).values()
    assert store.claim(action_id, run_id)
    action = store.action(action_id)
    store.record_written(action, run_id, "HT1", "dms-rekey", old_values=CONTRACT)
    store.record_verified(action, run_id, "HT1")
    if finish:
        store.finish_run(run_id, "succeeded", {"actions": 1, "verified": 1})


def _ledger(store: Store) -> list[tuple[int, str]]:
    return [(a.id, a.state) for a in store.actions()]


def test_a_rollback_supersedes_the_orders_open_action_once_and_is_refused_the_second_time(store):
    wrong = {**CONTRACT, "status": "运输中"}
    _write(store, "r1", wrong)
    # Planned over what r1 wrote, approved by a person: the rollback replaces it, and says so.
    [later] = store.save_plan([], [(PlannedAction("update_contract", "XS1", {**wrong, "color": "曜石黑"}, wrong,
                                                  contract_no="HT1"), True)], []).values()
    assert not store.review([{"id": later, "checksum": store.action(later).stored_checksum, "decision": "approve"}], "王经理")
    plan = plan_rollback(store, "r1", "已取消", Policy())
    [rev] = plan.reversals
    assert rev.restore == {"status": ("运输中", "待配车")} and rev.replaces is not None and rev.replaces.id == later
    assert _ledger(store)[-1] == (later, "approved")  # planning alone changes nothing
    ids = save_plan(store, plan, "李会计")
    reverse = store.action(ids["XS1"])
    assert reverse.state == "planned" and reverse.needs_approval and reverse.kind == "update_contract"
    assert reverse.new_values["status"] == "待配车" and reverse.old_values["status"] == "运输中"
    assert store.action(later).state == "superseded"
    events = [(r["event"], r["actor"]) for r in store.audit_rows(20)]
    assert ("rollback_planned", "李会计") in events and ("approval_dropped", "李会计") in events
    assert store.reverse_actions() == {reverse.id: "r1"}
    before = (_ledger(store), len(store.audit_rows(1000)))
    with pytest.raises(RollbackRefused, match="已于 .* 由 李会计 计划过回滚"):
        plan_rollback(store, "r1", "已取消", Policy())
    with pytest.raises(RollbackRefused, match="已计划过回滚"):  # two planners at once: the second stores nothing
        save_plan(store, plan, "另一人")
    assert (_ledger(store), len(store.audit_rows(1000))) == before


def test_a_run_still_writing_or_an_order_being_written_is_refused_with_nothing_changed(store):
    _write(store, "r1", {**CONTRACT, "status": "运输中"}, finish=False)
    with pytest.raises(RollbackRefused, match="还没有结束"):
        plan_rollback(store, "r1", "已取消", Policy())
    store.finish_run("r1", "succeeded", {"actions": 1, "verified": 1})
    # Another run took a new action of the same order and died before reading it back.
    store.start_run("r2", "dms-rekey", "manual")
    [second] = store.save_plan([], [(PlannedAction("update_contract", "XS1", {**CONTRACT, "status": "待交车"},
                                                   {**CONTRACT, "status": "运输中"}, contract_no="HT1"), False)], []).values()
    assert store.claim(second, "r2")
    before = (_ledger(store), len(store.audit_rows(1000)))
    with pytest.raises(RollbackRefused, match="XS1 正在写入DMS"):
        plan_rollback(store, "r1", "已取消", Policy())
    assert (_ledger(store), len(store.audit_rows(1000))) == before


def test_the_command_prints_the_plan_in_chinese_and_stores_it_for_review(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    from typer.testing import CliRunner

    from dealerbot.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEALERBOT_CONFIG", raising=False)
    shutil.copy(Path(__file__).resolve().parents[2] / "dictionary.yaml", tmp_path / "dictionary.yaml")
    with Store.open(f"sqlite:///{tmp_path / 'var' / 'dealerbot.sqlite'}") as store:
        _write(store, "r1", {**CONTRACT, "status": "运输中", "vin": "LGXGX3A11SZ000058"})
        result = CliRunner().invoke(app, ["rollback", "--run", "r1", "--by", "李会计"])
        assert result.exit_code == 0, result.output
        assert "XS1 合同 HT1：恢复 VIN LGXGX3A11SZ000058→空；合同状态 运输中→待配车" in result.output
        assert "计划回滚操作 1 条（均需审核同意）" in result.output and "此处没有写入DMS" in result.output
        [reverse] = [a for a in store.actions(["planned"])]
        assert reverse.note.startswith("回滚运行 r1：恢复") and store.reverse_actions() == {reverse.id: "r1"}

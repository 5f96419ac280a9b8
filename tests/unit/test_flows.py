"""Flows as declared things (issue #24): the ledger's actions carry their flow (migration 0013,
one open action per store, flow and key), the shipped re-key is the flow ``orders`` with
``[rekey]``'s policy, and ``[flows]`` switches flows on and chooses approvals per flow, bad values
named by file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from postgres import empty_postgres
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from dealerbot.config import load_settings
from dealerbot.errors import ConfigError
from dealerbot.flows.registry import check_flows, discover_flows, enabled_flows, flow_policy
from dealerbot.rekey.ledger import CustomerPlan, PlannedAction
from dealerbot.store import SCHEMA_HEAD, Store, schema_version

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return empty_postgres()


def test_a_store_at_0011_upgrades_its_actions_into_the_orders_flow_and_keys_open_actions_per_flow(url):
    from alembic import command
    from alembic.config import Config

    from dealerbot.store import MIGRATIONS

    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0011")
        conn.execute(text(
            "INSERT INTO actions (store, kind, natural_key, customer, new_values, plan_values, old_values, checksum, "
            "plan_checksum, state, needs_approval, conflict, note, planned_at, updated_at, attempts) VALUES "
            "('main', 'create_contract', 'XS2026000001', '{}', '{}', '{}', '{}', 'c', 'c', 'planned', true, false, '', "
            "'2026-11-20 08:00:00', '2026-11-20 08:00:00', 0)"))
    engine.dispose()
    with Store.open(url) as store:
        assert schema_version(store.engine) == SCHEMA_HEAD
        [old] = store.actions()
        assert old.flow == "orders" and store.latest_actions()["XS2026000001"].id == old.id
        create = PlannedAction("create_contract", "XS2026000001", {"status": "待配车"}, customer=CustomerPlan("existing", "KH1"))
        with pytest.raises(IntegrityError):  # still one open action per order in the orders flow
            store.save_plan([], [(create, True)], [])
        other = PlannedAction("register_car", "XS2026000001", {"vin": "X"}, flow="usedcars")  # type: ignore[arg-type]
        ids = store.save_plan([], [(other, False)], [])  # another flow may act on the same key
        assert store.action(ids["XS2026000001"]).flow == "usedcars"
        assert [a.flow for a in store.actions(flow="usedcars")] == ["usedcars"]
        assert set(store.latest_actions("usedcars")) == {"XS2026000001"} and store.latest_actions()["XS2026000001"].id == old.id


def _settings(tmp_path: Path, body: str):
    (tmp_path / "dealerbot.toml").write_text(body, encoding="utf-8")
    return load_settings(tmp_path / "dealerbot.toml")


def test_flows_settings_switch_flows_and_approvals_and_an_old_config_behaves_as_before(tmp_path):
    old = _settings(tmp_path, '[rekey]\napproval_required = ["cancel_contract"]\nenabled = ["create_contract"]\n')
    [orders] = enabled_flows(old)
    assert orders.name == "orders" and orders.read_bots[0] == "oem-orders" and orders.kinds["create_contract"] == "新建合同"
    assert flow_policy(orders, old) == old.rekey.policy()  # [rekey] still decides for orders
    assert "orders（厂家订单录入DMS）：写入 新建合同；需审核 取消合同" in check_flows(old)[0]

    new = _settings(tmp_path, '[flows]\nenabled = ["orders"]\n[flows.orders]\napproval_required = []\n')
    policy = flow_policy(orders, new)
    assert policy.approval_required == frozenset() and policy.enabled == new.rekey.policy().enabled

    shop = load_settings(ROOT / "examples" / "usedcars" / "dealerbot.toml")
    [usedcars] = enabled_flows(shop)
    assert usedcars.name == "usedcars" and usedcars.writer_bot == "usedcars-flow-write"
    assert {"orders", "usedcars", "deliveries", "leads", "followups"} <= set(discover_flows(shop.home))  # the shipped ones too
    assert flow_policy(usedcars, shop).approval_required == frozenset({"register_car"})

    for body, words in (
        ('[flows]\nenabled = ["ordres"]\n', ("[flows] enabled", "ordres", "是不是 'orders'")),
        ('[flows.orders]\napproval_required = ["create_car"]\n', ("[flows.orders]", "create_car", "create_contract")),
        ('[flows.orders]\napprove = ["create_contract"]\n', ("flows", "approve")),
        ('[flows]\nenabled = "orders"\n', ("flows.enabled",)),
    ):
        with pytest.raises(ConfigError) as exc:
            settings = _settings(tmp_path, body)
            check_flows(settings)
        assert all(w in str(exc.value) for w in words), (body, str(exc.value))
        assert "dealerbot.toml" in str(exc.value)


def test_a_timetable_fires_sync_for_one_flow_named_in_its_options(tmp_path):
    from dealerbot.errors import DataFileError
    from dealerbot.running.registry import discover
    from dealerbot.schedule.timetable import load_timetables

    folder = tmp_path / "schedules"
    folder.mkdir()
    job = "jobs:\n  - name: orders-only\n    run: sync\n    cron: '30 7 * * *'\n    options: {flow: %s, dry_run: false}\n"
    (folder / "daily.yaml").write_text(job % "orders", encoding="utf-8")
    [loaded] = load_timetables(folder, discover(), flows=discover_flows())
    assert loaded.options == {"flow": "orders", "dry_run": False} and set(loaded.portals) == {"oem", "dms"}
    (folder / "daily.yaml").write_text(job % "ordres", encoding="utf-8")
    with pytest.raises(DataFileError) as exc:
        load_timetables(folder, discover(), flows=discover_flows())
    assert "daily.yaml:5" in str(exc.value) and "no flow 'ordres'" in str(exc.value)

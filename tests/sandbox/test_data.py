"""The deterministic data generator."""

from __future__ import annotations

from collections import Counter

from dealerbot.sandbox.data import (
    CONTRACT_STATUSES,
    DMS_MODELS,
    NEW_MODEL,
    OEM_MODELS,
    OEM_TO_DMS,
    OEM_TO_DMS_STATUS,
    PRICE_MAX,
    PRICE_MIN,
    STATUSES,
    generate,
    id_is_valid,
    mobile_is_clean,
    vin_check_digit,
    vin_is_valid,
)


def test_same_seed_same_data_other_seed_differs():
    a, b, c = generate(7, 300), generate(7, 300), generate(8, 300)
    assert a == b
    assert a.oem_orders != c.oem_orders


def test_check_digit_algorithms():
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"  # the textbook example
    assert vin_is_valid("1M8GDM9AXKP042788") and not vin_is_valid("1M8GDM9A1KP042788")
    assert id_is_valid("11010519491231002X") and not id_is_valid("110105194912310021")


def test_mobiles_vins_ids_and_shape():
    ds = generate(20261125, 2000)
    custs, orders = ds.oem_customers, ds.oem_orders
    assert len(orders) == 2000 and len(custs) == 1600
    messy = [c["mobile"] for c in custs if not mobile_is_clean(c["mobile"])]
    assert 0.10 <= len(messy) / len(custs) <= 0.15
    kinds = " ".join(messy)
    assert " " in kinds and "-" in kinds and "+86" in kinds and "0086" in kinds and "１" in kinds
    vins = [o["vin"] for o in orders if o["vin"]]
    assert len(set(vins)) == len(vins)
    bad = [v for v in vins if not vin_is_valid(v)]
    assert 0.005 <= len(bad) / len(vins) <= 0.04
    assert all(len(v) == 17 and not set(v) & set("IOQ") for v in vins)
    assert all(o["vin"] == "" for o in orders if o["status"] == "已下单")
    ids = [c["id_number"] for c in custs if c["id_type"] == "身份证"]
    assert 0.003 <= sum(not id_is_valid(i) for i in ids) / len(ids) <= 0.03
    assert {"护照", "港澳通行证"} <= {c["id_type"] for c in custs}
    consent = sum(c["consent"] == "已授权" for c in custs) / len(custs)
    assert 0.75 <= consent <= 0.85
    assert all(PRICE_MIN <= o["price"] <= PRICE_MAX for o in orders)
    assert set(Counter(o["status"] for o in orders)) == set(STATUSES)
    assert {o["model_code"] for o in orders} <= {m[0] for m in OEM_MODELS} | {NEW_MODEL[0]}
    # duplicates: same person (id number) twice with a differently formatted mobile
    by_id = Counter((c["name"], c["id_number"]) for c in custs)
    dups = [k for k, n in by_id.items() if n > 1]
    assert len(dups) >= 2
    # updated_at within 60 days before the reference
    span = {o["updated_at"][:10] for o in orders}
    assert min(span) >= "2026-09-26" and max(span) <= "2026-11-25"


def test_formula_injection_fixtures():
    ds = generate(7, 120)
    cities = [c["city"] for c in ds.oem_customers]
    assert sum(c.startswith("=") for c in cities) == 2 and sum(c.startswith("+") for c in cities) == 1
    addrs = [c["address"] for c in ds.dms_customers]
    assert sum(a.startswith("@") for a in addrs) == 1 and sum(a.startswith("-") for a in addrs) == 1


def test_dms_contracts():
    ds = generate(7, 500)
    contracts = ds.dms_contracts
    assert abs(len(contracts) - 200) <= 1
    assert contracts[0]["contract_no"] == "HT2026110001"
    dms_codes = {c for c, _ in DMS_MODELS}
    assert all(c["model_code"] in dms_codes for c in contracts)
    assert not dms_codes & {m[0] for m in OEM_MODELS}
    cust_nos = {c["customer_no"] for c in ds.dms_customers}
    assert all(c["customer_no"] in cust_nos for c in contracts)
    oem_nos = {o["order_no"] for o in ds.oem_orders}
    assert all(c["oem_order_no"] in oem_nos for c in contracts)
    assert len({c["oem_order_no"] for c in contracts}) == len(contracts)
    assert {c["status"] for c in contracts} <= set(CONTRACT_STATUSES)
    oem_ids = {c["id_number"] for c in ds.oem_customers}
    only = [c for c in ds.dms_customers if c["id_number"] not in oem_ids]
    assert only and len(only) < len(ds.dms_customers)


def test_scales():
    ds = generate(1, 10_000)
    assert len(ds.oem_orders) == 10_000


def test_the_dms_lags_behind_the_oem():
    """Statuses are the DMS's own words; a third of the contracts are behind their order; the
    newly launched model appears in recent orders only, none of them with a contract."""
    ds = generate(20261125, 2000)
    orders = {o["order_no"]: o for o in ds.oem_orders}
    lifecycle = list(CONTRACT_STATUSES[:5])
    behind = 0
    for c in ds.dms_contracts:
        target = OEM_TO_DMS_STATUS[orders[c["oem_order_no"]]["status"]]
        assert lifecycle.index(c["status"]) <= lifecycle.index(target)
        behind += c["status"] != target
        if c["status"] == "待配车":
            assert c["vin"] == ""
    assert 0.2 <= behind / len(ds.dms_contracts) <= 0.4
    new = [o for o in ds.oem_orders if o["model_code"] == NEW_MODEL[0]]
    assert len(new) == 40
    assert not {o["order_no"] for o in new} & {c["oem_order_no"] for c in ds.dms_contracts}
    assert NEW_MODEL[0] not in OEM_TO_DMS

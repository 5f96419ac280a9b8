"""The delivery-report reading bots against the sandbox: ``dms-deliveries`` (交车记录, two pages)
and ``oem-reports`` (上报记录) store exactly the sandbox's ground truth; the buyers' personal
data never appears unmasked in the logs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from dealerbot.data.records import DMS_DELIVERY, OEM_REPORT
from dealerbot.running.runner import run_bot

from .conftest import PASSWORDS
from .test_failures import _all_text_under


async def test_read_bots_store_exactly_the_deliveries_and_reports_of_the_sandbox(settings, store, clean_sandbox):
    # Three more deliveries, so that the list has a second page; one whose clerk typed the buyer's
    # ID number into the date (rejected with its reason, which must not show the number).
    delivered = {d["contract_no"] for d in clean_sandbox.rows("dms", "deliveries")}
    free = [c for c in clean_sandbox.contracts() if c["contract_no"] not in delivered and c["vin"]][:3]
    customers = {c["customer_no"]: c for c in clean_sandbox.customers()}
    typo_id = customers[free[2]["customer_no"]]["id_number"]
    for k, c in enumerate(free):
        clean_sandbox.dms.post("/__admin/deliveries", json={
            "contract_no": c["contract_no"], "invoice_no": f"5555000{k}", "consent": "未授权" if k else "已授权",
            "delivery_date": typo_id if k == 2 else "2026-11-10"}).raise_for_status()
    truth = {d["delivery_no"]: d for d in clean_sandbox.rows("dms", "deliveries")}
    assert len(truth) > 20  # two pages
    reports = {r["report_no"]: r for r in clean_sandbox.rows("oem", "reports") if r["dealer_code"] == "D31001"}

    got = await run_bot("dms-deliveries", settings, passwords=PASSWORDS)
    assert got.ok, got.error
    typo = next(no for no, d in truth.items() if d["delivery_date"] == typo_id)
    assert {r["record_key"] for r in store.iter_rejects(got.run_id, DMS_DELIVERY)} == {typo}
    stored = {r["delivery_no"]: r for r in store.iter_records(DMS_DELIVERY)}
    assert set(stored) == set(truth) - {typo}
    for no, row in stored.items():
        d = truth[no]
        assert (row["contract_no"], row["customer_no"], row["vin"], row["invoice_no"], row["plate_no"], row["model_code"]) == (
            d["contract_no"], d["customer_no"], d["vin"], d["invoice_no"], d["plate_no"], d["model_code"])
        assert (row["buyer_name"], row["buyer_id_number"], row["buyer_mobile"]) == (d["buyer_name"], d["buyer_id_number"], d["buyer_mobile"])
        assert row["delivery_date"] == date.fromisoformat(d["delivery_date"])
        assert row["invoice_amount"] == Decimal(str(d["invoice_amount"])).quantize(Decimal("0.01"))
        assert row["consent"] is (d["consent"] == "已授权")
        assert row["updated_at"] == datetime.fromisoformat(d["updated_at"])

    got = await run_bot("oem-reports", settings, passwords=PASSWORDS)
    assert got.ok, got.error
    stored = {r["report_no"]: r for r in store.iter_records(OEM_REPORT)}
    assert set(stored) == set(reports) and reports
    for no, row in stored.items():
        r = reports[no]
        assert (row["vin"], row["invoice_no"], row["buyer_id_number"], row["buyer_mobile"], row["model_code"]) == (
            r["vin"], r["invoice_no"], r["buyer_id_number"], r["buyer_mobile"], r["model_code"])
        assert (row["delivery_date"], row["reported_on"], row["deadline"]) == tuple(
            date.fromisoformat(r[k]) for k in ("delivery_date", "reported_on", "deadline"))
        assert row["status"] == ("逾期上报" if r["late"] else "按时上报") and row["consent"] is (r["consent"] == "已授权")

    text = _all_text_under(settings.path("logs"))
    assert f"rejected dms_delivery {typo}" in text and f"「{typo_id[:6]}********{typo_id[-4:]}」" in text  # its reason, masked
    personal = {d[k] for d in truth.values() for k in ("buyer_name", "buyer_id_number", "buyer_mobile") if len(d[k]) >= 2}
    leaked = sorted(v for v in personal if v in text)
    assert not leaked, leaked[:5]

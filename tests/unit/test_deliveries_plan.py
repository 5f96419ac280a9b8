"""The delivery-report flow's planning (bots/oem_deliveries.py), pure: each DMS delivery against
the OEM's report of its VIN (to report / reported / conflict / rejected with reason), consent
(field minimisation; a new-energy car held for a person), the deadline order and the message's
list."""

from __future__ import annotations

from datetime import date

import pytest

from bots.oem_deliveries import (
    DELIVERIES,
    REPORT,
    REPORT_CONFLICT,
    REPORT_ID_REQUIRED,
    deadline_lines,
    plan_report,
    portal_date,
    write_order,
)
from dealerbot.errors import RecordRejected
from dealerbot.flows.plan import classify_flow
from dealerbot.rekey.ledger import Action

ID = "330102199001011237"


def delivery(**over):
    base = {"delivery_no": "JC2026110001", "contract_no": "HT1", "vin": "lgxcg5a10th000001", "model_code": "DMS-GX5-15T",
            "delivery_date": "2026-12-01", "invoice_no": "12345678", "invoice_amount": 239800.0,
            "buyer_id_number": ID, "buyer_mobile": "13800138000", "consent": True}
    return {**base, **over}


def test_a_delivery_not_reported_is_reported_with_its_buyer_once_the_same_report_is_in_sync():
    action = plan_report(delivery(), None, None)
    assert action is not None and action.kind == REPORT and action.flow == "deliveries"
    assert action.natural_key == "JC2026110001"
    assert action.new_values == {"delivery_no": "JC2026110001", "contract_no": "HT1", "vin": "LGXCG5A10TH000001", "delivery_date": "2026-12-01", "invoice_no": "12345678",
                                 "invoice_amount": "239800.00", "consent": "已授权", "buyer_id_number": ID,
                                 "buyer_mobile": "13800138000"}
    assert "上报截止 2026-12-08" in action.note
    theirs = {"report_no": "SB1", "vin": "LGXCG5A10TH000001", "delivery_date": "2026-12-01", "invoice_no": "12345678",
              "invoice_amount": "239,800.00"}
    assert plan_report(delivery(), theirs, None) is None
    assert not DELIVERIES.default_policy().needs_approval(action)


def test_a_report_the_oem_holds_otherwise_is_a_conflict_for_a_person_never_written():
    theirs = {"report_no": "SB9", "delivery_date": "2026-12-01", "invoice_no": "12345678", "invoice_amount": "236800"}
    outcome = classify_flow(DELIVERIES, delivery(), theirs, None)
    assert outcome.reconcile_class == "conflict"
    action = outcome.action
    assert action is not None and action.kind == REPORT_CONFLICT and action.contract_no == "SB9"
    assert action.changes == {"invoice_amount": ("236800.00", "239800.00")}
    policy = DELIVERIES.default_policy()
    assert policy.needs_approval(action) and REPORT_CONFLICT not in policy.enabled


def test_consent_minimises_fields_and_holds_a_new_energy_car_for_a_person():
    fuel = plan_report(delivery(consent="未授权"), None, None)
    assert fuel is not None and fuel.kind == REPORT
    assert fuel.new_values["consent"] == "未授权"
    assert fuel.new_values["buyer_id_number"] == "" and fuel.new_values["buyer_mobile"] == ""
    ev = plan_report(delivery(consent=False, model_code="DMS-EV7-LR"), None, None)
    assert ev is not None and ev.kind == REPORT_ID_REQUIRED
    assert ev.new_values["buyer_id_number"] == ID and ev.new_values["buyer_mobile"] == ""
    assert DELIVERIES.default_policy().needs_approval(ev) and "人工确认" in ev.note


@pytest.mark.parametrize(("over", "code"), [
    ({"vin": ""}, "no_vin"), ({"delivery_date": None}, "no_delivery_date"), ({"invoice_no": ""}, "no_invoice_no"),
    ({"invoice_amount": None}, "no_invoice_amount"), ({"invoice_amount": "abc"}, "bad_invoice_amount"),
    ({"buyer_id_number": ""}, "no_id_number"), ({"delivery_date": "2026-13-45"}, "bad_date"),
    ({"consent": "未授权", "model_code": "DMS-EV7", "buyer_id_number": ""}, "no_id_number"),
])
def test_a_delivery_that_cannot_be_reported_is_rejected_with_its_reason(over, code):
    with pytest.raises(RecordRejected) as err:
        plan_report(delivery(**over), None, None)
    assert err.value.code == code and err.value.reason
    assert classify_flow(DELIVERIES, delivery(**over), None, None).reconcile_class == "rejected"


def _action(i: int, delivered: str) -> Action:
    planned = plan_report(delivery(delivery_no=f"JC{i}", delivery_date=delivered), None, None)
    assert planned is not None
    return Action(id=i, kind=planned.kind, natural_key=planned.natural_key, contract_no="",
                  new_values=planned.new_values, old_values={}, state="approved", flow="deliveries")  # type: ignore[call-arg]


def test_on_time_deliveries_closest_to_the_deadline_are_written_first_then_the_late_ones():
    today = date(2026, 12, 10)
    todo = [(_action(1, "2026-12-09"), False), (_action(2, "2026-11-28"), False), (_action(3, "2026-12-04"), False),
            (_action(4, "2026-12-03"), False), (_action(5, "2026-12-09"), True)]
    order = [a.natural_key for a, _ in write_order(todo, today)]
    # resumed first; 12-03 (deadline today) and 12-04 on time; 11-28 late (deadline 12-05)
    assert order == ["JC5", "JC4", "JC3", "JC1", "JC2"]
    lines = deadline_lines([(a.natural_key, a.new_values) for a, _ in todo], today, limit=3)
    assert lines[0].startswith("JC2") and "已逾期" in lines[0] and "截止 2026-12-05" in lines[0]
    assert lines[1].startswith("JC4") and "已逾期" not in lines[1]
    assert lines[-1] == "……另有 2 条"
    assert portal_date(["2026-12-01", "", None, "2026-12-10"]) == today and portal_date([]) is None

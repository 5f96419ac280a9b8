"""The leads flows' planning (issue #24), pure: a new lead becomes one DMS prospect, matched to
the DMS's customers by mobile first (several: a conflict for a person), no consent or an unmapped
model a listed reject, a lead past its deadline without a follow-up listed; a DMS follow-up of a
lead becomes one 回访登记 with its result mapped through dictionary.yaml, none when the OEM holds
it already, an unmapped word a listed reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.leads_flow import FOLLOWUPS, LEADS, plan_followup, plan_prospect
from dealerbot.data.dictionary import load_dictionary
from dealerbot.errors import RecordRejected
from dealerbot.flows.plan import classify_flow

ROOT = Path(__file__).resolve().parents[2]
LEAD = {"lead_no": "XL2026120001", "name": "欧阳娜", "mobile": "13912345678", "model_code": "GX5-15T-STD",
        "source": "官网", "followup_deadline": "2026-12-09", "consent": True, "status": "待回访"}
FOLLOWUP = {"followup_no": "GJ2026120001", "prospect_no": "QK2026120001", "oem_lead_no": "XL2026120001",
            "followed_on": "2026-12-08", "result": "持续跟进", "next_step": "发送报价单", "note": "预算25万以内"}


@pytest.fixture(scope="module")
def dictionary():
    return load_dictionary(ROOT / "dictionary.yaml")


def test_a_new_lead_becomes_one_prospect_matched_by_mobile_and_consent_applies(dictionary):
    fresh = plan_prospect(LEAD, {"prospect": None, "customers": []}, dictionary)
    assert fresh is not None and fresh.kind == "create_prospect" and fresh.natural_key == LEAD["lead_no"]
    assert fresh.new_values == {"name": "欧阳娜", "mobile": "13912345678", "model_code": "DMS-GX5S", "source": "厂家线索",
                                "oem_lead_no": LEAD["lead_no"]}
    assert "新客户" in fresh.note and not fresh.conflict and LEADS.default_policy().needs_approval(fresh)

    known = plan_prospect(LEAD, {"customers": [{"customer_no": "C0007", "name": "欧阳 娜", "mobile": "13912345678"}]}, dictionary)
    assert known is not None and known.new_values["name"] == "欧阳 娜" and "按手机号匹配到DMS现有客户 C0007" in known.note
    two = [{"customer_no": "C0007", "name": "欧阳娜"}, {"customer_no": "C0009", "name": "欧阳雪"}]
    ambiguous = classify_flow(LEADS, LEAD, {"customers": two}, dictionary)
    assert ambiguous.reconcile_class == "conflict" and "C0007、C0009" in ambiguous.reason

    assert plan_prospect(LEAD, {"prospect": {"prospect_no": "QK1"}}, dictionary) is None  # in the DMS already
    refused = classify_flow(LEADS, {**LEAD, "consent": False}, {"customers": []}, dictionary)
    assert refused.reconcile_class == "rejected" and "未授权" in refused.reason and refused.action is None
    with pytest.raises(RecordRejected, match="GX0"):
        plan_prospect({**LEAD, "model_code": "GX0"}, None, dictionary)


def test_the_message_after_a_sync_names_what_waits_for_a_person_per_flow():
    from dealerbot.running.notify import attention_message, review_message

    rows = [(f"XL20261200{i:02d}", "回访已超时（截止 2026-12-01）") for i in range(12)]
    alone = attention_message(review_message(0), {"厂家线索建潜客": rows}, waiting=False)
    assert alone.title == "dealerbot：12 条需人工处理"
    assert "厂家线索建潜客需人工处理 12 条：XL2026120000（回访已超时" in alone.body and len(alone.body.splitlines()) == 1 and "等 12 条" in alone.body
    assert "XL2026120011" not in alone.body  # ten named, the workbook has them all
    both = attention_message(review_message(3, "review.xlsx"), {"厂家线索建潜客": rows[:1]}, waiting=True)
    assert both.title == "dealerbot：3 条操作等待审核" and "review.xlsx" in both.body and "XL2026120000" in both.body


def test_a_dms_followup_is_logged_once_with_its_result_mapped_through_the_dictionary(dictionary):
    target = {"lead_no": "XL2026120001", "lead": LEAD, "logged": []}
    action = plan_followup(FOLLOWUP, target, dictionary)
    assert action is not None and action.flow == FOLLOWUPS.name and action.natural_key == "GJ2026120001"
    assert action.new_values == {"lead_no": "XL2026120001", "followed_on": "2026-12-08", "result": "有意向-持续跟进",
                                 "next_step": "发送报价单", "note": "预算25万以内"}
    assert "2026-12-09" in action.note
    on_oem = {**action.new_values, "followup_no": "HF1", "late": "按时"}
    assert plan_followup(FOLLOWUP, {**target, "logged": [on_oem]}, dictionary) is None  # logged already
    other_day = {**on_oem, "followed_on": "2026-12-07"}
    assert plan_followup(FOLLOWUP, {**target, "logged": [other_day]}, dictionary) is not None
    unmapped = classify_flow(FOLLOWUPS, {**FOLLOWUP, "result": "随便聊聊"}, target, dictionary)
    assert unmapped.reconcile_class == "rejected" and "随便聊聊" in unmapped.reason and "followup_results" in unmapped.reason
    assert plan_followup({**FOLLOWUP, "oem_lead_no": ""}, {"lead_no": ""}, dictionary) is None  # not an OEM lead's
    with pytest.raises(RecordRejected) as rej:
        plan_followup(FOLLOWUP, {"lead_no": "XL2026120001", "lead": None}, dictionary)
    assert rej.value.code == "lead_unknown"
    late = plan_followup(FOLLOWUP, {**target, "lead": {**LEAD, "status": "已超时"}}, dictionary)
    assert late is not None and "超时" in late.note

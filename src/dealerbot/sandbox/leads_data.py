"""Seed data of the leads flow (线索 -> 潜客 -> 回访登记): the OEM's leads pushed to this dealer with
the follow-ups already logged on its portal, and the DMS's prospects (潜客) with the follow-ups
its sales staff entered.

Drawn from a random stream of its own after the rest of the data set (reading only the DMS
customers, for leads whose mobile the DMS knows already), so every other record of a seed stays
as it was. Each lead carries ``seed_case`` in the admin ground truth:

=====================  ==================================================================
``new``                pushed in the last days, no prospect in the DMS yet
``known_customer``     new, and its mobile is an existing DMS customer's (match, not create)
``in_dms``             a prospect exists (with the lead no), no follow-up yet
``to_log``             the DMS has a follow-up the OEM portal does not
``logged``             its follow-up is logged on the portal already (the same as the DMS's)
``overdue``            past its follow-up deadline with no follow-up anywhere
``no_consent``         new, and the person did not agree to their data being shared with
                       the dealer's systems (信息授权 未授权): not to be copied into the DMS
=====================  ==================================================================

A lead must be followed up within :data:`FOLLOWUP_DAYS` days of being assigned; the OEM's
today is the date of the data's reference time.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

FOLLOWUP_DAYS = 2
LEAD_SOURCES = ("官网", "汽车之家", "懂车帝", "400热线", "车展")
# The OEM's 回访结果 list, and the words the DMS's sales staff use for the same (they differ:
# the flow maps them through its dictionary).
OEM_RESULTS = ("有意向-邀约到店", "有意向-持续跟进", "已到店", "已成交", "无意向", "无法接通", "号码错误")
DMS_RESULTS = ("意向客户", "持续跟进", "已到店", "已成交", "战败", "未接通", "空号")
NEXT_STEPS = ("邀约周末到店试驾", "发送报价单", "三天后再次电话回访", "安排金融方案", "")
CASES = ("new", "known_customer", "in_dms", "to_log", "logged", "overdue", "to_log", "new", "logged", "in_dms",
         "overdue", "to_log", "no_consent")
STAFF = ("销售顾问 张敏", "销售顾问 李强", "销售顾问 王芳")


def generate_leads(seed: int, reference: datetime, dms_customers: list[dict]) -> dict[str, list[dict]]:
    """``{"leads", "oem_followups", "prospects", "dms_followups"}`` (see the module docstring)."""
    from .data import OEM_MODELS, OEM_TO_DMS, _Gen  # (data imports this module lazily too)

    people = _Gen(seed * 130_363 + 11)
    r = random.Random(seed * 130_363 + 7)
    today = reference.date()
    stamp = f"{reference.year}{reference.month:02d}"
    leads: list[dict] = []
    prospects: list[dict] = []
    oem_fu: list[dict] = []
    dms_fu: list[dict] = []
    known = [c for c in dms_customers if len(c["mobile"]) == 11 and c["mobile"].isdigit()]
    for k, case in enumerate(CASES):
        model = r.choice(OEM_MODELS)
        age = r.randint(4, 9) if case in ("overdue", "logged", "to_log") else r.randint(0, 1)
        assigned = today - timedelta(days=age)
        if case == "known_customer" and known:
            person = r.choice(known)
            name, mobile = person["name"], person["mobile"]
        else:
            name, mobile = people.name(), people.mobile()
        lead = {
            "lead_no": f"XL{stamp}{k + 1:04d}", "name": name, "mobile": mobile, "model_code": model[0],
            "source": r.choice(LEAD_SOURCES), "assigned_on": assigned.isoformat(),
            "followup_deadline": (assigned + timedelta(days=FOLLOWUP_DAYS)).isoformat(),
            "consent": "未授权" if case == "no_consent" else "已授权", "seed_case": case,
        }
        leads.append(lead)
        if case in ("in_dms", "to_log", "logged"):
            created = datetime.combine(assigned, datetime.min.time()) + timedelta(hours=r.randint(9, 17))
            prospect = {
                "prospect_no": f"QK{stamp}{len(prospects) + 1:04d}", "name": name, "mobile": mobile,
                "model_code": OEM_TO_DMS[model[0]], "source": "厂家线索", "oem_lead_no": lead["lead_no"],
                "sales_rep": r.choice(STAFF), "created_at": created.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            prospects.append(prospect)
            if case in ("to_log", "logged"):
                followed = assigned + timedelta(days=r.randint(0, FOLLOWUP_DAYS))
                i = r.randrange(len(DMS_RESULTS))
                fu = {
                    "followup_no": f"GJ{stamp}{len(dms_fu) + 1:04d}", "prospect_no": prospect["prospect_no"],
                    "followed_on": followed.isoformat(), "result": DMS_RESULTS[i], "next_step": r.choice(NEXT_STEPS),
                    "note": r.choice(("客户关注油耗", "预算25万以内", "想等年底优惠", "")), "staff": prospect["sales_rep"],
                    "created_at": (datetime.combine(followed, datetime.min.time())
                                   + timedelta(hours=r.randint(9, 19))).strftime("%Y-%m-%dT%H:%M:%S"),
                }
                dms_fu.append(fu)
                if case == "logged":
                    oem_fu.append({
                        "followup_no": f"HF{stamp}{len(oem_fu) + 1:04d}", "lead_no": lead["lead_no"],
                        "followed_on": fu["followed_on"], "result": OEM_RESULTS[i], "next_step": fu["next_step"],
                        "note": fu["note"], "logged_on": min(followed + timedelta(days=1), today).isoformat(), "late": 0,
                    })
    return {"leads": leads, "oem_followups": oem_fu, "prospects": prospects, "dms_followups": dms_fu}

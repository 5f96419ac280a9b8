"""Seed data of the delivery-report flow (交车 -> 交车上报): the OEM's vehicle allocations (配车),
the DMS's deliveries recorded on contracts, and the reports the dealer already made.

Drawn from a random stream of its own after the rest of the data set, reading it only, so that
every other record of a seed stays as it was. Each seeded delivery carries ``seed_case``, the
situation it was planted for (the admin ground truth shows it; the screens do not):

=====================  ==================================================================
``no_consent_ev``      a new-energy car whose buyer did not consent: the OEM requires the
                       buyer's ID number for it anyway (a person must decide)
``other_dealer``       its VIN is allocated to another dealer (调车 not transferred)
``before_allocation``  delivered before the OEM's allocation date (a typing error)
``reported``           already reported, the same data (a second report is a duplicate)
``near_deadline``      delivered 6 days before the OEM's today: the deadline is tomorrow
``deadline_today``     delivered 7 days before: reported today it is still on time
``past_deadline``      delivered 9 and 12 days before, not reported: a report now is late
``no_consent``         the buyer did not consent (a fuel car: reported without personal data)
``conflict``           reported earlier, but the OEM holds another invoice amount
``to_report``          delivered a day or two ago, nothing special
=====================  ==================================================================

The OEM's "today" is the date of the data's reference time (``Dataset.reference``); the
deadline of a delivery is 7 days after its delivery date.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from .data import vin_check_digit, vin_is_valid

OWN_DEALER = ("D31001", "杭州国星汽车销售服务有限公司")
OTHER_DEALERS = (("D31002", "宁波国星汽车销售服务有限公司"), ("D32005", "苏州国星汽车销售服务有限公司"))
REPORT_DAYS = 7  # a delivery must be reported within this many days (later: accepted, flagged 逾期)

# (case, days before the OEM's today it was delivered), in the order contracts are given them.
CASES = (
    ("no_consent_ev", 2), ("other_dealer", 3), ("before_allocation", 4), ("reported", 10),
    ("near_deadline", 6), ("deadline_today", 7), ("past_deadline", 9), ("no_consent", 1),
    ("conflict", 15), ("past_deadline", 12), ("to_report", 2),
)
EXTRA_CASES = (("reported", 20), ("to_report", 1))  # beyond CASES, alternately


def _plate(r: random.Random, ev: bool) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    tail = "".join(r.choice("0123456789" + letters[:10]) for _ in range(4))
    if ev:
        return f"浙A{r.choice('DF')}{r.choice('0123456789')}{tail}"
    return f"浙A{r.choice(letters)}{tail}"


def _other_vin(r: random.Random, serial: int) -> str:
    body = "LGX" + "GX5A1" + "0" + "T" + r.choice("HNZ") + f"{900000 + serial:06d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def generate_retail(seed: int, reference: datetime, oem_orders: list[dict], dms_contracts: list[dict],
                    dms_customers: list[dict]) -> dict[str, list[dict]]:
    """``{"allocations", "deliveries", "reports"}`` for a data set (see the module docstring)."""
    r = random.Random(seed * 104_729 + 31)
    today = reference.date()
    ref_stamp = f"{reference.year}{reference.month:02d}"

    # -- allocations: every VIN of this dealer's orders, allocated before it was planned
    allocations: dict[str, dict[str, Any]] = {}
    for o in oem_orders:
        if not o["vin"]:
            continue
        planned = min(date.fromisoformat(o["planned_delivery_date"]), today)
        allocations[o["vin"]] = {
            "vin": o["vin"], "dealer_code": OWN_DEALER[0], "dealer_name": OWN_DEALER[1], "order_no": o["order_no"],
            "model_code": o["model_code"], "allocated_on": (planned - timedelta(days=r.randint(20, 45))).isoformat(),
        }

    # -- deliveries: contracts the DMS shows delivered first, then those waiting for it (the
    # clerk recorded the delivery, the contract's status lags)
    def usable(c: dict) -> bool:
        return bool(c["vin"]) and vin_is_valid(c["vin"]) and c["vin"] in allocations

    pool = ([c for c in dms_contracts if c["status"] == "已交车" and usable(c)]
            + [c for c in dms_contracts if c["status"] == "待交车" and usable(c)])
    ev = [c for c in pool if c["model_code"].startswith("DMS-EV")]
    fuel = [c for c in pool if not c["model_code"].startswith("DMS-EV")]
    plan: list[tuple[str, int, dict]] = []
    for case, days in CASES:
        source = ev if case == "no_consent_ev" else fuel
        if source:
            plan.append((case, days, source.pop(0)))
    rest = ev + fuel
    for k, c in enumerate(rest[:8]):
        case, days = EXTRA_CASES[k % 2]
        plan.append((case, days + k, c))

    deliveries: list[dict] = []
    reports: list[dict] = []
    plan.sort(key=lambda p: (-p[1], p[2]["contract_no"]))  # numbered in the order they were delivered
    for k, (case, days, c) in enumerate(plan):
        delivered = today - timedelta(days=days)
        is_ev = c["model_code"].startswith("DMS-EV")
        d = {
            "delivery_no": f"JC{ref_stamp}{k + 1:04d}",
            "contract_no": c["contract_no"],
            "vin": c["vin"],
            "delivery_date": delivered.isoformat(),
            "invoice_no": f"{r.randrange(10_000_000, 99_999_999)}",
            "invoice_amount": float(c["price"]),
            "plate_no": _plate(r, is_ev) if days >= 9 and r.random() < 0.7 else "",
            "consent": "未授权" if case.startswith("no_consent") else "已授权",
            "updated_at": (datetime.combine(delivered, datetime.min.time())
                           + timedelta(hours=r.randint(9, 17), minutes=r.randrange(60))).strftime("%Y-%m-%dT%H:%M:%S"),
            "seed_case": case,
        }
        deliveries.append(d)
        alloc = allocations[c["vin"]]
        alloc["allocated_on"] = (delivered - timedelta(days=r.randint(5, 30))).isoformat()
        if case == "other_dealer":
            alloc["dealer_code"], alloc["dealer_name"] = OTHER_DEALERS[0]
        elif case == "before_allocation":
            alloc["allocated_on"] = (delivered + timedelta(days=2)).isoformat()
        if case in ("reported", "conflict"):
            reports.append({"delivery": d, "alloc": alloc, "after": r.randint(1, 5),
                            "amount": d["invoice_amount"] - (3000.0 if case == "conflict" else 0.0), "case": case})

    # -- cars allocated to other dealers that this dealer never had
    for k in range(3):
        vin = _other_vin(r, k)
        code, name = OTHER_DEALERS[k % 2]
        allocations[vin] = {"vin": vin, "dealer_code": code, "dealer_name": name, "order_no": "",
                            "model_code": "GX5-15T-STD", "allocated_on": (today - timedelta(days=10 + k)).isoformat()}

    # -- the reports already made (the buyer's data comes from the DMS contract's customer)
    buyers = {c["contract_no"]: c["customer_no"] for c in dms_contracts}
    people = {c["customer_no"]: c for c in dms_customers}
    out_reports: list[dict] = []
    reports.sort(key=lambda x: (x["delivery"]["delivery_date"], x["delivery"]["delivery_no"]))
    for k, rep in enumerate(reports):
        d, alloc = rep["delivery"], rep["alloc"]
        delivered = date.fromisoformat(d["delivery_date"])
        reported_on = min(delivered + timedelta(days=rep["after"]), today)
        deadline = delivered + timedelta(days=REPORT_DAYS)
        buyer = people.get(buyers.get(d["contract_no"], ""), {})
        consented = d["consent"] == "已授权"
        out_reports.append({
            "report_no": f"SB{ref_stamp}{k + 1:04d}", "vin": d["vin"], "dealer_code": alloc["dealer_code"],
            "order_no": alloc["order_no"], "model_code": alloc["model_code"], "delivery_date": d["delivery_date"],
            "invoice_no": d["invoice_no"], "invoice_amount": rep["amount"], "consent": d["consent"],
            "buyer_id_number": buyer.get("id_number", "") if consented else "",
            "buyer_mobile": buyer.get("mobile", "") if consented else "",
            "reported_on": reported_on.isoformat(), "deadline": deadline.isoformat(),
            "late": int(reported_on > deadline), "seed_case": rep["case"],
        })
    return {"allocations": sorted(allocations.values(), key=lambda a: a["vin"]), "deliveries": deliveries,
            "reports": out_reports}

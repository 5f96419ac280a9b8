"""Benchmark: delivery reports (交车上报) written and verified per second, in one run:

    ./run.sh bench deliveries                 # 40 deliveries planted, 2 rounds
    ./run.sh bench deliveries --deliveries 60 --rounds 3 --rate-limit 600

The sandbox's DMS gets ``--deliveries`` fresh deliveries (fuel cars allocated to this dealer,
buyers who consented, clean ID numbers and mobiles, delivered yesterday), reset before each side.
Three sides report the same deliveries, each searched first and read back from 上报记录:

* dealerbot: ``dealerbot run oem-report-deliveries`` as an operator's run starts it (process,
  browser, saved login, ``[rekey] concurrency`` pages), after a ``dealerbot sync --flow
  deliveries`` that planned them (not timed) and their approval in the store;
* plain Playwright: ``bench/plain_deliveries.py``, field by field in one page (process, browser
  and login included), as a subprocess;
* the HTTP floor: httpx posting the same forms (search, form, post, read back), in this process.

Every side is checked against the sandbox's admin ground truth (each planted delivery reported
exactly once, as typed). Printed: verified reports per second of each side, dealerbot/plain
(target >= 3x) and dealerbot's absolute rate (target >= 5/s), the OEM requests each report
costs, and what an OEM rate limit of ``--rate-limit`` requests a minute would allow (the sandbox
is measured without one unless ``--enforce`` is given: then the sandbox enforces it on dealerbot's
side only, which throttles itself to 90% of it; the plain script and the floor have no throttle).
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DMS_PASSWORD, OEM_PASSWORD, ROOT, clean_env, measure, start_sandbox  # noqa: E402

from dealerbot.config import BrowserSettings, load_settings  # noqa: E402
from dealerbot.sandbox.data import id_is_valid, mobile_is_clean  # noqa: E402
from dealerbot.store import Store  # noqa: E402
from dealerbot.web.browser import find_browser  # noqa: E402

PLAIN = ROOT / "bench" / "plain_deliveries.py"
TARGET_RATIO, TARGET_RATE = 3.0, 5.0
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Planted:
    """The deliveries planted in the DMS (the same ones before each side)."""

    def __init__(self, oem: httpx.Client, dms: httpx.Client, count: int) -> None:
        self.oem, self.dms, self.count = oem, dms, count
        today = date.fromisoformat(oem.get("/__admin/today").json()["today"])
        self.delivered = (today - timedelta(days=1)).isoformat()
        mine = {a["vin"] for a in oem.get("/__admin/allocations").json() if a["dealer_code"] == "D31001"}
        delivered = {d["contract_no"] for d in dms.get("/__admin/deliveries").json()}
        people = {c["customer_no"]: c for c in dms.get("/__admin/customers").json()}
        reported = {r["vin"] for r in oem.get("/__admin/reports").json()}
        self.contracts = [
            c for c in dms.get("/__admin/contracts").json()
            if c["vin"] in mine and c["vin"] not in reported and c["contract_no"] not in delivered
            and not c["model_code"].startswith("DMS-EV") and id_is_valid(people.get(c["customer_no"], {}).get("id_number", ""))
            and mobile_is_clean(people.get(c["customer_no"], {}).get("mobile", ""))
        ][:count]
        if len(self.contracts) < count:
            raise SystemExit(f"the sandbox has {len(self.contracts)} contracts to deliver, not {count}: use more --orders")

    def plant(self) -> list[dict[str, str]]:
        """Reset both apps, record the deliveries; the values each report must carry."""
        self.oem.post("/__admin/reset").raise_for_status()
        self.dms.post("/__admin/reset").raise_for_status()
        for k, c in enumerate(self.contracts):
            self.dms.post("/__admin/deliveries", json={
                "contract_no": c["contract_no"], "delivery_date": self.delivered, "invoice_no": f"{71000000 + k}",
                "invoice_amount": c["price"], "consent": "已授权"}).raise_for_status()
        wanted = {c["contract_no"] for c in self.contracts}
        return [{"vin": d["vin"], "delivery_date": d["delivery_date"], "invoice_no": d["invoice_no"],
                 "invoice_amount": f"{float(d['invoice_amount']):.2f}", "consent": "已授权",
                 "buyer_id_number": d["buyer_id_number"], "buyer_mobile": d["buyer_mobile"]}
                for d in self.dms.get("/__admin/deliveries").json() if d["contract_no"] in wanted]

    def check(self, who: str, values: list[dict[str, str]]) -> None:
        reports = self.oem.get("/__admin/reports").json()
        for v in values:
            got = [r for r in reports if r["vin"] == v["vin"]]
            if len(got) != 1 or got[0]["invoice_no"] != v["invoice_no"] or got[0]["delivery_date"] != v["delivery_date"]:
                raise SystemExit(f"{who}: {v['vin']} is not reported exactly once as typed ({len(got)} reports)")


def floor(oem_url: str, values: list[dict[str, str]]) -> None:
    """The same reports by plain HTTP: search, form, post, read back."""
    with httpx.Client(base_url=oem_url, timeout=30) as c:
        page = c.get("/login")
        c.post("/login", data={"dealer_code": "D31001", "username": "dealer_admin", "password": OEM_PASSWORD,
                               "csrf_token": CSRF.search(page.text).group(1)})  # type: ignore[union-attr]
        for v in values:
            if f'data-field="vin">{v["vin"]}<' in c.get("/retail-reports", params={"q": v["vin"]}).text:
                continue
            form = c.get("/retail-reports/new", params={"vin": v["vin"]}).text
            r = c.post("/retail-reports/new", data={**v, "csrf_token": CSRF.search(form).group(1)})  # type: ignore[union-attr]
            if r.status_code != 303:
                raise SystemExit(f"floor: {v['vin']} refused: {r.text[:200]}")
            if v["invoice_no"] not in c.get("/retail-reports", params={"q": v["vin"]}).text:
                raise SystemExit(f"floor: {v['vin']} does not read back")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deliveries", type=int, default=40)
    ap.add_argument("--orders", type=int, default=600, help="orders in the sandbox (contracts to deliver come from them)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate-limit", type=int, default=600, help="the OEM's requests a minute to state the bound for")
    ap.add_argument("--pages", type=int, default=3, help="dealerbot's pages of one login ([rekey] concurrency)")
    ap.add_argument("--enforce", action="store_true", help="run with the sandbox enforcing --rate-limit")
    args = ap.parse_args()
    executable = find_browser(BrowserSettings(), headless=True).executable
    if not executable:
        raise SystemExit("this benchmark needs a browser executable (a system Chromium)")
    sb = start_sandbox(args.orders)
    headers = {"X-Admin-Token": sb.token}
    oem, dms = httpx.Client(base_url=sb.oem, headers=headers, timeout=30), httpx.Client(base_url=sb.dms, headers=headers, timeout=30)
    work = Path(tempfile.mkdtemp(prefix="bench-deliveries-"))
    env = clean_env(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, DEALERBOT_BROWSER=executable)
    rates: dict[str, list[float]] = {"dealerbot": [], "plain": [], "floor": []}
    requests: dict[str, list[int]] = {"dealerbot": [], "plain": [], "floor": []}
    limited = 0
    try:
        planted = Planted(oem, dms, args.deliveries)

        def behave() -> None:
            if args.enforce:
                oem.put("/__admin/behaviours", json={"rate_limit_per_minute": args.rate_limit}).raise_for_status()

        def counted(side: str, seconds: float, before: dict) -> None:
            nonlocal limited
            after = oem.get("/__admin/counters").json()
            requests[side].append(after["requests"] - before["requests"])
            limited += after["rate_limited"] - before["rate_limited"]
            rates[side].append(args.deliveries / seconds)

        for _ in range(args.rounds):
            values = planted.plant()
            (work / "deliveries.json").write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
            before = oem.get("/__admin/counters").json()
            plain = measure([sys.executable, str(PLAIN), sb.oem, executable, str(work / "deliveries.json")], work, env)
            if plain.returncode:
                raise SystemExit("the plain Playwright script failed")
            planted.check("plain Playwright", values)
            counted("plain", plain.seconds, before)

            values = planted.plant()
            before = oem.get("/__admin/counters").json()
            started = time.perf_counter()
            floor(sb.oem, values)
            counted("floor", time.perf_counter() - started, before)
            planted.check("HTTP floor", values)

            values = planted.plant()
            shop = work / "shop"
            shutil.rmtree(shop, ignore_errors=True)
            shop.mkdir()
            limit = f"[run]\nrequests_per_minute = {int(args.rate_limit * 0.9)}\n" if args.enforce else ""
            (shop / "dealerbot.toml").write_text(
                f'[oem]\nurl = "{sb.oem}"\n[dms]\nurl = "{sb.dms}"\n{limit}[flows]\nenabled = ["deliveries"]\n'
                f'[rekey]\nconcurrency = {args.pages}\n'
                '[flows.deliveries]\napproval_required = ["report", "report_id_required", "report_conflict"]\n',
                encoding="utf-8")
            planned = measure([sys.executable, "-m", "dealerbot.cli", "sync", "--flow", "deliveries"], shop, env)
            if planned.returncode:
                raise SystemExit("dealerbot sync (planning) failed")
            settings = load_settings(shop / "dealerbot.toml")
            vins = {v["vin"] for v in values}
            with Store.open(settings.store_url, settings.store_code) as store:
                mine = [a for a in store.actions(["planned"], flow="deliveries") if a.new_values.get("vin") in vins]
                store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve", "note": None}
                              for a in mine], "bench")
            if len(mine) != len(values):
                raise SystemExit(f"dealerbot planned {len(mine)} of the {len(values)} deliveries")
            behave()
            before = oem.get("/__admin/counters").json()
            wrote = measure([sys.executable, "-m", "dealerbot.cli", "run", "oem-report-deliveries"], shop, env)
            if wrote.returncode:
                raise SystemExit("dealerbot run oem-report-deliveries failed")
            planted.check("dealerbot", values)
            with Store.open(settings.store_url, settings.store_code) as store:
                verified = sum(store.actions(natural_key=a.natural_key, flow="deliveries")[-1].state == "verified" for a in mine)
            if verified != len(values):
                raise SystemExit(f"dealerbot verified {verified} of {len(values)}")
            counted("dealerbot", wrote.seconds, before)
    finally:
        oem.close()
        dms.close()
        sb.stop()
        shutil.rmtree(work, ignore_errors=True)

    best = {side: max(r) for side, r in rates.items()}
    per_report = {side: statistics.median(r) / args.deliveries for side, r in requests.items()}
    bound = args.rate_limit / 60 / per_report["dealerbot"]
    ratio = best["dealerbot"] / best["plain"]
    print(f"deliveries reported: {args.deliveries} a side; rounds: {args.rounds} (best counts); cores: {os.cpu_count()}; "
          f"dealerbot pages: {args.pages}; "
          f"OEM rate limit {'enforced' if args.enforce else 'off'}")
    for side, label in (("dealerbot", "dealerbot run (process, browser, login)"), ("plain", "plain Playwright script"),
                        ("floor", "HTTP floor (httpx)")):
        print(f"{label:42s} {best[side]:6.2f} verified/s   ({', '.join(f'{r:.2f}' for r in rates[side])}); "
              f"{per_report[side]:.1f} OEM requests a report")
    print(f"ratio dealerbot/plain: {ratio:.2f}x (target >= {TARGET_RATIO}x); dealerbot {best['dealerbot']:.2f}/s "
          f"(target >= {TARGET_RATE}/s where the rate limit allows)")
    print(f"at an OEM limit of {args.rate_limit} requests/min dealerbot can verify at most {bound:.2f} reports/s "
          f"({per_report['dealerbot']:.1f} requests each); refused at the limit (429): {limited}")
    allowed = bound >= TARGET_RATE
    ok = ratio >= TARGET_RATIO and (best["dealerbot"] >= TARGET_RATE or not allowed) and limited == 0
    print("result:", "PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: DMS follow-ups logged into the OEM portal's 回访登记 (the ``followups`` flow), verified
follow-ups per second for dealerbot, a plain Playwright script and the HTTP floor, in one run.

    ./run.sh bench followups                 # 30 follow-ups a side
    ./run.sh bench followups --count 60 --limit 600

Each side starts from a freshly reset sandbox (its own process) with ``--count`` DMS follow-ups
planted on prospects that came from OEM leads (distinct notes), and logs each once, searching the
lead's 回访记录 first and reading it back after saving:

* dealerbot: a project folder with ``[flows] enabled = ["followups"]`` and no approval; untimed
  ``dealerbot run dms-prospects``, ``run oem-leads`` and ``reconcile --flow followups`` plan the
  actions; timed: ``dealerbot run followups-write`` as an operator runs it (start-up, browser,
  login included);
* plain: ``bench/plain_followups.py`` (plain Playwright, field by field), a process of its own;
* HTTP floor: httpx in this process: log in, then per follow-up GET the lead's page, POST the
  form, GET the page again to check it.

Each side is checked against the OEM's admin ground truth (every follow-up there exactly once).
With ``--limit N`` the sandbox refuses more than N requests a minute per account (the OEM's rate
limit) and dealerbot paces itself under it (``[run] requests_per_minute``); the refusals each side
met are printed. Targets: dealerbot >= 3x the plain script, >= 5 verified follow-ups a second
where the limit allows it. Exits 1 when a side's result is wrong (never for a missed target: the
machine's load is not the code's).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DMS_PASSWORD, OEM_PASSWORD, ROOT, clean_env, start_sandbox  # noqa: E402

from dealerbot.config import BrowserSettings  # noqa: E402
from dealerbot.data.dictionary import load_dictionary  # noqa: E402
from dealerbot.web.browser import find_browser  # noqa: E402

SAME = ("lead_no", "followed_on", "result", "next_step", "note")
DMS_WORDS = ("意向客户", "持续跟进", "已到店", "战败")


class Admin:
    def __init__(self, sb) -> None:
        headers = {"X-Admin-Token": sb.token}
        self.oem = httpx.Client(base_url=sb.oem, headers=headers, timeout=30)
        self.dms = httpx.Client(base_url=sb.dms, headers=headers, timeout=30)

    def reset(self, limit: int) -> None:
        for c in (self.oem, self.dms):
            c.post("/__admin/reset").raise_for_status()
        if limit:
            self.oem.put("/__admin/behaviours", json={"rate_limit_per_minute": limit}).raise_for_status()

    def plant(self, count: int, tag: str) -> list[dict[str, str]]:
        """``count`` DMS follow-ups on prospects from OEM leads; what the OEM should hold for each."""
        words = load_dictionary(ROOT / "dictionary.yaml").followup_results
        today = self.oem.get("/__admin/today").json()["today"]
        prospects = [p for p in self.dms.get("/__admin/prospects").json() if p.get("oem_lead_no")]
        out = []
        for i in range(count):
            p = prospects[i % len(prospects)]
            f = {"prospect_no": p["prospect_no"], "followed_on": today, "result": DMS_WORDS[i % len(DMS_WORDS)],
                 "next_step": "发送报价单", "note": f"{tag} 第{i + 1}次跟进"}
            self.dms.post("/__admin/prospect-followups", json=f).raise_for_status()
            out.append({"lead_no": p["oem_lead_no"], "followed_on": today, "result": words[f["result"]],
                        "next_step": f["next_step"], "note": f["note"]})
        return out

    def check(self, wanted: list[dict[str, str]]) -> str:
        held = self.oem.get("/__admin/followups").json()
        wrong = [w["note"] for w in wanted if sum(all(str(h[k]) == w[k] for k in SAME) for h in held) != 1]
        return f"not exactly once: {wrong[:5]}" if wrong else ""

    def refused(self) -> int:
        return int(self.oem.get("/__admin/counters").json()["rate_limited"])


def http_floor(base: str, wanted: list[dict[str, str]]) -> None:
    with httpx.Client(base_url=base, timeout=30) as c:
        page = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post("/login", data={"dealer_code": "D31001", "username": "dealer_admin", "password": OEM_PASSWORD,
                                   "csrf_token": token})
        assert r.status_code == 303, r.status_code
        for f in wanted:
            page = c.get(f"/leads/{f['lead_no']}")
            if f["note"] in page.text:
                continue
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            r = c.post(f"/leads/{f['lead_no']}/followups", data={**{k: f[k] for k in SAME[1:]}, "csrf_token": token})
            assert r.status_code == 303, (r.status_code, r.text[:300])
            assert f["note"] in c.get(f"/leads/{f['lead_no']}").text


def dealerbot_side(sb, folder: Path, pace: int, browser: str) -> float:
    env = clean_env(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, DEALERBOT_BROWSER=browser)
    shutil.copy(ROOT / "dictionary.yaml", folder / "dictionary.yaml")
    (folder / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sb.oem}"\n[dms]\nurl = "{sb.dms}"\n[run]\nrequests_per_minute = {pace}\n'
        '[flows]\nenabled = ["followups"]\n[flows.followups]\napproval_required = []\n', encoding="utf-8")
    cli = [sys.executable, "-m", "dealerbot.cli"]
    for args in (["run", "dms-prospects"], ["run", "oem-leads"], ["reconcile", "--flow", "followups"]):
        done = subprocess.run([*cli, *args], cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"dealerbot {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    started = time.perf_counter()
    done = subprocess.run([*cli, "run", "followups-write"], cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"dealerbot run followups-write failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=30, help="follow-ups a side")
    ap.add_argument("--limit", type=int, default=0, help="the OEM's rate limit, requests a minute (0: none)")
    args = ap.parse_args()
    pace = int(args.limit * 0.8) if args.limit else 0
    browser = find_browser(BrowserSettings(), headless=True).executable
    if not browser:
        raise SystemExit("this benchmark needs a browser executable (a system Chromium)")
    sb = start_sandbox(orders=30)
    admin = Admin(sb)
    results: dict[str, tuple[float, int]] = {}
    failed = False
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for side in ("plain", "dealerbot", "http"):
                admin.reset(args.limit)
                wanted = admin.plant(args.count, f"bench-{side}")
                if side == "plain":
                    path = Path(tmp) / "followups.csv"
                    with path.open("w", encoding="utf-8", newline="") as fh:
                        w = csv.DictWriter(fh, fieldnames=list(SAME))
                        w.writeheader()
                        w.writerows(wanted)
                    started = time.perf_counter()
                    done = subprocess.run([sys.executable, str(ROOT / "bench" / "plain_followups.py"), sb.oem, OEM_PASSWORD,
                                           str(browser), str(path)], capture_output=True, text=True, env=clean_env())
                    seconds = time.perf_counter() - started
                    if done.returncode:
                        raise SystemExit(f"plain script failed:\n{done.stdout}\n{done.stderr}")
                elif side == "dealerbot":
                    folder = Path(tmp) / "shop"
                    folder.mkdir()
                    seconds = dealerbot_side(sb, folder, pace, browser)
                else:
                    started = time.perf_counter()
                    http_floor(sb.oem, wanted)
                    seconds = time.perf_counter() - started
                wrong = admin.check(wanted)
                if wrong:
                    print(f"{side}: WRONG: {wrong}")
                    failed = True
                results[side] = (seconds, admin.refused())
    finally:
        sb.stop()
    print(f"follow-ups a side: {args.count}; OEM rate limit: {args.limit or 'none'}/min"
          f"{f' (dealerbot paced at {pace}/min)' if pace else ''}; cores: {os.cpu_count()}")
    for side, (seconds, refused) in results.items():
        print(f"  {side:9s} {seconds:7.2f} s  {args.count / seconds:6.2f} verified/s  429s: {refused}")
    if "plain" in results and "dealerbot" in results:
        ratio = results["plain"][0] / results["dealerbot"][0]
        print(f"  dealerbot vs plain: {ratio:.2f}x (target >= 3x); dealerbot "
              f"{args.count / results['dealerbot'][0]:.2f}/s (target >= 5/s where the limit allows)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

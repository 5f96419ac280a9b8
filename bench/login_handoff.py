"""Benchmark: what the login hand-off (#23) costs when the saved login still works.

    ./run.sh bench login            # 5 runs of each side
    ./run.sh bench login --runs 9

Two sides, each ``oem-customers`` run unattended (trigger ``schedule``) in-process against the
sandbox (in a process of its own, 40 orders: one page of customers), on a saved login made once
before the rounds:

- plain: the portal without login steps (no ``login_steps``, the sandbox's steps off);
- hand-off: the portal declaring ``login_steps = ["sms_code", "captcha"]`` with the sandbox's SMS
  code, captcha and forced password change all on.

The sandbox's own counters are the ground truth: requests it answered during each run, logins,
SMS codes sent. Printed per side: requests per run, seconds min / median, and the extra requests
and the ratio of medians of the hand-off side over the plain one. Target: zero extra requests
and no login or code sent. Then, once, what an unattended run costs when the saved login has
ended (the portal must ask a person): its requests and seconds to ``needs_person``.
Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OEM_PASSWORD, alternating, min_median, start_sandbox  # noqa: E402

BOT = "oem-customers"


def _folder(base: Path, name: str, oem: str, dms: str, steps: str) -> Path:
    folder = base / name
    folder.mkdir()
    (folder / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{oem}"\n{steps}\n[dms]\nurl = "{dms}"\n[run]\nbackoff_seconds = 0.05\n', encoding="utf-8")
    return folder


async def _run(folder: Path, admin: httpx.Client) -> tuple[str, float, dict[str, int]]:
    from dealerbot.config import load_settings
    from dealerbot.running.runner import run_bot

    os.chdir(folder)
    settings = load_settings(folder / "dealerbot.toml")
    before = admin.get("/__admin/counters").json()
    sms_before = admin.get("/__admin/sms").json()["sent"]
    started = time.perf_counter()
    result = await run_bot(BOT, settings, trigger="schedule", passwords={"oem": OEM_PASSWORD})
    seconds = time.perf_counter() - started
    after = admin.get("/__admin/counters").json()
    sent = admin.get("/__admin/sms").json()["sent"] - sms_before
    delta = {k: after[k] - before[k] for k in ("requests", "logins")} | {"sms": sent}
    return result.status, seconds, delta


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    sb = start_sandbox(orders=40)
    rc = 0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-login-") as tmp, \
                httpx.Client(base_url=sb.oem, headers={"X-Admin-Token": sb.token}, timeout=10) as admin:
            base = Path(tmp)
            plain = _folder(base, "plain", sb.oem, sb.dms, "")
            handoff = _folder(base, "handoff", sb.oem, sb.dms, "")
            # The saved logins, made while the portal asks for nothing more than the password (a
            # person's login through the steps saves the same state).
            for folder in (plain, handoff):
                status, _, _ = await _run(folder, admin)
                assert status == "succeeded", status
            toml = handoff / "dealerbot.toml"
            toml.write_text(toml.read_text(encoding="utf-8").replace(
                "[dms]", 'login_steps = ["sms_code", "captcha"]\n[dms]'), encoding="utf-8")
            admin.put("/__admin/behaviours", json={"login_sms_code": True, "login_captcha": True,
                                                   "login_new_password": True}).raise_for_status()
            sides = {"plain": plain, "hand-off": handoff}
            seen: dict[str, list[tuple[float, dict[str, int]]]] = {k: [] for k in sides}
            for round_no in range(args.runs):
                for name in alternating(list(sides), round_no):
                    if name == "plain":  # the plain side meets a portal without steps
                        admin.put("/__admin/behaviours", json={"login_sms_code": False, "login_captcha": False,
                                                               "login_new_password": False}).raise_for_status()
                    status, seconds, delta = await _run(sides[name], admin)
                    admin.put("/__admin/behaviours", json={"login_sms_code": True, "login_captcha": True,
                                                           "login_new_password": True}).raise_for_status()
                    if status != "succeeded":
                        print(f"{name}: run {round_no + 1} ended {status}")
                        rc = 1
                    seen[name].append((seconds, delta))
            medians = {}
            for name, runs in seen.items():
                s_min, s_med = min_median([s for s, _ in runs])
                medians[name] = s_med
                requests = sorted({d["requests"] for _, d in runs})
                logins = sum(d["logins"] for _, d in runs)
                sms = sum(d["sms"] for _, d in runs)
                print(f"{name:9s} {len(runs)} runs: requests per run {'/'.join(map(str, requests))}; logins {logins}; "
                      f"SMS codes sent {sms}; s min/med {s_min:.2f} / {s_med:.2f}; every run: "
                      f"{', '.join(f'{s:.2f}' for s, _ in runs)} s")
            extra = max(d["requests"] for _, d in seen["hand-off"]) - min(d["requests"] for _, d in seen["plain"])
            quiet = all(d["logins"] == 0 and d["sms"] == 0 for runs in seen.values() for _, d in runs)
            print(f"extra requests of the hand-off on a valid saved login: {extra} (target 0); "
                  f"time ratio hand-off/plain (medians): {medians['hand-off'] / medians['plain']:.2f}x")
            if extra > 0 or not quiet:
                print("target missed: the hand-off cost requests, a login or a code on a valid saved login")
                rc = 1
            # The saved login has ended: an unattended run stops before typing anything.
            admin.post("/__admin/expire-sessions").raise_for_status()
            status, seconds, delta = await _run(handoff, admin)
            print(f"saved login ended, unattended: {status} after {seconds:.2f} s, {delta['requests']} requests, "
                  f"{delta['logins']} logins, {delta['sms']} SMS codes sent")
            if status != "needs_person" or delta["sms"]:
                rc = 1
    finally:
        sb.stop()
    return rc


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

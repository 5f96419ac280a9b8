"""Benchmark: re-key N contracts through the sandbox's desktop DMS client (keyboard and screen),
against the floor (the same forms posted by plain HTTP) and a clerk's pace (about one a minute: an
assumed constant, not measured here).

    ./run.sh bench desktop                  # 50 contracts, a third with a new customer
    ./run.sh bench desktop --contracts 20

Needs Xvfb, xdotool and xclip (Linux). A private X display is started; the sandbox runs in its
own process, the desktop client in another. A working folder is prepared as for bench/rekey.py
(the reading bots, reconcile, N creations approved), then ``dealerbot run dms-desktop-rekey``
runs as an operator starts it, and every contract is checked against the DMS's ground truth.
Printed: seconds, contracts per minute, the ratio to the floor and to a clerk.
Target: at least 10 contracts a minute (ten clerks' pace). Exits 1 when missed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DMS_PASSWORD, clean_env, measure, start_sandbox  # noqa: E402
from rekey import floor, prepare, reset_dms, verify  # noqa: E402

from dealerbot.desktop.display import start_virtual_display  # noqa: E402

TARGET_PER_MINUTE = 10.0
CLERK_PER_MINUTE = 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contracts", type=int, default=50)
    ap.add_argument("--orders", type=int, default=400, help="orders in the sandbox (enough creations for --contracts)")
    ap.add_argument("--new-customers", type=float, default=1 / 3, metavar="SHARE")
    args = ap.parse_args()
    sb = start_sandbox(args.orders)
    work = Path(tempfile.mkdtemp(prefix="dealerbot-bench-desktop-"))
    xvfb, display = start_virtual_display(work)
    client = None
    try:
        plan = prepare(sb, work, args.contracts, 1, None, args.new_customers)
        cfg = work / "dealerbot.toml"
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("[rekey]\n", '[rekey]\nclient = "desktop"\n'), encoding="utf-8")
        env = clean_env(DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, **display)
        client = subprocess.Popen([sys.executable, "-m", "dealerbot.sandbox.desktop", "--dms-url", sb.dms],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)  # its login window
        bot = measure([sys.executable, "-m", "dealerbot.cli", "run", "dms-desktop-rekey"], work, env)
        bot_ok = verify(sb, plan)
        reset_dms(sb)
        started = time.perf_counter()
        asyncio.run(floor(sb.dms, plan, 1))
        floor_s = time.perf_counter() - started
        floor_ok = verify(sb, plan)
    finally:
        if client is not None:
            client.kill()
        xvfb.terminate()
        sb.stop()
        shutil.rmtree(work, ignore_errors=True)
    n = len(plan)
    per_minute = bot_ok / bot.seconds * 60
    new_customers = sum(1 for p in plan if p["mode"] == "new")
    print(f"contracts: {n} ({new_customers} with a new customer); one desktop client, one keyboard")
    print(f"floor (httpx, forms posted):          {floor_ok:4d} verified in {floor_s:6.1f} s = {floor_ok / floor_s * 60:8.1f}/min")
    print(f"dealerbot run dms-desktop-rekey:      {bot_ok:4d} verified in {bot.seconds:6.1f} s = {per_minute:8.1f}/min "
          f"(peak {bot.peak_pss_mb:.0f} MB PSS)")
    print(f"bot/floor: {bot.seconds / floor_s:.0f}x the time; bot vs a clerk (~{CLERK_PER_MINUTE:.0f}/min, an assumed "
          f"constant, not a measurement): "
          f"{per_minute / CLERK_PER_MINUTE:.0f}x")
    ok = bot.returncode == 0 and bot_ok == floor_ok == n and per_minute >= TARGET_PER_MINUTE
    print(f"target: >= {TARGET_PER_MINUTE:.0f} contracts/min -> {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

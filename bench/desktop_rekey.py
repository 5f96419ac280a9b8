"""Benchmark: re-key N contracts through the sandbox's desktop DMS client (keyboard and screen),
against the floor (the same forms posted by plain HTTP) and a clerk's pace (about one a minute: an
assumed constant, not measured here).

    ./run.sh bench desktop                  # 50 contracts, a third with a new customer
    ./run.sh bench desktop --contracts 20

Needs Xvfb, xdotool and xclip (Linux). A private X display is started; the sandbox runs in its
own process, the desktop client in another. A working folder is prepared as for bench/rekey.py
(the reading bots, reconcile, N creations approved), then ``dealerbot run dms-desktop-rekey``
runs as an operator starts it, and every contract is checked against the DMS's ground truth.
Each side runs ``--runs`` times (default 3), the side that goes first alternating from round to
round, each run on a freshly reset DMS; each bot run in a fresh copy of the prepared folder with a
freshly started client at its login window (started before the clock runs).
Printed for each side: seconds, contracts per minute and peak memory (the bot's process tree; not
measured for the floor), each as min and median over its runs; the ratios of the medians to the
floor and to a clerk.
Target, on the median: at least 10 contracts a minute (ten clerks' pace). Exits 1 when missed.
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
from _common import (  # noqa: E402
    DMS_PASSWORD,
    Run,
    Sandbox,
    alternating,
    clean_env,
    measure,
    median_rate,
    median_seconds,
    spread,
    start_sandbox,
)
from rekey import floor, prepare, reset_dms, verify  # noqa: E402

from dealerbot.desktop.display import start_virtual_display  # noqa: E402

TARGET_PER_MINUTE = 10.0
CLERK_PER_MINUTE = 1.0


def _bot_run(sb: Sandbox, prepared: Path, folder: Path, plan: list[dict], env: dict[str, str]) -> Run:
    """``dealerbot run dms-desktop-rekey`` in a fresh copy of the prepared folder, on a freshly
    reset DMS, with a desktop client of its own at its login window; checked against the DMS."""
    reset_dms(sb)
    shutil.copytree(prepared, folder)
    client = subprocess.Popen([sys.executable, "-m", "dealerbot.sandbox.desktop", "--dms-url", sb.dms],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)  # its login window
        bot = measure([sys.executable, "-m", "dealerbot.cli", "run", "dms-desktop-rekey"], folder, env)
    finally:
        client.kill()
        client.wait(10)
    return Run(bot.seconds, verify(sb, plan), bot.peak_pss_mb, bot.returncode)


def _floor_run(sb: Sandbox, plan: list[dict]) -> Run:
    reset_dms(sb)
    started = time.perf_counter()
    asyncio.run(floor(sb.dms, plan, 1))
    seconds = time.perf_counter() - started
    return Run(seconds, verify(sb, plan))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contracts", type=int, default=50)
    ap.add_argument("--orders", type=int, default=400, help="orders in the sandbox (enough creations for --contracts)")
    ap.add_argument("--new-customers", type=float, default=1 / 3, metavar="SHARE")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs of each side (default 3: a bot run of 50 contracts takes under 2 minutes); "
                         "min and median printed, the ratio of medians")
    args = ap.parse_args()
    sb = start_sandbox(args.orders)
    work = Path(tempfile.mkdtemp(prefix="dealerbot-bench-desktop-"))
    xvfb, display = start_virtual_display(work)
    runs: dict[str, list[Run]] = {"bot": [], "floor": []}
    try:
        prepared = work / "prepared"
        prepared.mkdir()
        plan = prepare(sb, prepared, args.contracts, 1, None, args.new_customers)
        cfg = prepared / "dealerbot.toml"
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("[rekey]\n", '[rekey]\nclient = "desktop"\n'), encoding="utf-8")
        env = clean_env(DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, **display)
        for i in range(max(1, args.runs)):
            for side in alternating(("bot", "floor"), i):
                run = _bot_run(sb, prepared, work / f"bot-{i}", plan, env) if side == "bot" else _floor_run(sb, plan)
                runs[side].append(run)
                print(f"  round {i + 1}, {side}: {run.done} verified in {run.seconds:.1f} s"
                      f"{f' (exit {run.returncode})' if run.returncode else ''}", flush=True)
    finally:
        xvfb.terminate()
        sb.stop()
        shutil.rmtree(work, ignore_errors=True)
    n = len(plan)
    bot, floor_runs = runs["bot"], runs["floor"]
    per_minute = median_rate(bot, 60)
    new_customers = sum(1 for p in plan if p["mode"] == "new")
    print(f"contracts: {n} ({new_customers} with a new customer); one desktop client, one keyboard; "
          f"{len(bot)} run(s) of each side, alternating which goes first, each on a freshly reset DMS")
    print(spread("floor (httpx, forms posted):     ", floor_runs, "/min", 60))
    print(spread("dealerbot run dms-desktop-rekey: ", bot, "/min", 60))
    print(f"ratios of medians: bot/floor: {median_seconds(bot) / median_seconds(floor_runs):.0f}x the time; "
          f"bot vs a clerk (~{CLERK_PER_MINUTE:.0f}/min, an assumed constant, not a measurement): "
          f"{per_minute / CLERK_PER_MINUTE:.0f}x")
    ok = all(r.done == n and r.returncode == 0 for r in bot + floor_runs) and per_minute >= TARGET_PER_MINUTE
    print(f"target (median): >= {TARGET_PER_MINUTE:.0f} contracts/min -> {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

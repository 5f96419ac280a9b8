"""Benchmark: the cost of the canary before writing (issue 23) in a typical re-key run.

    ./run.sh bench canary                     # 20 contracts, 3 runs of each side
    ./run.sh bench canary --contracts 50 --runs 5

The sandbox runs in its own process. A working folder is prepared as a dealership has it (the
four reading bots, `dealerbot reconcile`, N planned creations approved: a morning's approvals,
a third with a new customer). Then ``dealerbot run dms-rekey`` runs, each time in a fresh copy of
that folder on a freshly reset DMS and checked against the sandbox's ground truth:

* with the canary (the default): before the first write it opens the DMS's 新建合同 and 新增客户
  screens in the run's own logged-in page and resolves the names the bot writes through;
* without it (``DEALERBOT_DMS__CANARY=false``, i.e. ``[dms] canary = false``).

The sides alternate which goes first from round to round. Printed: each side's wall time (min
and median, every run), the canary's own seconds as the run measured them (``state/canary-dms.json``:
min / median / max), its share of the median run with it, and the difference of the medians
(which also holds the machine's noise). Target: the canary's median <= 3 s (\"a few seconds per
run\"). Exits 1 when missed, or when a run did not write every contract once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DMS_PASSWORD, Run, alternating, clean_env, measure, median_seconds, spread, start_sandbox  # noqa: E402
from rekey import prepare, reset_dms, verify  # noqa: E402

TARGET_SECONDS = 3.0


def _run(sb, prepared: Path, folder: Path, plan: list[dict], env: dict[str, str]) -> tuple[Run, float | None]:  # noqa: ANN001
    """One ``dealerbot run dms-rekey`` in a fresh copy of the prepared folder on a reset DMS; with
    the canary's own seconds when it ran."""
    reset_dms(sb)
    shutil.copytree(prepared, folder)
    done = measure([sys.executable, "-m", "dealerbot.cli", "run", "dms-rekey"], folder, env)
    kept = folder / "state" / "canary-dms.json"
    canary = json.loads(kept.read_text(encoding="utf-8"))["seconds"] if kept.is_file() else None
    return Run(done.seconds, verify(sb, plan), done.peak_pss_mb, done.returncode), canary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contracts", type=int, default=20, help="approved creations a run writes (default 20)")
    ap.add_argument("--orders", type=int, default=300, help="orders in the sandbox")
    ap.add_argument("--concurrency", type=int, default=3, help="DMS forms at once ([rekey] concurrency)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each side (default 3)")
    args = ap.parse_args()
    sides = ["canary", "no canary"]
    runs: dict[str, list[Run]] = {side: [] for side in sides}
    canary_seconds: list[float] = []
    sb = start_sandbox(args.orders)
    try:
        with tempfile.TemporaryDirectory(prefix="dealerbot-bench-canary-") as tmp:
            workdir = Path(tmp)
            prepared = workdir / "prepared"
            prepared.mkdir()
            plan = prepare(sb, prepared, args.contracts, args.concurrency, None, 1 / 3)
            envs = {"canary": clean_env(DEALERBOT_DMS_PASSWORD=DMS_PASSWORD),
                    "no canary": clean_env(DEALERBOT_DMS_PASSWORD=DMS_PASSWORD, DEALERBOT_DMS__CANARY="false")}
            for i in range(max(1, args.runs)):
                for side in alternating(sides, i):
                    run, canary = _run(sb, prepared, workdir / f"{side.replace(' ', '-')}-{i}", plan, envs[side])
                    runs[side].append(run)
                    if side == "canary":
                        if canary is None:
                            raise SystemExit("the run with the canary kept no state/canary-dms.json")
                        canary_seconds.append(canary)
                    elif canary is not None:
                        raise SystemExit("the run without the canary ran it ([dms] canary = false ignored)")
                    print(f"  round {i + 1}, {side}: {run.done} verified in {run.seconds:.2f} s"
                          f"{f', canary {canary:.2f} s' if canary is not None else ''}"
                          f"{f' (exit {run.returncode})' if run.returncode else ''}", flush=True)
    finally:
        sb.stop()
    n = len(plan)
    with_s, without_s = median_seconds(runs["canary"]), median_seconds(runs["no canary"])
    c_med = statistics.median(canary_seconds)
    print(f"contracts: {n} a run, concurrency {args.concurrency}; {len(runs['canary'])} run(s) of each side, "
          f"alternating which goes first, each on a freshly reset DMS")
    print(spread("dealerbot run dms-rekey, canary:    ", runs["canary"]))
    print(spread("dealerbot run dms-rekey, no canary: ", runs["no canary"]))
    print(f"canary as measured in the run: s min/med/max {min(canary_seconds):.2f} / {c_med:.2f} / "
          f"{max(canary_seconds):.2f}; share of the median run with it: {c_med / with_s:.1%}; "
          f"difference of the medians (with noise): {with_s - without_s:+.2f} s ({with_s / without_s:.3f}x)")
    ok = all(r.done == n and r.returncode == 0 for side in runs.values() for r in side) and c_med <= TARGET_SECONDS
    print(f"target: canary median <= {TARGET_SECONDS:.0f} s per run -> {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

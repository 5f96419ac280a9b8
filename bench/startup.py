"""Benchmark: how long the `dealerbot` commands that start no browser take to start and finish.

    ./run.sh bench startup            # 9 runs of each, medians
    ./run.sh bench startup --runs 15
    ./run.sh bench startup --before /tmp/old   # also an older checkout's commands, interleaved

Each command runs as an operator runs it (a fresh process: ``python -m dealerbot.cli ...``) in
a throwaway project folder (a config, an empty run store). The baseline, measured in the same
run and alternating with the commands: a process that only imports ``playwright.async_api``
(what any command that drove the browser would pay before doing anything). Printed per command:
the median of the runs in seconds and its ratio to the baseline; target: every command under
0.25 s on an idle machine, i.e. not much slower than importing Playwright's API alone.
Exits 1 when a command fails or misses the target by ratio (more than 2.5x the baseline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [["bots"], ["--help"], ["runs"], ["schedule", "check"]]
BASELINE = [sys.executable, "-c", "import playwright.async_api"]
ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.25
MAX_RATIO = 2.5


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--before", type=Path, help="a checkout (e.g. `git archive`d) whose src/ is timed too")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(COLUMNS="120", NO_COLOR="1")
    with tempfile.TemporaryDirectory(prefix="dealerbot-startup-") as tmp:
        home = Path(tmp)
        (home / "dealerbot.toml").write_text('[oem]\nurl = "http://127.0.0.1:9"\n', encoding="utf-8")
        (home / "schedules").mkdir()
        (home / "schedules" / "daily.yaml").write_bytes((ROOT / "schedules" / "daily.yaml").read_bytes())
        runs = {"import playwright.async_api": [], **{" ".join(c): [] for c in COMMANDS}}
        old_env = dict(env, PYTHONPATH=str(args.before.resolve() / "src")) if args.before else None
        if old_env:
            runs.update({"before: " + " ".join(c): [] for c in COMMANDS})
        for argv in [BASELINE] + [[sys.executable, "-m", "dealerbot.cli", *c] for c in COMMANDS]:
            timed(argv, home, env)  # warm the file cache (and create the run store) once
            if old_env:
                timed(argv, home, old_env)
        for _ in range(args.runs):
            # alternating: a busy moment costs the baseline and the commands alike
            runs["import playwright.async_api"].append(timed(BASELINE, home, env))
            for c in COMMANDS:
                runs[" ".join(c)].append(timed([sys.executable, "-m", "dealerbot.cli", *c], home, env))
                if old_env:
                    runs["before: " + " ".join(c)].append(timed([sys.executable, "-m", "dealerbot.cli", *c], home, old_env))
    base = statistics.median(runs["import playwright.async_api"])
    print(f"{'command':<32}{'median s':>10}{'ratio':>8}   ({args.runs} runs each, {os.cpu_count()} cores)")
    missed = False
    for name, times in runs.items():
        med = statistics.median(times)
        ratio = med / base
        flag = ""
        if not name.startswith(("import", "before")):
            flag = "" if ratio <= MAX_RATIO else "  missed"
            missed |= ratio > MAX_RATIO
        label = name if name.startswith("import") else ("before: dealerbot " + name[8:] if name.startswith("before")
                                                        else "dealerbot " + name)
        print(f"{label:<32}"
              f"{med:>10.3f}{ratio:>7.2f}x{flag}")
    print(f"target: under {TARGET_SECONDS} s on an idle machine; ratio to the baseline at most {MAX_RATIO}x")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

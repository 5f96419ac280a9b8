"""Benchmark: how long the `dealerbot` commands that start no browser take to start and finish.

    ./run.sh bench startup            # 9 runs of each, medians
    ./run.sh bench startup --runs 15
    ./run.sh bench startup --before /tmp/old   # also an older checkout's commands, interleaved

Each command runs as an operator runs it (a fresh process: ``python -m dealerbot.cli ...``) in
a throwaway project folder (a config, an empty run store). The baseline, measured in the same
run and alternating with the commands: a process that only imports ``playwright.async_api``
(what any command that drove the browser would pay before doing anything). Printed per command:
the median of the runs in seconds and its ratio to the baseline, and the same for the CPU seconds
(user + system) of those runs, which a busy machine sways less; target: every command under
0.25 s on an idle machine, i.e. not much slower than importing Playwright's API alone.
Exits 1 when a command fails or misses the target by ratio (more than 2.5x the baseline).
"""

from __future__ import annotations

import argparse
import os
import resource
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


CPU: dict[str, list[float]] = {}  # the same runs' CPU seconds (user + system): less swayed by a busy machine


def timed(argv: list[str], cwd: Path, env: dict[str, str], name: str = "") -> float:
    """Wall seconds of one run of ``argv`` (its CPU seconds kept in CPU[name] when named)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    if name:
        CPU.setdefault(name, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--before", type=Path, help="a checkout (e.g. `git archive`d) whose src/ is timed too")
    args = ap.parse_args()
    # Compiled modules are kept as in an installed dealerbot (pip writes them; an environment
    # that forbids it would time compiling dealerbot's sources on every start instead).
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(COLUMNS="120", NO_COLOR="1")
    with tempfile.TemporaryDirectory(prefix="dealerbot-startup-") as tmp:
        home, old_home = Path(tmp) / "now", Path(tmp) / "before"  # each its own run store (its own schema)
        for folder in (home, old_home):
            (folder / "schedules").mkdir(parents=True)
            (folder / "dealerbot.toml").write_text('[oem]\nurl = "http://127.0.0.1:9"\n', encoding="utf-8")
            (folder / "schedules" / "daily.yaml").write_bytes((ROOT / "schedules" / "daily.yaml").read_bytes())
        runs = {"import playwright.async_api": [], **{" ".join(c): [] for c in COMMANDS}}
        old_env = dict(env, PYTHONPATH=str(args.before.resolve() / "src")) if args.before else None
        if old_env:
            runs.update({"before: " + " ".join(c): [] for c in COMMANDS})
        for argv in [BASELINE] + [[sys.executable, "-m", "dealerbot.cli", *c] for c in COMMANDS]:
            timed(argv, home, env)  # warm the file cache (and create the run store) once
            if old_env:
                timed(argv, old_home, old_env)
        for _ in range(args.runs):
            # alternating: a busy moment costs the baseline and the commands alike
            runs["import playwright.async_api"].append(timed(BASELINE, home, env, "import playwright.async_api"))
            for c in COMMANDS:
                name = " ".join(c)
                runs[name].append(timed([sys.executable, "-m", "dealerbot.cli", *c], home, env, name))
                if old_env:
                    runs["before: " + name].append(
                        timed([sys.executable, "-m", "dealerbot.cli", *c], old_home, old_env, "before: " + name))
    base = statistics.median(runs["import playwright.async_api"])
    cpu_base = statistics.median(CPU["import playwright.async_api"])
    print(f"{'command':<32}{'median s':>10}{'ratio':>8}{'CPU s':>8}{'ratio':>8}   ({args.runs} runs each, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
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
        cpu = statistics.median(CPU[name])
        print(f"{label:<32}{med:>10.3f}{ratio:>7.2f}x{cpu:>8.3f}{cpu / cpu_base:>7.2f}x{flag}")
    print(f"target: under {TARGET_SECONDS} s on an idle machine; ratio to the baseline at most {MAX_RATIO}x")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

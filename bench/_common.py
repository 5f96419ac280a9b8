"""What the benchmarks share: the sandbox in a process of its own, a process tree's peak
memory (proportional set size of a command and every process it starts, sampled every 50 ms), and
repeated runs: which side goes first in each round, and the min and median of each side's runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
OEM_PASSWORD = "Oem@2026!"
DMS_PASSWORD = "Dms@2026!"

_SANDBOX = """
import json, sys, time
from dealerbot.sandbox.config import SandboxConfig
from dealerbot.sandbox.server import SandboxServer
cfg = SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=int(sys.argv[1]), seed=int(sys.argv[2]),
                    used_cars=int(sys.argv[3]))
with SandboxServer(cfg) as sb:
    print(json.dumps({"oem": sb.oem_url, "dms": sb.dms_url, "usedcars": sb.usedcars_url, "token": sb.admin_token}),
          flush=True)
    sys.stdin.read()  # until the benchmark closes the pipe
"""


@dataclass
class Sandbox:
    proc: subprocess.Popen[str]
    oem: str
    dms: str
    token: str
    usedcars: str = ""

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_sandbox(orders: int, seed: int = 20261125, used_cars: int = 57) -> Sandbox:
    """The practice portals in their own process (so that they do not share a core's GIL with
    what is measured)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SANDBOX, str(orders), str(seed), str(used_cars)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the sandbox did not start")
    info = json.loads(line)
    return Sandbox(proc, info["oem"], info["dms"], info["token"], info["usedcars"])


@dataclass
class Measured:
    seconds: float
    peak_pss_mb: float
    peak_rss_mb: float
    returncode: int


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> Measured:
    """Run ``cmd``; its wall time and the peak memory of its whole process tree."""
    started = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else ""), daemon=True)
    reader.start()
    peak = peak_rss = 0
    at_peak: dict[str, float] = {}
    cpu: dict[int, tuple[str, float]] = {}
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            procs = []
        pss = rss = 0
        kinds: dict[str, float] = {}
        for p in procs:
            try:
                info = p.memory_full_info()
                pss += getattr(info, "pss", info.rss)
                rss += info.rss
                kind = next((a[7:] for a in p.cmdline() if a.startswith("--type=")), p.name())
                kinds[kind] = kinds.get(kind, 0) + getattr(info, "pss", info.rss) / 1e6
                times = p.cpu_times()
                cpu[p.pid] = (kind, times.user + times.system)
            except psutil.Error:
                pass
        if pss > peak:
            at_peak = kinds
        peak, peak_rss = max(peak, pss), max(peak_rss, rss)
        time.sleep(0.05)
    if os.environ.get("BENCH_BREAKDOWN"):
        print("at peak (MB PSS):", {k: round(v) for k, v in sorted(at_peak.items(), key=lambda kv: -kv[1])})
        by_kind: dict[str, float] = {}
        for kind, seconds in cpu.values():
            by_kind[kind] = by_kind.get(kind, 0) + seconds
        print("CPU seconds:", {k: round(v, 1) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])})
    seconds = time.perf_counter() - started
    reader.join(5)
    if proc.returncode != 0:
        sys.stderr.write("".join(err)[-3000:])
    return Measured(seconds, peak / 1e6, peak_rss / 1e6, proc.returncode)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(COLUMNS="160", **extra)
    return env


def alternating(sides: Sequence[T], round_no: int) -> list[T]:
    """The order the sides run in round ``round_no`` (from 0): as given in even rounds, reversed in
    odd ones, so that no side always goes first (onto a cold cache, or a quiet machine)."""
    return list(sides) if round_no % 2 == 0 else list(reversed(sides))


@dataclass
class Run:
    """One run of one side: its wall time, the units it did and that were verified, the peak
    memory of its process tree (None when that side's memory is not measured) and its exit code."""

    seconds: float
    done: int
    peak_mb: float | None = None
    returncode: int = 0
    peak_rss_mb: float | None = None  # RSS summed over the processes (shared pages counted in each)


def min_median(values: Sequence[float]) -> tuple[float, float]:
    """(min, median) of ``values``; raises ValueError when there are none."""
    if not values:
        raise ValueError("no runs")
    return min(values), statistics.median(values)


def median_seconds(runs: Sequence[Run]) -> float:
    """The median wall time of ``runs``; raises ValueError when there are none."""
    return min_median([r.seconds for r in runs])[1]


def median_rate(runs: Sequence[Run], per: float = 1.0) -> float:
    """The median of the runs' rates (units done per second, times ``per``: 60 for per minute)."""
    return min_median([r.done / r.seconds * per for r in runs])[1]


def median_peak(runs: Sequence[Run]) -> float | None:
    """The median peak memory of ``runs`` in MB, None when it was not measured."""
    peaks = [r.peak_mb for r in runs if r.peak_mb is not None]
    return min_median(peaks)[1] if peaks else None


def spread(label: str, runs: Sequence[Run], unit: str = "/s", per: float = 1.0) -> str:
    """One side's line: its verified units, time, rate (``done / seconds * per``, in ``unit``) and
    peak memory, each as min / median over its runs, with every run's time; raises ValueError
    when there are no runs."""
    seconds = [r.seconds for r in runs]
    rates = [r.done / r.seconds * per for r in runs]
    peaks = [r.peak_mb for r in runs if r.peak_mb is not None]
    s_min, s_med = min_median(seconds)
    r_min, r_med = min_median(rates)
    memory = "peak memory not measured"
    if peaks:
        m_min, m_med = min_median(peaks)
        memory = f"peak MB (PSS) min/med {m_min:.0f} / {m_med:.0f}"
    done = sorted({r.done for r in runs})
    return (f"{label} {len(runs)} run(s), verified {'/'.join(str(d) for d in done)}; "
            f"s min/med {s_min:.2f} / {s_med:.2f}; {unit} min/med {r_min:.1f} / {r_med:.1f}; {memory}; "
            f"every run: {', '.join(f'{x:.2f}' for x in seconds)} s")

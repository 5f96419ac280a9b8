"""What the benchmarks share: the sandbox in a process of its own, and a process tree's peak
memory (proportional set size of a command and every process it starts, sampled every 50 ms)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

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

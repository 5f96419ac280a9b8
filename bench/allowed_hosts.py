"""Benchmark: what `allowed_hosts` costs a page load, and what it saves behind a dead CDN.

    ./run.sh bench hosts              # 40 loads of each kind, 3 rounds
    ./run.sh bench hosts --loads 100

The page: the sandbox's used-car platform's public 收车指导价 page, loaded in a fresh context
of the project's browser, ``wait_until="load"``. Kinds, alternating within each round:

* none: no route at all (the baseline);
* allowed: dealerbot's route (:func:`dealerbot.web.browser.blocked_hosts_pattern`): matched in
  Playwright's driver, so the allowed requests never reach Python;
* python: the naive ``context.route("**/*", handler)`` deciding in Python for every request.

Printed: the median milliseconds per load of each kind (the median of the rounds' medians) and
the ratio to the baseline. Then, with the page loading a script from a host that never answers
(closed after ``--hold`` seconds, as a CDN unreachable from an office would time out), one load
without and one with ``allowed_hosts``: the time the page waited.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import threading
import time

import httpx

from dealerbot.config import BrowserSettings
from dealerbot.sandbox.config import SandboxConfig
from dealerbot.sandbox.server import SandboxServer
from dealerbot.web.browser import blocked_hosts_pattern, open_browser


async def _load(browser, url: str, kind: str, loads: int) -> list[float]:
    ctx = await browser.browser.new_context()
    host = url.split("/")[2].split(":")[0]
    if kind == "allowed":
        await ctx.route(blocked_hosts_pattern([host, "static.faw-vw.test"]), lambda route: route.abort())
    elif kind == "python":
        async def decide(route):
            if route.request.url.split("/")[2].split(":")[0] == host:
                await route.continue_()
            else:
                await route.abort()
        await ctx.route("**/*", decide)
    page = await ctx.new_page()
    times = []
    for _ in range(loads):
        start = time.perf_counter()
        await page.goto(url, wait_until="load")
        times.append((time.perf_counter() - start) * 1000)
    await ctx.close()
    return times


def _black_hole(hold: float) -> int:
    sock = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            conn, _ = sock.accept()
            threading.Timer(hold, conn.close).start()

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hold", type=float, default=3.0)
    args = ap.parse_args()
    with SandboxServer(SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, seed=1)) as sb:
        url = f"{sb.usedcars_url}/public/prices/"
        admin = httpx.Client(base_url=sb.usedcars_url, headers={"X-Admin-Token": sb.admin_token}, timeout=10)
        async with open_browser(BrowserSettings(args=["--host-resolver-rules=MAP *.dealer.test 127.0.0.1"])) as browser:
            assert browser is not None
            kinds = ["none", "allowed", "python"]
            medians: dict[str, list[float]] = {k: [] for k in kinds}
            await _load(browser, url, "none", 5)  # warm up
            for r in range(args.rounds):
                for kind in kinds[r % 3:] + kinds[: r % 3]:
                    medians[kind].append(statistics.median(await _load(browser, url, kind, args.loads)))
            base = statistics.median(medians["none"])
            print(f"{'kind':<10}{'ms/load':>10}{'ratio':>8}   ({args.rounds} rounds x {args.loads} loads, median of medians)")
            for kind in kinds:
                m = statistics.median(medians[kind])
                print(f"{kind:<10}{m:>10.1f}{m / base:>7.2f}x   rounds: {', '.join(f'{x:.1f}' for x in medians[kind])}")
            port = _black_hole(args.hold)
            admin.put("/__admin/behaviours", json={"cdn_script": f"http://cdn.dealer.test:{port}/x.js"}).raise_for_status()
            for kind in ("none", "allowed"):
                took = statistics.median(await _load(browser, url, kind, 1))
                print(f"behind a dead CDN ({args.hold:.0f} s until it gives up), {kind}: {took:.0f} ms")
            admin.put("/__admin/behaviours", json={"cdn_script": ""})
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

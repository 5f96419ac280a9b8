"""Benchmark: scrape N orders with their details from the sandbox, against a plain-HTTP floor.

    ./run.sh bench scrape                           # 2,000 orders, concurrency 4
    ./run.sh bench scrape --orders 2000,10000,50000 # the sweep: growth visible in one table
    ./run.sh bench scrape --orders 500 --concurrency 2
    ./run.sh bench scrape --reads browser          # the bot's reads through the browser, not plain HTTP

Three processes: the sandbox (``dealerbot sandbox``), the floor and the bot. The floor is what a
competent engineer would write by hand: it logs in with httpx and reads the same list endpoint and
the same detail pages at the same concurrency, parsing the same fields with lxml through CSS
selectors compiled once. Each side runs ``--runs`` times per size (default 3), the side that goes
first alternating from round to round; min and median are printed and the ratio is of medians. The bot is ``dealerbot run oem-orders --full`` exactly as an
operator starts it, in a new folder (a new store, no saved login: its first run), with its code
byte-compiled as an installed package is, its reads over plain HTTP (``[oem] reads = "http"``, the
default) or, with ``--reads browser``, through the browser (compare two runs of the bench).
Printed: seconds, records per second, the ratio bot/floor, and the peak memory (PSS) of the bot
process and all its browser processes together, sampled every 50 ms. The bot runs twice per size: once timed, with nothing watching it, and once
with its memory sampled (reading a browser's memory map stalls it: sampling every 50 ms made the
bot 0.3-0.5 s slower at 2,000 orders).
Targets: ratio <= 3.0 and peak memory < 600 MB at every size; <= 1.3x at 2,000 orders; in a
sweep with 10,000 and 50,000 orders, the peak at 50,000 within 5% of the peak at 10,000.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from lxml import html
from lxml.cssselect import CSSSelector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OEM_PASSWORD as PASSWORD  # noqa: E402
from _common import ROOT, alternating, clean_env, measure, start_sandbox  # noqa: E402

FIELDS = (
    "order_no", "customer_name", "mobile", "id_type", "id_number", "model_code", "color", "vin",
    "price", "status", "planned_delivery_date", "updated_at",
)
TARGET_RATIO = 3.0
TARGET_SMALL_RATIO = 1.3  # at 2,000 orders, start-up included
TARGET_GROWTH = 0.05  # peak memory at 50,000 orders against 10,000
TARGET_MB = 600


async def floor(base: str, concurrency: int) -> tuple[int, float]:
    """Plain HTTP: log in, walk the list endpoint, fetch and parse every detail page."""
    started = time.perf_counter()
    selectors = {f: CSSSelector(f"#order-detail dd[data-field='{f}']") for f in FIELDS}  # compiled once
    limits = httpx.Limits(max_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as c:
        page = await c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = await c.post("/login", data={"dealer_code": "D31001", "username": "dealer_admin", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303, r.status_code
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=40)
        count = 0

        async def walk() -> None:
            n = 1
            while True:
                data = (await c.get("/api/orders", params={"page": n, "page_size": 20, "sort": "updated_at", "dir": "asc"})).json()
                for item in data["items"]:
                    await queue.put(item["order_no"])
                if n >= data["pages"]:
                    break
                n += 1
            for _ in range(concurrency):
                await queue.put(None)

        async def details() -> None:
            nonlocal count
            while (no := await queue.get()) is not None:
                root = html.fromstring((await c.get(f"/orders/{no}")).text)
                record = {f: sel(root)[0].text_content().strip() for f, sel in selectors.items()}
                assert record["order_no"] == no
                count += 1

        await asyncio.gather(walk(), *(details() for _ in range(concurrency)))
    return count, time.perf_counter() - started


def run_bot(base: str, concurrency: int, workdir: Path, trace: bool = True, sampled: bool = False,
            reads: str = "http") -> tuple[int, float, float]:
    """``dealerbot run oem-orders --full`` in ``workdir`` with ``[oem] reads``; returns (records,
    seconds, peak MB of the process tree, 0 unless ``sampled``)."""
    (workdir / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{base}"\nreads = "{reads}"\n[run]\nconcurrency = {concurrency}\n[browser]\ntrace = {str(trace).lower()}\n', encoding="utf-8"
    )
    cmd, env = [sys.executable, "-m", "dealerbot.cli", "run", "oem-orders", "--full"], clean_env(DEALERBOT_OEM_PASSWORD=PASSWORD)
    if sampled:
        run = measure(cmd, workdir, env)
        print(f"(peak RSS summed over processes, counting shared pages once per process: {run.peak_rss_mb:.0f} MB)")
        seconds, peak, code = run.seconds, run.peak_pss_mb, run.returncode
    else:
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds, peak, code = time.perf_counter() - started, 0.0, done.returncode
        if code:
            sys.stderr.write(done.stderr[-3000:])
    if code != 0:
        raise SystemExit(f"the bot failed (exit {code}); see {workdir / 'logs'}")
    db = sqlite3.connect(workdir / "var" / "dealerbot.sqlite")
    read = json.loads(db.execute("SELECT counts FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0])["read"]
    db.close()
    return read, seconds, peak


def measure_size(orders: int, concurrency: int, trace: bool, runs: int, reads: str = "http") -> dict:
    """One row of the table: the floor and the bot ``runs`` times each on a sandbox of ``orders``
    orders (who goes first alternating), each bot run in a folder of its own; then the bot once
    more with its memory sampled."""
    sandbox = start_sandbox(orders)
    floor_s: list[float] = []
    bot_s: list[float] = []
    counts: set[int] = set()
    try:
        for i in range(runs):
            for side in alternating(("floor", "bot"), i):
                if side == "floor":
                    n, seconds = asyncio.run(floor(sandbox.oem, concurrency))
                    floor_s.append(seconds)
                else:
                    with tempfile.TemporaryDirectory(prefix="dealerbot-bench-") as tmp:
                        n, seconds, _ = run_bot(sandbox.oem, concurrency, Path(tmp), trace=trace, reads=reads)
                    bot_s.append(seconds)
                counts.add(n)
        with tempfile.TemporaryDirectory(prefix="dealerbot-bench-") as tmp:
            sampled_n, _, peak_mb = run_bot(sandbox.oem, concurrency, Path(tmp), trace=trace, sampled=True, reads=reads)
            counts.add(sampled_n)
    finally:
        sandbox.stop()
    return {"orders": orders, "counts": counts, "floor": floor_s, "bot": bot_s, "peak_mb": peak_mb,
            "floor_s": statistics.median(floor_s), "bot_s": statistics.median(bot_s)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", default="2000", help="orders in the sandbox; a comma list is a sweep, e.g. 2000,10000,50000")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--no-trace", action="store_true", help="run the bot with Playwright tracing off")
    ap.add_argument("--reads", choices=("http", "browser"), default="http",
                    help="the bot's [oem] reads: plain HTTP with the browser's cookies (default) or through the browser")
    ap.add_argument("--runs", type=int, default=3, help="runs of each side per size (min and median printed)")
    args = ap.parse_args()
    # As installed (pip byte-compiles a package): an editable checkout run with
    # PYTHONDONTWRITEBYTECODE set would compile dealerbot's source at every start (0.14 s).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src"), str(ROOT / "portals"), str(ROOT / "bots")],
                   check=True, stdout=subprocess.DEVNULL)
    sizes = [int(n) for n in str(args.orders).split(",") if n.strip()]
    rows = []
    for n in sizes:
        rows.append(measure_size(n, args.concurrency, not args.no_trace, max(1, args.runs), args.reads))
        r = rows[-1]
        print(f"  {n} orders: floor {', '.join(f'{x:.2f}' for x in r['floor'])} s; "
              f"bot {', '.join(f'{x:.2f}' for x in r['bot'])} s; peak {r['peak_mb']:.0f} MB", flush=True)
    print(f"concurrency: {args.concurrency}, cores: {os.cpu_count()}, tracing {'off' if args.no_trace else 'on'}, "
          f"bot reads: {args.reads}, "
          f"{args.runs} run(s) of each side per size, alternating which goes first")
    print(f"{'orders':>8} | {'floor s min/med':>15} | {'bot s min/med':>15} | {'bot rec/s':>9} | {'ratio (med)':>11} | "
          f"{'ratio (min)':>11} | {'peak MB (PSS)':>13}")
    ok = True
    for r in rows:
        ratio = r["bot_s"] / r["floor_s"]
        print(f"{r['orders']:>8,} | {min(r['floor']):>6.2f} / {r['floor_s']:<6.2f} | {min(r['bot']):>6.2f} / {r['bot_s']:<6.2f} | "
              f"{r['orders'] / r['bot_s']:>9.0f} | {ratio:>10.2f}x | {min(r['bot']) / min(r['floor']):>10.2f}x | {r['peak_mb']:>13.0f}")
        ok &= r["counts"] == {r["orders"]} and ratio <= TARGET_RATIO and r["peak_mb"] < TARGET_MB
    targets = [f"ratio <= {TARGET_RATIO}x and peak < {TARGET_MB} MB at every size"]
    small = next((r for r in rows if r["orders"] == 2000), None)
    if small is not None:
        targets.append(f"<= {TARGET_SMALL_RATIO}x at 2,000 orders")
        ok &= small["bot_s"] / small["floor_s"] <= TARGET_SMALL_RATIO
    by_size = {r["orders"]: r for r in rows}
    if 10000 in by_size and 50000 in by_size:
        growth = by_size[50000]["peak_mb"] / by_size[10000]["peak_mb"] - 1
        print(f"memory growth 10,000 -> 50,000 orders: {growth:+.1%} (target within {TARGET_GROWTH:.0%})")
        targets.append(f"growth within {TARGET_GROWTH:.0%}")
        ok &= growth <= TARGET_GROWTH
    print(f"targets: {'; '.join(targets)} -> {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a form whose labelled fields move every round, filled by label, through dealerbot
against a plain Playwright script, in the same run.

    ./run.sh bench form                 # best of 5 each
    ./run.sh bench form --rounds 9

The form is the sandbox's moving form (``/rounds/`` on the used-car platform,
``src/dealerbot/sandbox/rounds.py``): 10 rounds x 7 fields with Chinese labels whose order,
position, inputs and kind of label (``for=``, nested, ``aria-label``) change every round, and a
提交 button that slides in (200 ms) each round. The page times itself: from the first round shown
to the 10th submit.

* dealerbot: a selector file (``label:`` choices, :data:`SELECTORS`) and :class:`dealerbot.api.Form`:
  ``fill`` by label (one round-trip for the 7 fields), ``click(settled=False)``;
* plain Playwright (async): ``page.get_by_label(text).fill(value)`` per field, ``click()``.

Same browser binary and browser, a fresh page each attempt, the sides alternating; the best
attempt of each counts. Every attempt is checked against the platform's admin API (every round's
values where they belong). Printed: the page's timer for each side, the ratio dealerbot/plain.
Targets: dealerbot <= 0.5 s by the page's timer, and <= 1.0x plain. Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternating, start_sandbox  # noqa: E402

from dealerbot.api import Form, PortalSession  # noqa: E402
from dealerbot.config import BrowserSettings, PortalSettings, RunSettings  # noqa: E402
from dealerbot.sandbox.rounds import FIELDS, RECORDS  # noqa: E402
from dealerbot.web.browser import find_browser  # noqa: E402
from dealerbot.web.locators import load_selector_file  # noqa: E402

TARGET_SECONDS = 0.5
TARGET_RATIO = 1.0
SELECTORS = "portal: drill\nselectors:\n" + "".join(f"  drill.{key}:\n    - label: {text}\n" for key, text in FIELDS) + (
    "  drill.submit:\n    - css: '#submit'\n  drill.done:\n    - css: '#done'\n")


async def with_dealerbot(page: Page, url: str, selectors: Path) -> None:
    session = PortalSession("drill", PortalSettings(url=url), None, page, load_selector_file(selectors),  # type: ignore[arg-type]
                            RunSettings())
    form = Form(session)
    await page.goto(f"{url}/rounds/")
    for record in RECORDS:
        await form.fill({f"drill.{key}": record[key] for key, _ in FIELDS})
        await form.click("drill.submit", settled=False)
    await form.first_of("drill.done")


async def with_plain_playwright(page: Page, url: str, selectors: Path) -> None:
    await page.goto(f"{url}/rounds/")
    for record in RECORDS:
        for key, text in FIELDS:
            await page.get_by_label(text).fill(record[key])
        await page.click("#submit")
    await page.wait_for_selector("#done", state="visible")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="attempts of each side (the best counts)")
    args = ap.parse_args()
    executable = find_browser(BrowserSettings(), headless=True).executable
    if not executable:
        raise SystemExit("this benchmark needs a browser executable (a system Chromium)")
    sb = start_sandbox(10)
    admin = httpx.Client(base_url=sb.usedcars, headers={"X-Admin-Token": sb.token}, timeout=30)
    selectors = Path(tempfile.mkdtemp(prefix="bench-form-")) / "drill.yaml"
    selectors.write_text(SELECTORS, encoding="utf-8")
    sides: dict[str, Callable[[Page, str, Path], Awaitable[None]]] = {
        "dealerbot": with_dealerbot, "plain Playwright": with_plain_playwright}
    timer: dict[str, list[float]] = {name: [] for name in sides}
    wall: dict[str, list[float]] = {name: [] for name in sides}
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
            for attempt in range(args.rounds + 1):  # attempt 0 warms the browser and the server up: not counted
                for name in alternating(list(sides), attempt):
                    admin.post("/__admin/rounds/reset").raise_for_status()
                    context = await browser.new_context()
                    page = await context.new_page()
                    started = time.perf_counter()
                    await sides[name](page, sb.usedcars, selectors)
                    seconds = time.perf_counter() - started
                    await context.close()
                    [run] = admin.get("/__admin/rounds").raise_for_status().json()["runs"]
                    if run["rounds"] != list(RECORDS):
                        wrong = [i + 1 for i, (got, want) in enumerate(zip(run["rounds"], RECORDS)) if got != want]
                        raise SystemExit(f"{name}: rounds {wrong or 'count'} hold wrong values: {run['rounds']}")
                    if attempt:
                        timer[name].append(run["elapsed_ms"] / 1000)
                        wall[name].append(seconds)
            await browser.close()
    finally:
        admin.close()
        sb.stop()
    bot, plain = min(timer["dealerbot"]), min(timer["plain Playwright"])
    ratio = bot / plain
    print(f"moving form: 10 rounds x 7 fields by label; attempts: {args.rounds} each, alternating (best counts); "
          f"cores: {os.cpu_count()}")
    for name in sides:
        print(f"{name + ':':18} {min(timer[name]):6.3f} s by the page's timer ({', '.join(f'{s:.3f}' for s in timer[name])}); "
              f"{min(wall[name]):.3f} s from goto to the last answer")
    print(f"ratio dealerbot/plain: {ratio:.2f}x (target <= {TARGET_RATIO}x); dealerbot {bot:.3f} s "
          f"(target <= {TARGET_SECONDS} s); every round's values checked on the platform")
    ok = ratio <= TARGET_RATIO and bot <= TARGET_SECONDS
    print("result:", "PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Benchmark: re-key N new contracts (some with a new customer) into the sandbox DMS, each read
back and checked, against (a) what a competent engineer would write by hand with Playwright, and
(b) the floor: the same forms posted by plain HTTP.

    ./run.sh bench rekey                    # 500 contracts
    ./run.sh bench rekey --contracts 200 --concurrency 4

The sandbox runs in its own process. A working folder is prepared as a dealership would have
it: the four reading bots and `dealerbot reconcile`, then N planned creations are approved (as
a reviewer would in the workbook). Then, each on a freshly reset DMS and each checked against
the sandbox's ground truth (every planned contract there once, with the planned values):

* the bot: ``dealerbot run dms-rekey`` as an operator starts it (browser start, login, the
  customer pop-up, the model dropdown, the 确认保存? dialog, read-back; its ledger and audit);
* (a) a competent hand-written script: async Playwright at the bot's concurrency, one fresh
  context and page per worker (each logged in), the same search before create (contract by OEM
  order no, customer by ID number, one creation per person across workers), ``page.fill`` /
  ``page.click`` field by field, and the same field-by-field comparison on read-back (the edit
  form's values against the plan; a difference fails the script);
* (a0) ``--naive``: the single-page script of earlier versions (one page for everything, read-back
  without comparing), a third line for the record only;
* (b) floor: httpx posting the customer and contract forms, read-back through the list page,
  at the bot's concurrency.

Each side runs ``--runs`` times (default 2), the side that goes first alternating from round to
round, each run on a freshly reset DMS (the bot in a fresh copy of the prepared folder, its ledger
as the reviewer left it). Printed for each side: verified contracts, seconds, contracts per second
and peak memory (PSS of the process and its browser processes together; not measured for the
floor, which runs inside the bench), each as min and median over its runs, every run's time; the
ratios of the medians; the share of contracts that needed a new customer.
Targets, on the medians: >= 5 contracts/s, faster than (a), < 600 MB. Exits 1 when a target is
missed. The ratio
to (a) measures the engine (forms filled in one round trip, pop-up handling, the ledger's cost),
not the concurrency: both write ``--concurrency`` contracts at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
from lxml import html

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DMS_PASSWORD,
    OEM_PASSWORD,
    ROOT,
    Run,
    Sandbox,
    alternating,
    clean_env,
    measure,
    median_peak,
    median_rate,
    median_seconds,
    spread,
    start_sandbox,
)

TARGET_RATE = 5.0
TARGET_MB = 600
FIELDS = ("model_code", "color", "vin", "price", "deposit", "delivery_date", "oem_order_no", "status")


def _cli(workdir: Path, *args: str) -> None:
    import subprocess

    env = clean_env(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, DEALERBOT_DMS_PASSWORD=DMS_PASSWORD)
    done = subprocess.run([sys.executable, "-m", "dealerbot.cli", *args], cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dealerbot {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def prepare(sb: Sandbox, workdir: Path, contracts: int, concurrency: int, trace: bool | None,
            new_share: float | None = None) -> list[dict]:
    """A dealership's folder with ``contracts`` approved creations; returns them as a plan."""
    tracing = "" if trace is None else f"[browser]\ntrace = {str(trace).lower()}\n"
    (workdir / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sb.oem}"\n[dms]\nurl = "{sb.dms}"\n{tracing}'
        f'[rekey]\nconcurrency = {concurrency}\n'
        f'approval_required = ["create_contract", "update_contract", "cancel_contract"]\n', encoding="utf-8",
    )
    shutil.copy(ROOT / "dictionary.yaml", workdir / "dictionary.yaml")
    for bot in ("oem-orders", "oem-customers", "dms-customers", "dms-contracts"):
        _cli(workdir, "run", bot)
    _cli(workdir, "reconcile")
    from dealerbot.store import Store

    with Store.open(f"sqlite:///{workdir / 'var' / 'dealerbot.sqlite'}") as store:
        creations = [a for a in store.actions(["planned"]) if a.kind == "create_contract" and a.customer.mode in ("new", "existing")]
        if len(creations) < contracts:
            raise SystemExit(f"only {len(creations)} creations planned; use a larger sandbox (--orders)")
        if new_share is not None:  # the mix asked for: new customers first, then known ones
            news = [a for a in creations if a.customer.mode == "new"]
            olds = [a for a in creations if a.customer.mode == "existing"]
            wanted = round(contracts * new_share)
            if len(news) < wanted or len(olds) < contracts - wanted:
                raise SystemExit(f"not enough creations for that mix ({len(news)} new, {len(olds)} known customers)")
            creations = news[:wanted] + olds[:contracts - wanted]
        chosen = creations[:contracts]
        stale = store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"} for a in chosen], "bench")
        assert not stale
    return [{"order_no": a.natural_key, "mode": a.customer.mode, "customer_no": a.customer.customer_no,
             "customer": a.customer.values, "values": a.new_values} for a in chosen]


def reset_dms(sb: Sandbox) -> None:
    httpx.post(f"{sb.dms}/__admin/reset", headers={"X-Admin-Token": sb.token}, timeout=60).raise_for_status()


def verify(sb: Sandbox, plan: list[dict]) -> int:
    """How many planned contracts the DMS holds exactly once, with exactly the planned values."""
    rows = httpx.get(f"{sb.dms}/__admin/contracts", headers={"X-Admin-Token": sb.token}, timeout=60).json()
    by_order: dict[str, list[dict]] = {}
    for r in rows:
        by_order.setdefault(r["oem_order_no"], []).append(r)
    good = 0
    for item in plan:
        found = by_order.get(item["order_no"], [])
        if len(found) != 1:
            continue
        c, v = found[0], item["values"]
        if (c["model_code"], c["color"], c["vin"], c["status"], c["delivery_date"]) == (
                v["model_code"], v["color"], v["vin"], v["status"], v["delivery_date"]) and f"{c['price']:.2f}" == v["price"]:
            good += 1
    return good


async def type_contract(page, dms: str, customer_no: str, v: dict) -> str:  # noqa: ANN001 - a Playwright page
    """Both hand-written scripts' contract form, field by field: the customer pop-up, the model
    dropdown, the inputs, 保存 and the 确认保存? dialog; the new contract's number."""
    await page.goto(f"{dms}/contracts/new")
    await page.click("#customer-pick")
    await page.fill("#customer-dialog-q", customer_no)
    await page.click("#customer-dialog-search")
    await page.click(f"#customer-dialog-table tr.pick-row[data-customer-no='{customer_no}'] button.pick")
    await page.select_option("#model_code", v["model_code"])
    for f in ("color", "vin", "price", "deposit", "delivery_date", "oem_order_no"):
        await page.fill(f"#{f}", v[f])
    await page.select_option("#status", v["status"])
    await page.click("#save")
    async with page.expect_navigation():
        await page.click("#confirm-ok")
    return parse_qs(urlparse(page.url).query)["q"][0]


# -- (a) what a competent engineer writes by hand: async Playwright at the bot's concurrency ------

async def competent(dms: str, plan: list[dict], concurrency: int) -> None:
    from playwright.async_api import async_playwright

    from dealerbot.config import BrowserSettings
    from dealerbot.web.browser import CHROMIUM_ARGS, find_browser

    spec = find_browser(BrowserSettings())
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    customers: dict[str, str] = {}
    locks: dict[str, asyncio.Lock] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=spec.executable, channel=spec.channel, args=[*CHROMIUM_ARGS, "--no-sandbox"])

        async def customer_no(page, item: dict) -> str:  # noqa: ANN001 - a Playwright page
            if item["mode"] != "new":
                return item["customer_no"]
            idn = item["customer"]["id_number"]
            async with locks.setdefault(idn, asyncio.Lock()):
                if idn not in customers:
                    await page.goto(f"{dms}/customers?q={idn}")  # search before create
                    rows = page.locator("tr.customer-row td[data-field=customer_no]")
                    if await rows.count() == 1:
                        customers[idn] = (await rows.first.inner_text()).strip()
                    else:
                        await page.goto(f"{dms}/customers/new")
                        for f, value in item["customer"].items():
                            await page.fill(f"#customer-form #{f}", value)
                        async with page.expect_navigation():
                            await page.click("#customer-form #save")
                        customers[idn] = parse_qs(urlparse(page.url).query)["q"][0]
            return customers[idn]

        async def worker() -> None:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(f"{dms}/login")
            await page.fill("#username", "sales01")
            await page.fill("#password", DMS_PASSWORD)
            async with page.expect_navigation():
                await page.click("#login-submit")
            while not queue.empty():
                item = queue.get_nowait()
                v = item["values"]
                await page.goto(f"{dms}/contracts?q={item['order_no']}")  # search before create
                found = page.locator("tr.contract-row")
                if await found.count():
                    contract_no = await found.first.get_attribute("data-contract-no")
                else:
                    no = await customer_no(page, item)
                    contract_no = await type_contract(page, dms, no, v)
                await page.goto(f"{dms}/contracts/{contract_no}/edit")  # read back, field by field
                for f in FIELDS:
                    got = await page.input_value(f"#contract-form #{f}")
                    if got != v[f]:
                        raise SystemExit(f"{item['order_no']}: read-back {f} is {got!r}, planned {v[f]!r}")
            await context.close()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await browser.close()


# -- (a0) the naive single-page script of earlier versions, for the record -----------------------

async def naive(dms: str, plan: list[dict]) -> None:
    from playwright.async_api import async_playwright

    from dealerbot.config import BrowserSettings
    from dealerbot.web.browser import CHROMIUM_ARGS, find_browser

    spec = find_browser(BrowserSettings())
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=spec.executable, channel=spec.channel, args=[*CHROMIUM_ARGS, "--no-sandbox"])
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{dms}/login")
        await page.fill("#username", "sales01")
        await page.fill("#password", DMS_PASSWORD)
        async with page.expect_navigation():
            await page.click("#login-submit")
        for item in plan:
            customer_no = item["customer_no"]
            if item["mode"] == "new":
                await page.goto(f"{dms}/customers/new")
                for f, value in item["customer"].items():
                    await page.fill(f"#customer-form #{f}", value)
                async with page.expect_navigation():
                    await page.click("#customer-form #save")
                customer_no = parse_qs(urlparse(page.url).query).get("q", [""])[0]
                if not customer_no.startswith("KH"):  # the same person's second order: already there
                    await page.goto(f"{dms}/customers?q={item['customer']['id_number']}")
                    customer_no = await page.locator("td[data-field=customer_no]").first.inner_text()
            contract_no = await type_contract(page, dms, customer_no, item["values"])
            await page.goto(f"{dms}/contracts?q={contract_no}")  # read back
            for f in FIELDS:
                await page.locator(f"tr.contract-row td[data-field={f}]").first.inner_text()
        await browser.close()


# -- (b) the floor: the same forms by plain HTTP ------------------------------------------------

async def floor(dms: str, plan: list[dict], concurrency: int) -> None:
    async with httpx.AsyncClient(base_url=dms, timeout=60, limits=httpx.Limits(max_connections=concurrency + 1)) as c:
        page = await c.get("/login")
        token = html.fromstring(page.text).cssselect("input[name=csrf_token]")[0].get("value")
        r = await c.post("/login", data={"username": "sales01", "password": DMS_PASSWORD, "csrf_token": token})
        assert r.status_code == 303
        token = html.fromstring((await c.get("/contracts")).text).cssselect("meta[name=csrf-token]")[0].get("content")
        queue: asyncio.Queue[dict] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        made: dict[str, str] = {}
        locks: dict[str, asyncio.Lock] = {}

        async def customer(item: dict) -> str:
            values = item["customer"]
            async with locks.setdefault(values["id_number"], asyncio.Lock()):
                if values["id_number"] not in made:
                    r = await c.post("/customers/new", data={**values, "csrf_token": token})
                    assert r.status_code == 303, r.text[:300]
                    made[values["id_number"]] = parse_qs(urlparse(r.headers["location"]).query)["q"][0]
            return made[values["id_number"]]

        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                no = await customer(item) if item["mode"] == "new" else item["customer_no"]
                r = await c.post("/contracts/new", data={**item["values"], "customer_no": no, "csrf_token": token})
                assert r.status_code == 303, r.text[:300]
                contract_no = parse_qs(urlparse(r.headers["location"]).query)["q"][0]
                row = html.fromstring((await c.get("/contracts", params={"q": contract_no})).text)
                assert row.cssselect("td[data-field=oem_order_no]")[0].text_content().strip() == item["order_no"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _bot_run(sb: Sandbox, prepared: Path, folder: Path, plan: list[dict], env: dict[str, str]) -> Run:
    """``dealerbot run dms-rekey`` in a fresh copy of the prepared folder (its ledger as the
    reviewer left it), on a freshly reset DMS; checked against the ground truth."""
    reset_dms(sb)
    shutil.copytree(prepared, folder)
    bot = measure([sys.executable, "-m", "dealerbot.cli", "run", "dms-rekey"], folder, env)
    return Run(bot.seconds, verify(sb, plan), bot.peak_pss_mb, bot.returncode, bot.peak_rss_mb)


def _script_run(sb: Sandbox, workdir: Path, kind: str, plan_file: Path, plan: list[dict], concurrency: int,
                env: dict[str, str]) -> Run:
    """A hand-written script (``competent`` or ``naive``) in a process of its own, on a freshly
    reset DMS; checked against the ground truth."""
    reset_dms(sb)
    script = [sys.executable, __file__, "--concurrency", str(concurrency), "--script", kind, str(plan_file), sb.dms]
    done = measure(script, workdir, env)
    return Run(done.seconds, verify(sb, plan), done.peak_pss_mb, done.returncode)


def _floor_run(sb: Sandbox, plan: list[dict], concurrency: int) -> Run:
    reset_dms(sb)
    started = time.perf_counter()
    asyncio.run(floor(sb.dms, plan, concurrency))
    seconds = time.perf_counter() - started
    return Run(seconds, verify(sb, plan))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contracts", type=int, default=500)
    ap.add_argument("--orders", type=int, default=1600, help="orders in the sandbox (enough creations for --contracts)")
    ap.add_argument("--concurrency", type=int, default=3, help="DMS forms at once ([rekey] concurrency)")
    ap.add_argument("--new-customers", type=float, default=1 / 3, metavar="SHARE",
                    help="share of the contracts whose customer must be created first (default: a third)")
    ap.add_argument("--trace", action="store_true", help="run the bot with Playwright tracing on ([browser] trace = true)")
    ap.add_argument("--bot-only", action="store_true", help="measure the bot alone (no plain script, no floor)")
    ap.add_argument("--naive", action="store_true", help="also time the naive single-page script (a0), for the record")
    ap.add_argument("--runs", type=int, default=2,
                    help="runs of each side (default 2: a round at 500 contracts takes about 6 minutes); "
                         "min and median printed, the ratios of medians")
    ap.add_argument("--script", nargs=3, metavar=("KIND", "PLAN", "DMS_URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.script:  # a hand-written script, in a process of its own
        kind, plan_path, dms = args.script
        todo = json.loads(Path(plan_path).read_text(encoding="utf-8"))
        asyncio.run(naive(dms, todo) if kind == "naive" else competent(dms, todo, args.concurrency))
        return 0

    sides = ["bot"] if args.bot_only else ["bot", "competent", *(["naive"] if args.naive else []), "floor"]
    runs: dict[str, list[Run]] = {side: [] for side in sides}
    sb = start_sandbox(args.orders)
    try:
        with tempfile.TemporaryDirectory(prefix="dealerbot-bench-rekey-") as tmp:
            workdir = Path(tmp)
            prepared = workdir / "prepared"
            prepared.mkdir()
            plan = prepare(sb, prepared, args.contracts, args.concurrency, True if args.trace else None, args.new_customers)
            new_customers = sum(1 for p in plan if p["mode"] == "new")
            env = clean_env(DEALERBOT_DMS_PASSWORD=DMS_PASSWORD)
            plan_file = workdir / "plan.json"
            plan_file.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
            for i in range(max(1, args.runs)):
                for side in alternating(sides, i):
                    if side == "bot":
                        run = _bot_run(sb, prepared, workdir / f"bot-{i}", plan, env)
                    elif side == "floor":
                        run = _floor_run(sb, plan, args.concurrency)
                    else:
                        run = _script_run(sb, workdir, side, plan_file, plan, args.concurrency, env)
                    runs[side].append(run)
                    print(f"  round {i + 1}, {side}: {run.done} verified in {run.seconds:.1f} s"
                          f"{f' (exit {run.returncode})' if run.returncode else ''}", flush=True)
    finally:
        sb.stop()
    n = len(plan)
    bot = runs["bot"]
    rate, bot_s, bot_mb = median_rate(bot), median_seconds(bot), median_peak(bot) or 0.0
    print(f"contracts: {n} ({new_customers} with a new customer, {new_customers / n:.0%}), concurrency {args.concurrency}, "
          f"tracing {'on' if args.trace else 'as the bot chooses (off)'}; {len(bot)} run(s) of each side, "
          f"alternating which goes first, each on a freshly reset DMS")
    if "floor" in runs:
        print(spread("floor (httpx, forms posted):      ", runs["floor"]))
    if "competent" in runs:
        print(spread("(a) competent Playwright script:  ", runs["competent"]) +
              f" (concurrency {args.concurrency}, search before create, read-back compared)")
    if "naive" in runs:
        print(spread("(a0) naive single-page script:    ", runs["naive"]) + " (for the record only)")
    rss = statistics.median(r.peak_rss_mb or 0.0 for r in bot)
    print(spread("dealerbot run dms-rekey:          ", bot) + f" (RSS summed, median: {rss:.0f} MB)")
    ok = all(r.done == n and r.returncode == 0 for side in runs.values() for r in side) and rate >= TARGET_RATE and bot_mb < TARGET_MB
    targets = f">= {TARGET_RATE}/s, < {TARGET_MB} MB"
    if not args.bot_only:
        hand_s = median_seconds(runs["competent"])
        print(f"ratios of medians: bot vs (a): {hand_s / bot_s:.2f}x faster; "
              f"bot/floor: {bot_s / median_seconds(runs['floor']):.1f}x the time")
        ok &= bot_s < hand_s
        targets = f">= {TARGET_RATE}/s, faster than (a), < {TARGET_MB} MB"
    print(f"targets (medians): {targets} -> {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a dealership's own portal through dealerbot against the same tasks in plain Playwright.

    ./run.sh bench portal                    # 2,000 cars listed, 50 registered
    ./run.sh bench portal --cars 500 --register 20 --sell 10

The portal is the sandbox's used-car trade-in platform (a portal built unlike the shipped two).
The tasks: read every car of its list (25 a page), then register the cars of an input file,
each searched first and read back after saving.

* baseline: ``bench/plain_usedcars.py``, the tasks written in plain Playwright (sync API, CSS
  by hand; the list read through the logged-in context's request API, as a good engineer
  would, not rendered page by page), as a subprocess;
* dealerbot: the example project ``examples/usedcars`` (config, selector file, page objects,
  two bots) run as an operator runs it: ``dealerbot run usedcars-stock``, then
  ``dealerbot run usedcars-register --input cars.csv``, each a process of its own (start-up,
  browser, login included; the second reuses the saved login).

The sale-like task is measured separately (its own process on each side, after the two above):
for each sale of an input file, find the car by its VIN, open its sale form (售出登记), fill it,
submit once, read the sale back; plain ``bench/plain_usedcars.py --sell`` against the example's
``dealerbot run usedcars-sell --input sales.csv`` (the saved login reused, like the register run).

Both use the same browser binary; each is run twice on a freshly reset platform, alternating, and
the faster of the two counts. Every round is checked against the platform's ground truth (every
input car registered exactly once; every sale recorded as given, on its car only). Printed:
seconds, the ratios dealerbot/plain (target <= 1.1x for the two tasks and for the sale task),
and the lines of code each needs (target: dealerbot fewer). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import os
import random
import shutil
import sys
import tempfile
import tokenize
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, clean_env, measure, start_sandbox  # noqa: E402

from dealerbot.config import BrowserSettings  # noqa: E402
from dealerbot.sandbox.data import vin_check_digit  # noqa: E402
from dealerbot.sandbox.usedcars import BRANDS, DEMO_PASSWORD, DEMO_USERNAME, MODELS  # noqa: E402
from dealerbot.web.browser import find_browser  # noqa: E402

TARGET_RATIO = 1.1
EXAMPLE = ROOT / "examples" / "usedcars"
PLAIN = ROOT / "bench" / "plain_usedcars.py"


def code_lines(path: Path) -> int:
    """Lines holding code: no blank lines, comments or docstrings (YAML: no blank or comment lines)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
    docstrings = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            docstrings |= set(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
            lines |= set(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


def input_cars(path: Path, count: int) -> list[str]:
    r = random.Random(7)
    vins = []
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["vin", "brand", "model", "reg_date", "mileage_km", "price", "owner_name", "owner_mobile"])
        for i in range(count):
            body = f"LSVB{r.randrange(1000):03d}A0PH{900001 + i:06d}"
            vin = body[:8] + vin_check_digit(body) + body[9:]
            b = r.choice(list(BRANDS))
            w.writerow([vin, BRANDS[b], r.choice(MODELS[b]), f"2021-0{r.randint(1, 9)}-1{r.randint(0, 9)}",
                        r.randrange(5, 150) * 1000, r.randrange(30, 250) * 1000, "欧阳娜", f"139{r.randrange(10**8):08d}"])
            vins.append(vin)
    return vins


SALE_FIELDS = ("sale_price", "buyer_name", "buyer_mobile", "sold_on")


def input_sales(path: Path, cars: list[dict[str, object]], count: int) -> dict[str, dict[str, str]]:
    """Sales of ``count`` cars on sale (the platform's seeded ones), written as the input file."""
    r = random.Random(11)
    sales = {}
    for car in [c for c in cars if c["status"] == "在售"][:count]:
        sales[str(car["vin"])] = {"vin": str(car["vin"]), "sale_price": f"{r.randrange(30, 250) * 1000}.00",
                                  "buyer_name": "司马光", "buyer_mobile": f"137{r.randrange(10**8):08d}",
                                  "sold_on": f"2026-11-{r.randint(10, 28)}"}
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["vin", *SALE_FIELDS])
        w.writeheader()
        w.writerows(sales.values())
    return sales


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cars", type=int, default=2000, help="cars on the platform's list")
    ap.add_argument("--register", type=int, default=50, help="cars in the input file to register")
    ap.add_argument("--sell", type=int, default=30, help="cars in the sales file to mark sold (the sale-like task)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    executable = find_browser(BrowserSettings(), headless=True).executable
    if not executable:
        raise SystemExit("this benchmark needs a browser executable (a system Chromium)")
    sb = start_sandbox(10, used_cars=args.cars)
    admin = httpx.Client(base_url=sb.usedcars, headers={"X-Admin-Token": sb.token}, timeout=30)
    work = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    try:
        shop = work / "shop"
        shutil.copytree(EXAMPLE, shop)
        cfg = shop / "dealerbot.toml"
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("http://127.0.0.1:8703", sb.usedcars), encoding="utf-8")
        vins = input_cars(work / "cars.csv", args.register)
        env = clean_env(DEALERBOT_USEDCARS_PASSWORD=DEMO_PASSWORD, DEALERBOT_BROWSER=executable)
        admin.post("/__admin/reset").raise_for_status()
        seeded = admin.get("/__admin/cars").json()["cars"]
        sales = input_sales(work / "sales.csv", seeded, args.sell)
        plain_s, bot_s, plain_sell_s, bot_sell_s = [], [], [], []

        def check(who: str) -> None:
            cars = admin.get("/__admin/cars").json()["cars"]
            registered = [c["vin"] for c in cars if c["vin"] in set(vins)]
            if len(cars) != args.cars + args.register or sorted(registered) != sorted(vins):
                raise SystemExit(f"{who}: the platform does not hold every input car exactly once")

        def check_sales(who: str) -> None:
            cars = admin.get("/__admin/cars").json()["cars"]
            sold = {c["vin"]: {f: c[f] for f in ("vin", *SALE_FIELDS)} for c in cars if c["sold_on"]}
            if sold != sales or sum(c["status"] == "已售" for c in cars) != sum(c["status"] == "已售" for c in seeded) + len(sales):
                raise SystemExit(f"{who}: the platform does not hold every sale as given, on its car only")

        for _ in range(args.rounds):
            admin.post("/__admin/reset").raise_for_status()
            plain = measure([sys.executable, str(PLAIN), sb.usedcars, DEMO_USERNAME, DEMO_PASSWORD, executable,
                             str(work / "cars.csv"), str(work / "plain-out.csv")], work, env)
            if plain.returncode:
                raise SystemExit("the plain Playwright script failed")
            check("plain Playwright")
            plain_s.append(plain.seconds)
            sell = measure([sys.executable, str(PLAIN), "--sell", sb.usedcars, DEMO_USERNAME, DEMO_PASSWORD, executable,
                            str(work / "sales.csv")], work, env)
            if sell.returncode:
                raise SystemExit("the plain Playwright sale script failed")
            check_sales("plain Playwright")
            plain_sell_s.append(sell.seconds)

            admin.post("/__admin/reset").raise_for_status()
            for folder in ("state", "var", "logs"):
                shutil.rmtree(shop / folder, ignore_errors=True)
            read = measure([sys.executable, "-m", "dealerbot.cli", "run", "usedcars-stock"], shop, env)
            write = measure([sys.executable, "-m", "dealerbot.cli", "run", "usedcars-register", "--input",
                             str(work / "cars.csv")], shop, env)
            if read.returncode or write.returncode:
                raise SystemExit("a dealerbot run failed")
            check("dealerbot")
            bot_s.append(read.seconds + write.seconds)
            sell = measure([sys.executable, "-m", "dealerbot.cli", "run", "usedcars-sell", "--input",
                            str(work / "sales.csv")], shop, env)
            if sell.returncode:
                raise SystemExit("the dealerbot sale run failed")
            check_sales("dealerbot")
            bot_sell_s.append(sell.seconds)
        with (work / "plain-out.csv").open(encoding="utf-8") as fh:
            listed = sum(1 for _ in fh) - 1
        if listed != args.cars:
            raise SystemExit(f"plain Playwright listed {listed} cars, not {args.cars}")
    finally:
        admin.close()
        sb.stop()
        shutil.rmtree(work, ignore_errors=True)

    plain_best, bot_best = min(plain_s), min(bot_s)
    ratio = bot_best / plain_best
    sell_ratio = min(bot_sell_s) / min(plain_sell_s)
    bot_py = sum(code_lines(p) for p in [*EXAMPLE.glob("bots/*.py"), *EXAMPLE.glob("portals/*.py")])
    bot_yaml = code_lines(EXAMPLE / "selectors" / "usedcars.yaml") + code_lines(EXAMPLE / "dealerbot.toml")
    plain_lines = code_lines(PLAIN)
    print(f"cars listed: {args.cars} ({-(-args.cars // 25)} pages); cars registered: {args.register}; "
          f"cores: {os.cpu_count()}; rounds: {args.rounds} (best counts)")
    print(f"plain Playwright script:   {plain_best:6.1f} s   ({', '.join(f'{s:.1f}' for s in plain_s)})")
    print(f"dealerbot (two runs):      {bot_best:6.1f} s   ({', '.join(f'{s:.1f}' for s in bot_s)})")
    print(f"ratio dealerbot/plain: {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    print(f"sale-like task ({len(sales)} cars found, opened, sold, read back; each side one process):")
    print(f"  plain Playwright --sell: {min(plain_sell_s):6.1f} s   ({', '.join(f'{s:.1f}' for s in plain_sell_s)})")
    print(f"  dealerbot usedcars-sell: {min(bot_sell_s):6.1f} s   ({', '.join(f'{s:.1f}' for s in bot_sell_s)})")
    print(f"  ratio dealerbot/plain: {sell_ratio:.2f}x (target <= {TARGET_RATIO}x)")
    print(f"lines of code: plain {plain_lines}; dealerbot {bot_py} Python + {bot_yaml} YAML/TOML "
          f"(target: Python fewer than plain)")
    ok = ratio <= TARGET_RATIO and sell_ratio <= TARGET_RATIO and bot_py < plain_lines
    print("result:", "PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Commands that start no browser do not load what only a browser, a web server, a workbook or
a database needs (#23: `dealerbot bots` took 0.45 s, four times `import playwright.async_api`;
the figures are bench/startup.py's, this is the guarantee behind them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("playwright.async_api", "fastapi", "starlette", "openpyxl", "sqlalchemy", "httpx", "lxml", "apscheduler")


def _loaded_after(args: list[str], cwd: Path) -> list[str]:
    """The HEAVY modules loaded once the command ``args`` has run in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from dealerbot.cli.main import app\n"
        f"app({args!r}, standalone_mode=False)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_listing_bots_loads_no_browser_server_workbook_or_database(tmp_path):
    assert _loaded_after(["bots"], tmp_path) == []  # every shipped bot's module imported, nothing heavy


def test_the_playwright_errors_bots_catch_are_playwrights_own():
    from playwright.async_api import Error, TimeoutError

    from dealerbot.api import PlaywrightError, PlaywrightTimeout

    assert PlaywrightError is Error and PlaywrightTimeout is TimeoutError

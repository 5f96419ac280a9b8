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


def test_listing_bots_again_imports_no_bot_and_sees_a_changed_or_new_bot_at_once(tmp_path, monkeypatch):
    """`dealerbot bots` lists from a cache of what discovery found (#23: start-up under 0.25 s);
    a bot added or edited in the project folder is listed at once, a broken one is named."""
    cache = tmp_path / "cache"
    project = tmp_path / "project"
    (project / "bots").mkdir(parents=True)
    (project / "bots" / "__init__.py").write_text("", encoding="utf-8")
    env = {"XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path), "COLUMNS": "200"}  # one line per bot

    def listing() -> tuple[list[str], list[str]]:
        code = (
            "import json, sys\n"
            "from dealerbot.cli.main import app\n"
            "app(['bots'], standalone_mode=False)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('bots.', 'portals.')))))\n"
        )
        import os

        done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})
        assert done.returncode == 0, done.stdout + done.stderr
        *table, imported = done.stdout.strip().splitlines()
        return table, json.loads(imported)

    table, imported = listing()  # first: discovery imports every bot, and keeps what it found
    assert "bots.oem_orders" in imported and any("oem-orders" in line for line in table)
    table, imported = listing()
    assert imported == [] and any("oem-orders" in line for line in table)  # from the cache: no bot imported
    bot = project / "bots" / "mine.py"
    bot.write_text(
        "from dealerbot.api import Bot\n\n\nclass Mine(Bot):\n    name = 'my-list'\n    portal = 'oem'\n"
        "    description = '我的清单'\n\n    async def run(self, ctx):\n        pass\n", encoding="utf-8")
    table, imported = listing()
    assert any("my-list" in line and "我的清单" in line for line in table) and "bots.mine" in imported
    bot.write_text(bot.read_text(encoding="utf-8").replace("我的清单", "我的新清单") + "\n", encoding="utf-8")
    table, _ = listing()
    assert any("我的新清单" in line for line in table)
    bot.write_text("raise RuntimeError('half-written')\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "dealerbot.cli", "bots"], cwd=project, capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, **env})
    assert done.returncode == 2 and "bots/mine.py" in done.stderr

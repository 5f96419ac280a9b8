"""Fixtures for the engine tests: a real sandbox over loopback, real Chromium, a real SQLite file."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from dealerbot.config import Settings, load_settings
from dealerbot.data.records import ENTITIES
from dealerbot.sandbox.config import SandboxConfig
from dealerbot.sandbox.server import SandboxServer
from dealerbot.store import Store

ROOT = Path(__file__).resolve().parents[2]
OEM_PASSWORD = "Oem@2026!"
DMS_PASSWORD = "Dms@2026!"
PASSWORDS = {"oem": OEM_PASSWORD, "dms": DMS_PASSWORD}
ORDERS = 150


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=ORDERS, seed=11)) as sb:
        yield sb


class Admin:
    """The sandbox's test-only admin endpoints (ground truth, behaviours, counters)."""

    def __init__(self, sb: SandboxServer) -> None:
        headers = {"X-Admin-Token": sb.admin_token}
        self.oem = httpx.Client(base_url=sb.oem_url, headers=headers, timeout=10)
        self.dms = httpx.Client(base_url=sb.dms_url, headers=headers, timeout=10)

    def get(self, app: str, path: str) -> object:
        r = getattr(self, app).get(path)
        r.raise_for_status()
        return r.json()

    def orders(self) -> list[dict]:
        data = self.get("oem", "/__admin/orders")
        return data["orders"] if isinstance(data, dict) else data

    def rows(self, app: str, what: str) -> list[dict]:
        data = self.get(app, f"/__admin/{what}")
        return data[what] if isinstance(data, dict) else data

    def counters(self, app: str = "oem") -> dict:
        return self.get(app, "/__admin/counters")

    def behave(self, app: str = "oem", **values: object) -> None:
        getattr(self, app).put("/__admin/behaviours", json=values).raise_for_status()

    def contracts(self) -> list[dict]:
        return self.rows("dms", "contracts")

    def customers(self) -> list[dict]:
        return self.rows("dms", "customers")

    def reset(self) -> None:
        self.oem.post("/__admin/reset").raise_for_status()
        self.dms.post("/__admin/reset").raise_for_status()


@pytest.fixture(scope="session")
def admin(sandbox: SandboxServer) -> Iterator[Admin]:
    a = Admin(sandbox)
    yield a
    a.oem.close()
    a.dms.close()


@pytest.fixture
def clean_sandbox(admin: Admin) -> Iterator[Admin]:
    """Data, accounts, counters and behaviours as generated, before and after the test."""
    admin.reset()
    yield admin
    admin.reset()


@pytest.fixture
def settings(tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of a fresh dealership folder: own logs, state, store; fast retries."""
    monkeypatch.chdir(tmp_path)
    for var in ("DEALERBOT_OEM_PASSWORD", "DEALERBOT_DMS_PASSWORD", "DEALERBOT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return _settings_in(tmp_path, sandbox)


def _settings_in(folder: Path, sandbox: SandboxServer) -> Settings:
    shutil.copytree(ROOT / "selectors", folder / "selectors")
    shutil.copy(ROOT / "dictionary.yaml", folder / "dictionary.yaml")
    return load_settings(
        None,
        oem__url=sandbox.oem_url,
        dms__url=sandbox.dms_url,
        run__backoff_seconds=0.05,
        run__timeout_seconds=15,
    )


def _sqlite_file(settings: Settings) -> Path:
    prefix = "sqlite:///"
    assert settings.store_url.startswith(prefix), settings.store_url
    return Path(settings.store_url[len(prefix):])


class ReadStore:
    """A store as the four reading bots leave it after reading the clean sandbox (made once a
    session): for tests whose guarantee is about what comes after the reading (planning, review,
    re-keying), a filled store is their precondition, not what they check. The reading itself is
    checked by test_scrape.py, test_failures.py and the others that run the reading bots."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def copy_into(self, settings: Settings) -> None:
        """Make the test's (open, SQLite) store hold exactly the template's contents, as if the
        four reading bots had just read the clean sandbox into it. The saved browser logins are
        not copied: the sandbox reset since, so the next bot logs in.

        Raises:
            sqlite3.Error: the test's store file cannot be written.
        """
        source, target = sqlite3.connect(self.db), sqlite3.connect(_sqlite_file(settings))
        try:
            source.backup(target)  # SQLite's online backup: the store's open connections see it as a write
        finally:
            source.close()
            target.close()


@pytest.fixture(scope="session")
async def read_store(sandbox: SandboxServer, admin: Admin,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ReadStore]:
    """The four reading bots (sync.READ_BOTS) run once against the clean sandbox; tests copy the result."""
    from dealerbot.running.runner import run_bot
    from dealerbot.running.sync import READ_BOTS

    folder = tmp_path_factory.mktemp("read-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for var in ("DEALERBOT_OEM_PASSWORD", "DEALERBOT_DMS_PASSWORD", "DEALERBOT_CONFIG"):
            mp.delenv(var, raising=False)
        settings = _settings_in(folder, sandbox)
        admin.reset()
        try:
            for bot in READ_BOTS:
                result = await run_bot(bot, settings, passwords=PASSWORDS)
                assert result.ok, (bot, result.error)
        finally:
            admin.reset()
    yield ReadStore(_sqlite_file(settings))


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store.open(settings.store_url)
    yield s
    s.close()


def entity(name: str):
    return ENTITIES[name]


def free_port() -> int:
    """A loopback port nothing listens on now (for a console or scheduler process of a test)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_login_page(web: httpx.Client, proc: object, timeout: float = 30) -> httpx.Response:
    """The login page of a console process just started, once it answers (the process must not
    have ended meanwhile)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "the console did not start"  # type: ignore[attr-defined]
        try:
            return web.get("/login")
        except httpx.TransportError:
            time.sleep(0.2)


def console_login(web: httpx.Client, password: str, proc: object) -> httpx.Response:
    """Log ``web`` in to the console process ``proc`` (waiting for it to answer first)."""
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', wait_for_login_page(web, proc).text).group(1)  # type: ignore[union-attr]
    return web.post("/login", data={"password": password, "csrf": csrf})


# The sandbox's used-car platform through its admin API: the ground truth of the tests of a portal
# of one's own (test_own_portal, test_init_record, test_browser_options).
class Platform:
    def __init__(self, sandbox) -> None:
        self.http = httpx.Client(base_url=sandbox.usedcars_url, headers={"X-Admin-Token": sandbox.admin_token}, timeout=10)

    def cars(self) -> list[dict]:
        return self.http.get("/__admin/cars").raise_for_status().json()["cars"]

    def counters(self) -> dict:
        return self.http.get("/__admin/counters").raise_for_status().json()

    def behave(self, **values) -> None:
        self.http.put("/__admin/behaviours", json=values).raise_for_status()

    def reset(self) -> None:
        self.http.post("/__admin/reset").raise_for_status()


@pytest.fixture
def platform(sandbox) -> Iterator[Platform]:
    p = Platform(sandbox)
    p.reset()
    yield p
    p.reset()
    p.http.close()

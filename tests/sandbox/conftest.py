"""Fixtures for the sandbox tests: one SandboxServer for the whole session."""

from __future__ import annotations

import re

import httpx
import pytest

from dealerbot.sandbox.config import SandboxConfig
from dealerbot.sandbox.server import SandboxServer

OEM_LOGIN = {"dealer_code": "D31001", "username": "dealer_admin", "password": "Oem@2026!"}
DMS_LOGIN = {"username": "sales01", "password": "Dms@2026!"}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no csrf_token in page"
    return m.group(1)


def login(base_url: str, creds: dict, follow: bool = False) -> httpx.Client:
    c = httpx.Client(base_url=base_url, follow_redirects=follow, timeout=10)
    r = c.get("/login")
    r = c.post("/login", data={**creds, "csrf_token": csrf_of(r.text)})
    assert r.status_code == 303, r.text[:500]
    return c


@pytest.fixture(scope="session")
def sandbox():
    cfg = SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=120, seed=7)
    with SandboxServer(cfg) as sb:
        yield sb


@pytest.fixture(scope="session")
def oem_admin(sandbox):
    with httpx.Client(base_url=sandbox.oem_url, headers={"X-Admin-Token": sandbox.admin_token}, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def dms_admin(sandbox):
    with httpx.Client(base_url=sandbox.dms_url, headers={"X-Admin-Token": sandbox.admin_token}, timeout=10) as c:
        yield c


@pytest.fixture
def reset(oem_admin, dms_admin):
    """Restore data, accounts, counters and behaviours of both apps after a mutating test."""
    yield
    assert oem_admin.post("/__admin/reset").status_code == 200
    assert dms_admin.post("/__admin/reset").status_code == 200


@pytest.fixture
def oem(sandbox):
    c = login(sandbox.oem_url, OEM_LOGIN)
    yield c
    c.close()


@pytest.fixture
def dms(sandbox):
    c = login(sandbox.dms_url, DMS_LOGIN)
    yield c
    c.close()


@pytest.fixture(scope="session")
def orders_truth(oem_admin):
    return oem_admin.get("/__admin/orders").json()

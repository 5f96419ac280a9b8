"""The optional behaviours (all off by default), switched on through /__admin/behaviours."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import httpx

from .conftest import OEM_LOGIN, csrf_of, login


def window_around_now() -> str:
    now = datetime.now()
    a, b = now - timedelta(minutes=2), now + timedelta(minutes=3)
    return f"{a:%H:%M}-{b:%H:%M}"  # may wrap midnight


def window_elsewhere() -> str:
    now = datetime.now()
    a, b = now + timedelta(hours=2), now + timedelta(hours=3)
    return f"{a:%H:%M}-{b:%H:%M}"


def test_defaults_are_off(oem_admin):
    b = oem_admin.get("/__admin/behaviours").json()
    assert b["maintenance_window"] is None and b["rate_limit_per_minute"] == 0
    assert b["slow_rate"] == 0 and b["error_rate"] == 0


def test_maintenance_window_503(sandbox, oem_admin, dms_admin, reset):
    c = login(sandbox.oem_url, OEM_LOGIN)
    assert oem_admin.put("/__admin/behaviours", json={"maintenance_window": window_elsewhere()}).status_code == 200
    assert c.get("/orders").status_code == 200
    assert oem_admin.put("/__admin/behaviours", json={"maintenance_window": window_around_now()}).status_code == 200
    r = c.get("/orders")
    assert r.status_code == 503 and "系统维护中" in r.text
    r = c.get("/api/orders")
    assert r.status_code == 503 and r.json()["error"] == "maintenance"
    assert httpx.get(sandbox.oem_url + "/login").status_code == 503
    assert oem_admin.get("/__admin/health").status_code == 200
    assert oem_admin.get("/__admin/counters").json()["maintenance_hits"] == 3
    # the DMS has its own behaviours
    assert httpx.get(sandbox.dms_url + "/login").status_code == 200
    assert dms_admin.put("/__admin/behaviours", json={"maintenance_window": "00:00-00:00"}).status_code == 200
    assert httpx.get(sandbox.dms_url + "/login").status_code == 503


def test_rate_limit_429_then_lock(sandbox, oem_admin, reset):
    c = login(sandbox.oem_url, OEM_LOGIN)
    assert oem_admin.put("/__admin/behaviours", json={"rate_limit_per_minute": 5}).status_code == 200
    codes = [c.get("/api/orders").status_code for _ in range(5)]
    assert codes == [200] * 5
    r = c.get("/orders")
    assert r.status_code == 429 and "访问过于频繁" in r.text
    r = c.get("/api/orders")
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    codes = [c.get("/api/orders").status_code for _ in range(4)]  # requests 8..11; the 11th locks
    assert codes == [429] * 4
    counters = oem_admin.get("/__admin/counters").json()
    assert counters["rate_limited"] == 6
    assert counters["rate_window_peak"] == 11  # the fullest window, refused requests included
    # the account is now locked; lift the rate limit and try to log in again
    assert oem_admin.put("/__admin/behaviours", json={"rate_limit_per_minute": 0}).status_code == 200
    assert c.get("/api/orders").status_code == 401
    fresh = httpx.Client(base_url=sandbox.oem_url)
    r = fresh.post("/login", data={**OEM_LOGIN, "csrf_token": csrf_of(fresh.get("/login").text)})
    assert r.status_code == 200 and "账号已锁定" in r.text
    oem_admin.post("/__admin/unlock", json={"dealer_code": "D31001", "username": "dealer_admin"})
    r = fresh.post("/login", data={**OEM_LOGIN, "csrf_token": csrf_of(fresh.get("/login").text)})
    assert r.status_code == 303


def test_error_rate_500(sandbox, oem_admin, reset):
    c = login(sandbox.oem_url, OEM_LOGIN)
    oem_admin.put("/__admin/behaviours", json={"error_rate": 1.0})
    r = c.get("/orders")
    assert r.status_code == 500 and "系统繁忙" in r.text
    r = c.get("/api/orders")
    assert r.status_code == 500 and r.json()["error"] == "server_error"
    assert oem_admin.get("/__admin/counters").json()["errors_injected"] == 2
    oem_admin.put("/__admin/behaviours", json={"error_rate": 0})
    assert c.get("/api/orders").status_code == 200


def test_slow_responses(sandbox, oem_admin, reset):
    c = login(sandbox.oem_url, OEM_LOGIN)
    t = time.perf_counter()
    c.get("/api/orders")
    fast = time.perf_counter() - t
    oem_admin.put("/__admin/behaviours", json={"slow_rate": 1.0, "slow_ms": 400})
    t = time.perf_counter()
    assert c.get("/api/orders").status_code == 200
    slow = time.perf_counter() - t
    assert slow >= 0.4 and slow > fast + 0.3


def test_admin_is_not_affected_or_counted(sandbox, oem_admin, reset):
    oem_admin.post("/__admin/reset")
    oem_admin.put("/__admin/behaviours", json={"error_rate": 1.0, "maintenance_window": "00:00-00:00"})
    for _ in range(3):
        assert oem_admin.get("/__admin/counters").status_code == 200
    assert oem_admin.get("/__admin/counters").json()["requests"] == 0


def test_bad_behaviour_value_names_key(oem_admin):
    r = oem_admin.put("/__admin/behaviours", json={"error_rate": 2})
    assert r.status_code == 422 and r.json()["details"][0]["key"] == "error_rate"
    r = oem_admin.put("/__admin/behaviours", json={"maintenance_window": "25:00-26:00"})
    assert r.status_code == 422 and "maintenance_window" in r.text
    r = oem_admin.put("/__admin/behaviours", json={"seed": 3})
    assert r.status_code == 422 and "seed" in r.text
    assert oem_admin.get("/__admin/behaviours").json()["error_rate"] == 0

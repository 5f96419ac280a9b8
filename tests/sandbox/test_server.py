"""SandboxServer lifecycle, config validation and run_forever."""

from __future__ import annotations

import socket

import httpx
import pytest
from pydantic import ValidationError

from dealerbot.sandbox.config import SandboxConfig, SandboxPortInUse, in_window
from dealerbot.sandbox.server import SandboxServer, run_forever


@pytest.fixture
def busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def test_port_in_use_raises(busy_port):
    with pytest.raises(SandboxPortInUse) as ei:
        with SandboxServer(SandboxConfig(oem_port=0, dms_port=busy_port, orders=10)):
            pass
    assert str(busy_port) in str(ei.value) and "127.0.0.1" in str(ei.value)
    assert ei.value.port == busy_port


def test_run_forever_port_in_use_returns_2(busy_port):
    lines = []
    assert run_forever(SandboxConfig(oem_port=busy_port, dms_port=0, usedcars_port=0, orders=10), echo=lines.append) == 2
    assert str(busy_port) in lines[0]


@pytest.mark.parametrize("key,value", [("orders", 0), ("slow_rate", 1.5), ("error_rate", -0.1), ("oem_port", 70000),
                                       ("maintenance_window", "2:00-4"), ("rate_limit_per_minute", -1),
                                       ("session_idle_seconds", 0), ("bogus", 1)])
def test_bad_config_names_key(key, value):
    with pytest.raises(ValidationError) as ei:
        SandboxConfig(**{key: value})
    assert key in str(ei.value)


def test_window_wraps_midnight():
    assert in_window("23:00-01:00", 23 * 60 + 30) and in_window("23:00-01:00", 30)
    assert not in_window("23:00-01:00", 120) and not in_window("02:00-04:00", 240)
    assert in_window("02:00-04:00", 120) and in_window("00:00-00:00", 999) and not in_window(None, 5)


def test_two_sandboxes_in_one_process_and_clean_stop():
    cfg = SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=30, seed=1)
    with SandboxServer(cfg) as a, SandboxServer(cfg.model_copy(update={"seed": 2})) as b:
        assert a.oem_url != b.oem_url and a.admin_token != b.admin_token
        assert a.config.oem_port and a.config.admin_token == a.admin_token
        ha = httpx.get(a.oem_url + "/__admin/orders", headers={"X-Admin-Token": a.admin_token}).json()
        hb = httpx.get(b.oem_url + "/__admin/orders", headers={"X-Admin-Token": b.admin_token}).json()
        assert len(ha) == len(hb) == 30 and ha != hb
        assert httpx.get(b.oem_url + "/__admin/orders", headers={"X-Admin-Token": a.admin_token}).status_code == 401
        url, db = a.oem_url, a.state.db_path
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/__admin/health", timeout=1)
    assert not db.exists()


def test_run_forever_serves_until_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    token_file = tmp_path / "state" / "sandbox-admin-token"
    code = ("import sys, pathlib; from dealerbot.sandbox.server import run_forever; "
            "from dealerbot.sandbox.config import SandboxConfig; "
            "sys.exit(run_forever(SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=20), "
            f"echo=lambda s: print(s, flush=True), token_file=pathlib.Path({str(token_file)!r})))")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(7)]
        text = "".join(lines)
        assert "D31001" in text and "dealer_admin" in text and "Oem@2026!" in text
        assert "sales01" in text and "Dms@2026!" in text and str(token_file) in text
        assert "zhihuan01" in text and "Used@2026!" in text  # the used-car platform, third
        url = lines[0].split()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/__admin/health").json()["app"] == "oem"
        # The admin token is in a file only its owner reads, never on the screen.
        token = token_file.read_text(encoding="utf-8").strip()
        assert (token_file.stat().st_mode & 0o777) == 0o600 and token not in text
        assert httpx.get(url + "/__admin/counters", headers={"X-Admin-Token": token}).status_code == 200
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=5) == 0
    finally:
        if p.poll() is None:
            p.kill()


def test_a_bind_beyond_loopback_needs_saying_so():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="allow_remote"):
        SandboxConfig(host="0.0.0.0")
    assert SandboxConfig(host="0.0.0.0", allow_remote=True).host == "0.0.0.0"
    assert SandboxConfig(host="localhost").host == "localhost"
    assert SandboxConfig(host="::1").host == "::1"

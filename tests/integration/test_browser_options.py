"""Browser options a real office needs (#23), through the `dealerbot` command with real Chromium
against the sandbox's used-car platform: a portal without a login (its public 收车指导价 page),
extra Chromium arguments, a list of hosts pages may load (an unreachable CDN script aborted at
once instead of stalling the page) and a proxy both the browser and the plain-HTTP reads go
through."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest
from openpyxl import load_workbook

from .test_cli import dealerbot

pytestmark = pytest.mark.browser
READ_12 = re.compile(r"prices-read\s*│\s*成功\s*│\s*12\s*│")  # the run's summary line: succeeded, 12 read

BOT = '''"""prices-read: the platform's public guide prices (no login)."""

from dealerbot.api import Entity, FieldDef, TableBot

PRICE = Entity(name="guide_price", title="收车指导价", key="code", fields=(
    FieldDef("code", "编号"), FieldDef("brand", "品牌", required=True), FieldDef("model", "车型", required=True),
    FieldDef("price", "指导价", "decimal")))


class PricesRead(TableBot):
    name = "prices-read"
    portal = "prices"
    entity = PRICE
    table = "prices"
    description = "公开收车指导价"
'''

SELECTORS = """portal: prices
title: 收车指导价
endpoints:
  landing: /public/prices/
  prices_page: /public/prices/
tables:
  prices:
    endpoint: prices_page
    table: prices.table
    columns: {code: 编号, brand: 品牌, model: 车型, price: 指导价}
selectors:
  prices.table:
    - css: "table.prices"
screens:
  - {names: [prices], endpoint: prices_page}
"""


class BlackHole:
    """A "CDN" that accepts connections and never answers (an office without internet); with
    ``hold`` seconds set, it hangs up after that long (the page then goes on without it)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.hold: float | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)  # held open, never answered
            if self.hold is not None:
                threading.Timer(self.hold, conn.close).start()

    def close(self) -> None:
        self.sock.close()
        for c in self.connections:
            c.close()


class ForwardProxy:
    """A minimal HTTP forward proxy on loopback: records each request line it forwards."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[str, str, str]] = []  # (method, absolute URL, user agent)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, url, version = lines[0].split(" ", 2)
            headers = [h for h in lines[1:] if not h.lower().startswith(("proxy-", "connection", "keep-alive"))]
            agent = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("user-agent:")), "")
            self.seen.append((method, url, agent))
            if method == "CONNECT" or not url.startswith("http://"):
                conn.sendall(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
                return
            length = next((int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            hostport, _, path = url[len("http://"):].partition("/")
            host, _, port = hostport.partition(":")
            with socket.create_connection((host, int(port or 80)), timeout=10) as up:
                up.sendall(f"{method} /{path} {version}\r\n".encode("latin-1")
                           + "".join(f"{h}\r\n" for h in headers).encode("latin-1") + b"Connection: close\r\n\r\n" + body)
                while chunk := up.recv(65536):
                    conn.sendall(chunk)

    def close(self) -> None:
        self.sock.close()



def _project(folder: Path, toml: str, run: str = "timeout_seconds = 20\n") -> Path:
    (folder / "bots").mkdir(parents=True)
    (folder / "selectors").mkdir()
    (folder / "bots" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "bots" / "prices_read.py").write_text(BOT, encoding="utf-8")
    (folder / "selectors" / "prices.yaml").write_text(SELECTORS, encoding="utf-8")
    (folder / "dealerbot.toml").write_text(toml + "\n[run]\nbackoff_seconds = 0.05\n" + run,
                                           encoding="utf-8")
    return folder


def _prices(folder: Path) -> dict[str, dict]:
    """The review workbook's 收车指导价 rows by 编号."""
    assert dealerbot(["export", "-o", "prices.xlsx"], folder).returncode == 0
    rows = list(load_workbook(folder / "prices.xlsx", read_only=True)["收车指导价"].iter_rows(values_only=True))
    return {r[rows[0].index("编号")]: dict(zip(rows[0], r)) for r in rows[1:] if any(r)}


def test_a_public_portal_behind_a_dead_cdn(tmp_path, sandbox, platform):
    """No login: no password anywhere, no login.* selectors. The portal's page loads a script
    from a "CDN" (a host name only the extra Chromium argument --host-resolver-rules resolves,
    to a port that never answers): not in allowed_hosts, it is aborted at once and the page is
    read; without allowed_hosts the page waits on it until the run's timeout."""
    hole = BlackHole()
    try:
        platform.behave(cdn_script=f"http://cdn.dealer.test:{hole.port}/jquery.min.js")
        portal = f"""
[portals.prices]
url = "{sandbox.usedcars_url}"
"""
        folder = _project(tmp_path / "public", f"""
[browser]
args = ["--host-resolver-rules=MAP *.dealer.test 127.0.0.1"]
allowed_hosts = ["static.faw-vw.test"]
{portal}""")
        ran = dealerbot(["run", "prices-read"], folder)  # no DEALERBOT_PRICES_PASSWORD, no keyring
        assert ran.returncode == 0 and READ_12.search(ran.stdout), ran.stdout + ran.stderr
        rows = _prices(folder)
        assert len(rows) == 12 and rows["GP100"]["车型"] == "朗逸" and float(rows["GP100"]["指导价"]) == 77_500
        assert not hole.connections  # the CDN was never even connected to
        log = "\n".join(p.read_text(encoding="utf-8") for p in (folder / "logs").rglob("*.log"))
        assert "requests to cdn.dealer.test are aborted" in log
        assert re.search(r"prices: aborted [12] requests? to hosts not in allowed_hosts", log)  # counted
        assert "使用了保存的登录" not in ran.stdout + log  # nothing was logged in to

        # `selectors check` opens the browser a run gets: no login, the CDN aborted, never reached
        checked = dealerbot(["selectors", "check", "prices"], folder)
        assert checked.returncode == 0 and "prices.table" in checked.stdout, checked.stdout + checked.stderr
        assert not hole.connections

        creds = dealerbot(["credentials", "set", "prices"], folder)
        assert creds.returncode == 2 and "不需要登录" in creds.stderr

        # The same without allowed_hosts: the page waits on the CDN (reached under its name only
        # through the extra argument) until it hangs up, a second later.
        hole.hold = 1.0
        waited = _project(tmp_path / "open", f"""
[browser]
args = ["--host-resolver-rules=MAP *.dealer.test 127.0.0.1"]
{portal}""")
        ran = dealerbot(["run", "prices-read"], waited)
        assert ran.returncode == 0 and READ_12.search(ran.stdout) and hole.connections, ran.stdout + ran.stderr
    finally:
        hole.close()


def test_the_browser_and_plain_reads_go_through_the_proxy(tmp_path, sandbox, platform):
    proxy = ForwardProxy()
    try:
        folder = _project(tmp_path / "proxied", f"""
[browser]
proxy = {{server = "http://127.0.0.1:{proxy.port}"}}

[portals.prices]
url = "{sandbox.usedcars_url}"
""")
        before = platform.counters()["requests"]
        ran = dealerbot(["run", "prices-read"], folder)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert READ_12.search(ran.stdout), ran.stdout  # every row read (读取 12)
        pages = [(m, agent) for m, url, agent in proxy.seen if url.startswith(f"{sandbox.usedcars_url}/public/prices/")]
        assert len(pages) >= 2, proxy.seen  # the browser's landing page and the table read over plain HTTP
        assert len(pages) == platform.counters()["requests"] - before  # every request the platform saw came through it
    finally:
        proxy.close()

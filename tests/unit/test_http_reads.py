"""The browser's cookies carried by plain-HTTP reads, and cookies a read sets handed back."""

from __future__ import annotations

import time

import httpx

from dealerbot.web.http_reads import CookieClient, _for_browser


def _sent(client: CookieClient, url: str) -> str:
    """The Cookie header the client's jar gives a request to ``url``."""
    request = httpx.Request("GET", url)
    client._client.cookies.set_cookie_header(request)
    return request.headers.get("cookie", "")


def _browser_cookie(name: str, value: str, domain: str, **extra: object) -> dict:
    return {"name": name, "value": value, "domain": domain, "path": "/", "expires": -1, "httpOnly": True,
            "secure": False, "sameSite": "Lax", **extra}


def test_host_only_cookies_go_to_their_host_only_including_localhost_and_ip_addresses():
    client = CookieClient(connections=1, timeout_seconds=5, user_agent="ua")
    client.load([
        _browser_cookie("oem_session", "a1", "127.0.0.1"),
        _browser_cookie("dms_session", "b2", "localhost"),
        _browser_cookie("other", "c3", "portal.example.com"),
    ])
    assert _sent(client, "http://127.0.0.1:8701/api/orders") == "oem_session=a1"
    assert _sent(client, "http://localhost:8702/contracts") == "dms_session=b2"
    assert _sent(client, "https://portal.example.com/x") == "other=c3"
    assert _sent(client, "https://sub.portal.example.com/x") == ""  # host-only: not for subdomains


def test_domain_paths_secure_and_expired_cookies_follow_the_browser_rules():
    client = CookieClient(connections=1, timeout_seconds=5, user_agent="ua")
    client.load([
        _browser_cookie("wide", "w", ".example.com"),
        _browser_cookie("deep", "d", "dealer.example.com", path="/api"),
        _browser_cookie("tls", "t", "dealer.example.com", secure=True),
        _browser_cookie("old", "o", "dealer.example.com", expires=time.time() - 60),
        _browser_cookie("later", "l", "dealer.example.com", expires=time.time() + 3600),
    ])
    assert set(_sent(client, "https://dealer.example.com/api/x").split("; ")) == {"wide=w", "deep=d", "tls=t", "later=l"}
    assert set(_sent(client, "http://dealer.example.com/page").split("; ")) == {"wide=w", "later=l"}


def test_load_replaces_the_cookies_it_had():
    client = CookieClient(connections=1, timeout_seconds=5, user_agent="ua")
    client.load([_browser_cookie("s", "old", "127.0.0.1")])
    client.load([_browser_cookie("s", "new", "127.0.0.1")])
    assert _sent(client, "http://127.0.0.1/") == "s=new"


def test_a_cookie_set_by_an_answer_or_its_redirect_is_handed_to_the_browser_as_playwright_takes_it():
    first = httpx.Response(303, headers=[("set-cookie", "oem_session=r1; HttpOnly; Path=/; SameSite=lax"),
                                         ("location", "/login")], request=httpx.Request("GET", "http://127.0.0.1:8701/orders/1"))
    final = httpx.Response(200, headers=[("set-cookie", "pref=zh; Domain=.example.com; Secure; Max-Age=60")],
                           request=httpx.Request("GET", "https://a.example.com/login"), history=[first])
    cookies, deleted = _for_browser(final)
    got = {c["name"]: c for c in cookies}
    assert deleted == []
    assert got["oem_session"] == {"name": "oem_session", "value": "r1", "domain": "127.0.0.1", "path": "/",
                                  "secure": False, "httpOnly": True, "expires": -1, "sameSite": "Lax"}
    assert got["pref"]["domain"] == ".example.com" and got["pref"]["secure"] and got["pref"]["expires"] > time.time()
    assert not got["pref"]["httpOnly"]


def test_a_cookie_an_answer_deletes_is_deleted_in_the_browser_too():
    answer = httpx.Response(200, headers=[("set-cookie", "flash=; Max-Age=0; Path=/orders"),
                                          ("set-cookie", "oem_session=s2; Path=/")],
                            request=httpx.Request("GET", "http://127.0.0.1:8701/orders/1"))
    cookies, deleted = _for_browser(answer)
    assert [c["name"] for c in cookies] == ["oem_session"]
    assert deleted == [("flash", "127.0.0.1", "/orders")]


def test_a_cookie_headers_cannot_carry_is_left_out_and_named():
    client = CookieClient(connections=1, timeout_seconds=5, user_agent="ua")
    skipped = client.load([_browser_cookie("who", "张三", "127.0.0.1"), _browser_cookie("s", "ok", "127.0.0.1")])
    assert skipped == ["who"]
    assert _sent(client, "http://127.0.0.1/") == "s=ok"


def test_a_portal_whose_certificate_the_system_does_not_trust_is_named_with_the_way_out(tmp_path):
    """A real TLS server on loopback with a self-signed certificate: the read fails with a
    message that says what to do (trust its authority, or read through the browser)."""
    import asyncio
    import datetime
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from dealerbot.config import PortalSettings, RunSettings
    from dealerbot.errors import PortalUnavailable
    from dealerbot.web.locators import load_selector_file
    from dealerbot.web.portal import PortalSession

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "p.yaml").write_text("portal: dms\ntitle: DMS\nselectors:\n  x:\n    - css: '#x'\n", encoding="utf-8")
    url = f"https://127.0.0.1:{server.server_address[1]}/contracts"
    session = PortalSession("dms", PortalSettings(url=url), None, None, load_selector_file(tmp_path / "p.yaml"), RunSettings())

    async def read() -> Exception:
        client = CookieClient(connections=1, timeout_seconds=5, user_agent="ua")
        try:
            await client.get(url)
        except httpx.HTTPError as exc:
            return session._network_error(exc, url)
        finally:
            await client.aclose()
        raise AssertionError("a self-signed certificate was trusted")

    try:
        failure = asyncio.run(read())
    finally:
        server.shutdown()
    assert isinstance(failure, PortalUnavailable)
    assert "证书不受本机信任" in str(failure) and 'reads = "browser"' in str(failure) and "[dms]" in str(failure)

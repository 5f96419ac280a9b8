"""Reads over plain HTTP with the logged-in browser's cookies.

A bot reads a portal's JSON endpoints and pages through its session (:meth:`PortalSession.fetch
<dealerbot.web.portal.PortalSession.fetch>`). Sent through the browser's request API, each read
costs three round trips through Playwright's driver and a pass through Chromium's network
service; on a small machine that made a 2,000-order read about a third slower than the same
requests sent directly (``bench/scrape_orders.py``). So by default (``[portals.<name>] reads =
"http"``) reads go out through httpx, carrying the browser context's cookies, while the browser
keeps doing what needs a browser: logging in, screens and forms.

The two cookie jars are kept in step:

* browser -> client: :meth:`CookieClient.load` copies the context's cookies; the session calls
  it before its first read, after every login, after the context is renewed and after the
  browser moved to another screen;
* client -> browser: a cookie that a read's answer sets or deletes (a portal renewing its
  session id) is handed back (:attr:`Answer.cookies`, :attr:`Answer.deleted`) for the session to
  give the context, so that the browser's next screen is still logged in. Only a good answer's:
  an ended session's answer (often a new, anonymous session) must not replace a login.

The session also copies the browser's cookies after clicks and choices on its pages (their
scripts may call the portal) and at least every second.

``reads = "browser"`` sends reads through the browser as before, for a portal that answers only
a real browser (a check of the TLS handshake, a client certificate, a proxy set up only in the
browser).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formatdate
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

if TYPE_CHECKING:
    import httpx

    # Playwright's own types of cookies: what ``context.cookies()`` gives and ``add_cookies`` takes
    # (the second is only in its implementation package, under this name).
    from playwright._impl._api_structures import SetCookieParam
    from playwright.async_api import Cookie

    from dealerbot.config import ProxySettings

_SAME_SITE: dict[str, Literal["Lax", "None", "Strict"]] = {"lax": "Lax", "none": "None", "strict": "Strict"}


@dataclass(frozen=True)
class Answer:
    """A portal's answer to a read, whichever way it was sent.

    ``url`` is where the read ended after redirects; ``cookies`` are the cookies the answer
    set, as Playwright's ``add_cookies`` takes them, and ``deleted`` the (name, domain, path) of
    those it deleted (both empty from the browser, which keeps its own).
    """

    status: int
    url: str
    text: str
    cookies: list[SetCookieParam] = field(default_factory=list)
    deleted: list[tuple[str, str, str]] = field(default_factory=list)


class CookieClient:
    """An httpx client sending a browser context's cookies (see the module docstring).

    One per login (the pages of a portal share it); close it with :meth:`aclose`.
    """

    def __init__(self, *, connections: int, timeout_seconds: float, user_agent: str, accept_language: str = "",
                 proxy: ProxySettings | None = None) -> None:
        headers = {"User-Agent": user_agent}
        if accept_language:
            headers["Accept-Language"] = accept_language
        import ssl

        import httpx  # here, not at import: commands that read nothing (`dealerbot bots`) never load it
        import truststore

        self._client = httpx.AsyncClient(
            # the system's certificates, as the browser uses: a DMS on the dealership's own
            # certificate authority is trusted by both or by neither
            verify=truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
            follow_redirects=True,
            timeout=timeout_seconds,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers=headers,
            # the browser's proxy ([browser] / the portal's proxy), the hosts it bypasses reached
            # directly as the browser reaches them
            proxy=proxy.url if proxy is not None else None,
            mounts=_bypass_mounts(proxy.bypass) if proxy is not None else None,
        )

    def load(self, cookies: list[Cookie]) -> list[str]:
        """Replace the client's cookies with a browser context's (Playwright's ``cookies()``).

        Each cookie goes through the standard cookie rules as if its site had just set it, so
        host-only and domain cookies, paths, ``Secure`` and expiry are honoured as the browser
        honours them. Returns the names of cookies HTTP headers cannot carry as they are (a
        value a page's script set with characters beyond ASCII): those are left out.
        """
        # Host-only cookies stay on their host, as in the browser (the standard library's default
        # also sends them to subdomains).
        import httpx

        policy = DefaultCookiePolicy(strict_ns_domain=DefaultCookiePolicy.DomainStrictNonDomain)
        store = CookieJar(policy)
        jar = httpx.Cookies(store)
        skipped: list[str] = []
        for c in cookies:
            host = str(c.get("domain", "")).lstrip(".")
            if not host or not c.get("name"):
                continue
            secure = bool(c.get("secure"))
            path = str(c.get("path") or "/")
            header = f"{c['name']}={c.get('value', '')}; Path={path}"
            if str(c.get("domain", "")).startswith("."):
                header += f"; Domain={c['domain']}"
            expires = float(c.get("expires", -1) or -1)
            if expires > 0:
                header += f"; Expires={formatdate(expires, usegmt=True)}"
            if secure:
                header += "; Secure"
            if not header.isascii() or not host.isascii():
                skipped.append(str(c["name"]))
                continue
            origin = f"{'https' if secure else 'http'}://{host}{path}"
            jar.extract_cookies(httpx.Response(200, headers=[("set-cookie", header)], request=httpx.Request("GET", origin)))
        self._client.cookies = store  # the jar itself (a Cookies would be copied without its policy)
        return skipped

    async def get(self, url: str) -> Answer:
        """GET ``url`` with the cookies, following redirects.

        Raises:
            httpx.TimeoutException: no answer within the timeout.
            httpx.HTTPError: the connection failed (refused, reset, unknown host).
        """
        resp = await self._client.get(url)
        # a redirect's Set-Cookie counts too: the session is often renewed on the way to the login page
        set_cookie = any("set-cookie" in r.headers for r in (*resp.history, resp))
        cookies, deleted = _for_browser(resp) if set_cookie else ([], [])
        return Answer(resp.status_code, str(resp.url), resp.text, cookies, deleted)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()


def _bypass_mounts(bypass: str) -> dict[str, None] | None:
    """httpx mounts sending the hosts of a proxy's ``bypass`` (``a.example.com, *.internal,
    .corp``) directly; entries httpx cannot express (``<local>``, address ranges) are left out."""
    mounts: dict[str, None] = {}
    for item in (h.strip().lower() for h in bypass.split(",")):
        if item.startswith("."):
            item = "*" + item
        if item and all(c.isalnum() or c in ".-*:[]" for c in item) and "*" not in item[1:]:
            mounts[f"all://{item}"] = None
    return mounts or None


def _for_browser(resp: httpx.Response) -> tuple[list[SetCookieParam], list[tuple[str, str, str]]]:
    """The cookies the answer (and its redirects) set, for Playwright's ``add_cookies``, and the
    (name, domain, path) of those it deleted (an expiry in the past), for ``clear_cookies``."""
    out: list[SetCookieParam] = []
    deleted: list[tuple[str, str, str]] = []
    for r in (*resp.history, resp):
        host = urlparse(str(r.url)).hostname or ""
        kept = list(r.cookies.jar)  # the standard cookie rules drop a cookie set to expire: a deletion
        names = {c.name for c in kept}
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name.strip() in names:
                continue
            attrs = {k.strip().lower(): v.strip() for k, _, v in (a.partition("=") for a in rest.split(";")[1:])}
            deleted.append((name.strip(), attrs.get("domain") or host, attrs.get("path") or "/"))
        for c in kept:
            # Cookie._rest holds the attributes beyond the standard ones, in the case the site wrote
            # them (so no has_nonstandard_attr): typeshed leaves the private attribute out.
            same_site = next((v for k, v in c._rest.items() if k.lower() == "samesite"), None)  # type: ignore[attr-defined]
            cookie: SetCookieParam = {
                "name": c.name, "value": c.value or "",
                "domain": c.domain if c.domain_specified else host,
                "path": c.path or "/",
                "secure": bool(c.secure),
                "httpOnly": any(k.lower() == "httponly" for k in c._rest),  # type: ignore[attr-defined]  # (as above)
                "expires": float(c.expires) if c.expires is not None else -1,
            }
            if isinstance(same_site, str) and same_site.lower() in _SAME_SITE:
                cookie["sameSite"] = _SAME_SITE[same_site.lower()]
            out.append(cookie)
    return out, deleted

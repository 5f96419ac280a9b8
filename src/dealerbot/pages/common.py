"""Screen behaviour shared by portals: logging in through a form, reading server-rendered tables."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from dealerbot.errors import LoginRejected, PageChanged, SessionExpired
from dealerbot.portal import PortalSession

LOGIN_SELECTORS = ("login.form", "login.password", "login.submit", "login.error")


class LoginForm:
    """A portal's login screen.

    ``fields`` maps selector names to the values to type (the password is typed separately,
    with tracing paused so that no trace ever holds it).
    """

    def __init__(self, session: PortalSession, fields: dict[str, str], password: Callable[[], str]) -> None:
        self.s = session
        self.fields = fields
        self.password = password

    async def is_shown(self) -> bool:
        """Whether the page is the login screen."""
        return self.s.is_login_url(self.s.page.url) or await self.s.loc.present("login.form")

    async def login(self) -> None:
        """Log in once. Never retries a refused password (portals lock accounts).

        Raises:
            LoginRejected: the portal showed a login error (wrong password, locked account).
            PageChanged: the login form is not where the selectors say.
            CredentialsMissing: no password is configured.
        """
        s = self.s
        secret = self.password()
        if not await self.is_shown():
            await s.goto("login", expect_login=True)
        for name, value in self.fields.items():
            await (await s.loc.get(name)).fill(value)
        await s.pctx.pause_tracing()
        password = None
        try:
            password = await s.loc.get("login.password")
            await password.fill(secret)
            submit = await s.loc.get("login.submit")
            async with s.page.expect_navigation(wait_until="domcontentloaded") as nav:
                await submit.click()
            resp = await nav.value
            # The portal took the password when it answered the POST with a redirect.
            accepted = resp is not None and resp.request.redirected_from is not None
            if not await self.is_shown():
                # Past the login page: logged in, whatever the page it led to answered (a 500 on
                # the landing page is for the next step to retry, not a failed login).
                s.shared.logged_in = True
                await s.pctx.save_state()  # while not tracing: the state holds the session cookie
            elif accepted:
                # Logged in, then sent back to the login page (the new session ended at once):
                # the password is right; log in again later, never count it as refused.
                raise SessionExpired(f"{s.name}: logged in, but the portal sent us back to its login page")
            elif resp is not None:
                # the login POST itself failed
                s.check(resp.status, resp.url, resp.url, expect_login=True,
                        body=await resp.text() if resp.status == 503 else None)
        finally:
            with contextlib.suppress(Exception):  # never leave the password on the page
                if password is not None and await self.is_shown():
                    await password.fill("", timeout=2000)
            await s.pctx.resume_tracing()
        if await self.is_shown():  # still on the login screen: the portal said no
            message = ""
            if await s.loc.present("login.error"):
                message = (await (await s.loc.get("login.error")).inner_text()).strip()
            s.pctx.forget_state()
            who = " / ".join(self.fields.values())
            raise LoginRejected(
                f"{s.selectors.title}拒绝登录（{who}）：{message or '仍停留在登录页'}。为免账号被锁定，不会自动重试；"
                f"请核对密码：dealerbot credentials set {s.name} "
                f"({s.name}: the portal refused the login for {who}; not retried: portals lock accounts after "
                f"repeated wrong passwords)"
            )
        s.log.info("{}: logged in as {}", s.name, " / ".join(self.fields.values()))


def read_table(
    session: PortalSession, root: Any, row_name: str, cell_name: str, fields: Sequence[str]
) -> list[dict[str, str]]:
    """Rows of a server-rendered table as dicts of cell texts.

    Raises:
        PageChanged: a row lacks one of ``fields`` (the table's layout changed).
    """
    rows = []
    for row in session.html.find_all(root, row_name):
        record = {}
        for f in fields:
            cells = session.html.find_all(row, cell_name, field=f)
            if not cells:
                raise PageChanged(f"{session.name}: table row has no '{f}' cell ({cell_name})")
            record[f] = cells[0].text_content().strip()
        rows.append(record)
    return rows


def paged_table_selectors(prefix: str) -> tuple[str, ...]:
    """The names a :class:`PagedTable` with ``prefix`` uses."""
    return tuple(f"{prefix}.{part}" for part in ("table", "row", "cell", "next"))


class PagedTable:
    """A server-rendered, paged list screen: ``<prefix>.table``, ``.row``, ``.cell``, ``.next``."""

    def __init__(self, session: PortalSession, prefix: str, endpoint: str, fields: tuple[str, ...]) -> None:
        self.s = session
        self.prefix = prefix
        self.endpoint = endpoint
        self.fields = fields

    async def open(self) -> None:
        """Show the list in the browser (checks the screen is there)."""
        await self.s.goto(self.endpoint)
        await (await self.s.loc.get(f"{self.prefix}.table")).wait_for(state="visible")

    async def fetch(self, page: int, query: str = "", patient: bool = True) -> tuple[list[dict[str, str]], bool]:
        """Rows of list page ``page`` and whether a next page exists. A list page is read
        ``patient``-ly (until the circuit breaker opens: a run walks through every page);
        a one-off search need not be.

        Raises:
            PageChanged: the table is missing or a row lacks a field.
            SystemFailure: see :meth:`PortalSession.fetch`.
        """
        root = await self.s.fetch_html(self.endpoint, {"page": page, "q": query}, patient=patient)
        if not self.s.html.find_all(root, f"{self.prefix}.table"):
            raise PageChanged(f"{self.s.name}: {self.endpoint} page {page} has no table")
        rows = read_table(self.s, root, f"{self.prefix}.row", f"{self.prefix}.cell", self.fields)
        return rows, bool(self.s.html.find_all(root, f"{self.prefix}.next"))

"""Screen behaviour shared by portals: logging in through a form, reading server-rendered tables.

Public API (through :mod:`dealerbot.api`): a portal's page objects build on these.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin, urlparse

from dealerbot.errors import LoginRejected, NeedsPerson, PageChanged, SessionExpired
from dealerbot.web.locators import NO_ROWS
from dealerbot.web.portal import PortalSession

if TYPE_CHECKING:
    from lxml.html import HtmlElement

    from dealerbot.config import PortalSettings

LOGIN_SELECTORS = ("login.form", "login.password", "login.submit", "login.error")


# Optional login steps a portal's selector file may name; each is handled when its screen shows
# (see docs/own-portal.md, "Logins that need a person"):
#   login.captcha (the image) + login.captcha_answer (its box) on the login form itself;
#   login.sms_code + login.sms_submit: a screen after the password asking for an SMS code;
#   login.new_password (+ login.new_password_confirm) + login.new_password_submit: a forced change.
LOGIN_STEP_SELECTORS = ("login.captcha", "login.captcha_answer", "login.sms_code", "login.sms_submit",
                        "login.new_password", "login.new_password_confirm", "login.new_password_submit")
NEED_WORDS = {"sms_code": "短信验证码", "captcha": "图形验证码", "new_password": "修改密码"}


class LoginForm:
    """A portal's login screen.

    ``fields`` maps selector names to the values to type (the password is typed separately,
    with tracing paused so that no trace ever holds it). The steps a person must answer (an
    SMS code, a captcha, a forced new password: ``LOGIN_STEP_SELECTORS``) are asked through the
    run's person (``session.shared.ask_person``); an unattended run stops with
    :class:`~dealerbot.errors.NeedsPerson` before typing anything.
    """

    def __init__(self, session: PortalSession, fields: dict[str, str], password: Callable[[], str]) -> None:
        self.s = session
        self.fields = fields
        self.password = password

    async def is_shown(self) -> bool:
        """Whether the page is the login screen."""
        return self.s.is_login_url(self.s.page.url) or await self.s.loc.present("login.form")

    async def _step_shown(self, name: str) -> bool:
        """Whether the optional step selector ``name`` is in the portal's file and on the page."""
        return name in self.s.selectors.selectors and await self.s.loc.present(name)

    def _unattended(self, needs: list[str]) -> NeedsPerson:
        s = self.s
        words = "、".join(NEED_WORDS.get(n, n) for n in needs)
        return NeedsPerson(
            f"{s.selectors.title}登录需要人工（{words}），本次运行无人值守，没有输入任何内容；请在控制台打开本次运行的页面，"
            f"点击“登录并继续”，按提示输入 ({s.name}: the login needs a person ({', '.join(needs)}); nothing was typed)",
            s.name, needs[0],
        )

    async def _ask(self, need: str, prompt: str, image: bytes | None = None) -> str:
        ask = self.s.shared.ask_person
        if ask is None:
            raise self._unattended([need])
        return await ask(need, prompt, image)

    async def login(self) -> None:
        """Log in once. Never retries a refused password (portals lock accounts), never types a
        code or an answer a person did not give.

        Raises:
            LoginRejected: the portal showed a login error (wrong password, locked account).
            NeedsPerson: the login needs a person (``login_steps``, a captcha on the form, a step
                screen after the password) and the run has none, or nobody answered.
            PageChanged: the login form is not where the selectors say.
            CredentialsMissing: no password is configured.
        """
        await self._login("", 1)

    CAPTCHA_TRIES = 3  # a captcha the portal refused is asked again of the person, this many in all

    async def _login(self, captcha_error: str, attempt: int) -> None:
        """:meth:`login`, the ``attempt``-th time: ``captcha_error`` the portal's words about the
        captcha answer typed the time before ("" at first)."""
        s = self.s
        secret = self.password()
        self._stepped = False
        if not await self.is_shown():
            await s.goto("login", expect_login=True)
        captcha = await self._step_shown("login.captcha")
        needs = list(dict.fromkeys([*s.settings.login_steps, *(["captcha"] if captcha else [])]))
        if needs and s.shared.ask_person is None:
            raise self._unattended(needs)  # before typing anything: no code is sent for nobody
        captcha_answer = ""
        if captcha:
            image = await (await s.loc.get("login.captcha")).screenshot()
            prompt = "请输入图片中的图形验证码"
            captcha_answer = await self._ask("captcha", f"{captcha_error}；{prompt}" if captcha_error else prompt, image)
        for name, value in self.fields.items():
            await (await s.loc.get(name)).fill(value)
        await s.pctx.pause_tracing()
        password = None
        shown: bool | None = None  # whether the login screen still shows after the submit
        try:
            password = await s.loc.get("login.password")
            await password.fill(secret)
            if captcha_answer:
                await (await s.loc.get("login.captcha_answer")).fill(captcha_answer)
            submit = await s.loc.get("login.submit")
            async with s.page.expect_navigation(wait_until="domcontentloaded") as nav:
                await submit.click()
            resp = await nav.value
            # The portal took the password when it answered the POST with a redirect.
            accepted = resp is not None and resp.request.redirected_from is not None
            # A step screen (an SMS code, a new password), after a redirect or in the answer to
            # the login POST itself: answered through the run's person (a no-op without one).
            resp = await self._steps() or resp
            shown = await self.is_shown()  # the page stays as it is until the checks below
            if not shown:
                # Past the login page: logged in, whatever the page it led to answered (a 500 on
                # the landing page is for the next step to retry, not a failed login).
                s.shared.logged_in = True
                await s.pctx.save_state()  # while not tracing: the state holds the session cookie
            elif accepted and not captcha_answer and not self._stepped:
                # Logged in, then sent back to the login page (the new session ended at once):
                # the password is right; log in again later, never count it as refused.
                raise SessionExpired(f"{s.name}: logged in, but the portal sent us back to its login page")
            elif resp is not None:
                # the login POST itself failed
                s.check(resp.status, resp.url, resp.url, expect_login=True,
                        body=await resp.text() if resp.status == 503 else None)
        finally:
            with contextlib.suppress(Exception):  # never leave the password on the page
                if password is not None and (shown is not False) and await self.is_shown():
                    await password.fill("", timeout=2000)
            await s.pctx.resume_tracing()
        if shown:  # still on the login screen: the portal said no
            message = ""
            if await s.loc.present("login.error"):
                message = (await (await s.loc.get("login.error")).inner_text()).strip()
            if (captcha_answer and "验证码" in message and attempt < self.CAPTCHA_TRIES
                    and await self._step_shown("login.captcha")):
                # the portal refused what the person read off the image, not the password: a new
                # image, asked again with the portal's words (a person is there: they typed it)
                s.log.warning("{}: the portal refused the captcha answer; asking the person again", s.name)
                await self._login(message, attempt + 1)
                return
            s.pctx.forget_state()
            who = " / ".join(self.fields.values())
            raise LoginRejected(
                f"{s.selectors.title}拒绝登录（{who}）：{message or '仍停留在登录页'}。为免账号被锁定，不会自动重试；"
                f"请核对密码：dealerbot credentials set {s.name} "
                f"({s.name}: the portal refused the login for {who}; not retried: portals lock accounts after "
                f"repeated wrong passwords)",
                # a captcha or a code a person typed may be what was wrong: the password is not
                # remembered as refused (the next run may type it again)
                remembered=bool(captcha_answer) or self._stepped,
            )
        s.log.info("{}: logged in as {}", s.name, " / ".join(self.fields.values()))

    _stepped = False  # a step screen after the password was answered this login

    async def _steps(self) -> Any:
        """Answer the step screens after the password (an SMS code, a forced new password), each
        through the run's person, until none shows; the last answer's response (None: no step).
        A step the portal refuses (its ``login.error`` on the same screen) is asked again of the
        person with the portal's words; nothing is ever typed that a person did not give.

        Raises:
            NeedsPerson: a step shows and nobody is there (or nobody answered).
        """
        s = self.s
        resp = None
        error = ""
        while True:
            if await self._step_shown("login.sms_code"):
                need, box, submit = "sms_code", "login.sms_code", "login.sms_submit"
                prompt = "请输入手机收到的短信验证码"
            elif await self._step_shown("login.new_password"):
                need, box, submit = "new_password", "login.new_password", "login.new_password_submit"
                prompt = "门户要求首次登录修改密码：请输入新密码（dealerbot 会保存它）"
            else:
                return resp
            if await s.loc.present("login.error"):
                error = (await (await s.loc.get("login.error")).inner_text()).strip()
            answer = await self._ask(need, f"{error}；{prompt}" if error else prompt)
            self._stepped = True
            await (await s.loc.get(box)).fill(answer)
            if need == "new_password" and "login.new_password_confirm" in s.selectors.selectors:
                await (await s.loc.get("login.new_password_confirm")).fill(answer)
            async with s.page.expect_navigation(wait_until="domcontentloaded") as nav:
                await (await s.loc.get(submit)).click()
            resp = await nav.value
            refused = await self._step_shown(box) and await s.loc.present("login.error")
            if need == "new_password" and not refused and not await self.is_shown():
                if s.shared.keep_password is not None:
                    s.shared.keep_password(answer)
                s.log.info("{}: the portal took the new password a person chose; it is kept", s.name)
            error = ""


class PortalApp:
    """A portal as a whole: opening it logged in, logging in again when the session expires.

    The default logs in through the ``login.*`` selectors: ``login.dealer_code`` and
    ``login.username`` when those settings are set, then one ``login.<key>`` per entry of the
    portal's ``login_fields``, then the password; it opens the endpoint ``landing`` first. A portal
    needing more subclasses it in ``portals/<name>.py`` with ``name`` set (it is then used for
    that portal wherever dealerbot opens it) and overrides :meth:`ready` (e.g. closing a notice
    that covers every page after login) or :meth:`login`.
    """

    name: ClassVar[str] = ""  # the portal this app serves; empty: the default for any portal
    landing: ClassVar[str] = "landing"  # the endpoint opened first
    SELECTORS_USED: ClassVar[tuple[str, ...]] = (*LOGIN_SELECTORS, "login", "landing")

    def __init__(self, session: PortalSession, password: Callable[[], str]) -> None:
        self.s = session
        self.login_form = LoginForm(session, self.login_fields(session.settings), password)

    @classmethod
    def login_fields(cls, settings: PortalSettings) -> dict[str, str]:
        """Selector name -> value typed on the login screen (the password is typed separately)."""
        fields = {}
        if settings.dealer_code:
            fields["login.dealer_code"] = settings.dealer_code
        if settings.username:
            fields["login.username"] = settings.username
        fields.update({f"login.{k}": v for k, v in getattr(settings, "login_fields", {}).items()})
        return fields

    @classmethod
    def selectors_used(cls, settings: PortalSettings) -> tuple[str, ...]:
        """Every selector and endpoint name this app needs with these portal settings (checked
        when the portal is opened, before the browser starts). A portal without a login
        (:attr:`PortalSettings.needs_login <dealerbot.config.PortalSettings.needs_login>` false)
        needs no ``login.*`` name and no ``login`` endpoint."""
        if not settings.needs_login:
            return tuple(n for n in (*cls.SELECTORS_USED, cls.landing) if n != "login" and not n.startswith("login."))
        return (*cls.SELECTORS_USED, cls.landing, *cls.login_fields(settings))

    async def open(self) -> None:
        """Open the landing page, logging in first if the saved login no longer works.

        Raises:
            LoginRejected: the password was refused.
            PageChanged: a screen is not as the selectors say.
        """
        if not self.s.settings.needs_login:  # a public form, an intranet page: nothing to log in to
            await self.s.goto(self.landing)
            await self.ready()
            return
        await self.s.goto(self.landing, expect_login=True)
        if self.s.is_expired(self.s.page.url) or await self.login_form.is_shown():
            await self.login()
        else:
            self.s.log.info("{}: reusing the saved login", self.s.name)
            await self.ready()

    async def login(self) -> None:
        """Log in (on the current page, or the login page), then :meth:`ready`.

        Raises:
            LoginRejected: the password was refused (never retried).
        """
        if self.s.settings.needs_login:
            await self.login_form.login()
        await self.ready()

    async def ready(self) -> None:
        """Called after every login and after reusing a saved one: make the page usable."""


def read_table(
    session: PortalSession, root: HtmlElement, row_name: str, cell_name: str, fields: Sequence[str]
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
        self.total: int | None = None  # the list's total (共 N 条), when its screen says it

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
        self.total = self._total(root)
        return rows, bool(self.s.html.find_all(root, f"{self.prefix}.next"))

    def _total(self, root: Any) -> int | None:
        """The total the list's pager states (``<prefix>.pager_info``: 第 1/3 页，共 60 条), when
        the selector file names one and the text says it; else None (the progress bar then
        counts without a total)."""
        name = f"{self.prefix}.pager_info"
        if name not in self.s.selectors.selectors:
            return None
        said = re.search(r"共\s*(\d+)\s*条", self.s.html.text(root, name, required=False))
        return int(said.group(1)) if said else None


class HeaderTable:
    """A list screen read by column header text, as declared under ``tables:`` in the portal's
    selector file (for tables whose cells carry no field attribute: django-tables2 and most
    DMSs)::

        tables:
          stock:
            endpoint: stock_page
            table: stock.table
            next: stock.next          # the "next page" link; its href is followed
            columns: {vin: 车架号, model: 车型, price: 指导价}
            empty: no_rows            # optional: a page without the table has no rows

    The ``next`` selector may be ``css``, ``text`` (下一页) or ``role: link`` with its ``name``:
    a link with no CSS hook is found by its words. ``empty`` is for portals that omit the table
    when a search finds nothing (Django admin does): ``no_rows``, or, stricter, the name of a
    selector for the "0 条结果" line (no rows only when it shows; a page with neither is a
    changed screen, so a broken search never passes for "not there").

    Pages are fetched through the logged-in session (retries, re-login, request budget) and
    read with lxml; the link to the next page is followed while there is one (only to the
    portal's own host).
    """

    def __init__(self, session: PortalSession, name: str) -> None:
        self.s = session
        self.spec = session.selectors.table(name)

    async def rows(self, params: dict[str, Any] | None = None, page_limit: int = 0) -> AsyncIterator[list[dict[str, str]]]:
        """Each page's rows (field -> cell text), first page first.

        Raises:
            PageChanged: the table or one of its column headers is missing (names it and the
                headers found), or the next link leads off the portal.
            SystemFailure: see :meth:`PortalSession.fetch`.
        """
        target: str = self.spec.endpoint
        query: dict[str, Any] | None = params
        seen: set[str] = {self.s.url(target, query)}
        pages = 0
        while True:
            root = await self.s.fetch_html(target, query, patient=True)
            pages += 1
            rows = self.read(root)
            yield rows
            if not rows:
                return  # an empty page ends the list, whatever its pager says
            if self.spec.next is None or (page_limit and pages >= page_limit):
                return
            href = self._next_href(root)
            if not href or href.startswith(("#", "javascript:")):
                return
            url = urljoin(self.s.url(target, query), href)
            if urlparse(url).netloc != urlparse(self.s.settings.url).netloc:
                raise PageChanged(f"{self.s.name}: table '{self.spec.name}': the next link leads off the portal ({url})")
            if url in seen:
                return  # a "next" that points back: the last page
            seen.add(url)
            target, query = url, None

    async def page(self, params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """The rows of the first page only (e.g. a search by key): a one-off read, retried as a
        record's read is, not patiently as a list walk.

        Raises:
            as :meth:`rows`.
        """
        return self.read(await self.s.fetch_html(self.spec.endpoint, params))

    async def find(self, field: str, value: str, params: dict[str, Any] | None = None) -> dict[str, str] | None:
        """The row whose ``field`` is ``value`` (compared trimmed, case-insensitively), or None:
        a ``find`` for :meth:`BotContext.write_once <dealerbot.running.bot.BotContext.write_once>`. With
        ``params`` (the portal's own search) the first page of its answer is read; without,
        every page of the list.

        Raises:
            as :meth:`rows`.
        """
        wanted = value.strip().upper()

        def match(rows: list[dict[str, str]]) -> dict[str, str] | None:
            return next((row for row in rows if row.get(field, "").strip().upper() == wanted), None)

        if params is not None:
            return match(await self.page(params))
        async for rows in self.rows():
            if (found := match(rows)) is not None:
                return found
        return None

    def finder(self, field: str, search: str | None = None) -> Callable[[str], Awaitable[dict[str, str] | None]]:
        """``find(value)`` for :meth:`BotContext.write_once <dealerbot.running.bot.BotContext.write_once>`:
        the row whose ``field`` is ``value``, searched with the list's query parameter ``search``
        (e.g. ``q``; None: every page of the list is read)."""

        async def find(value: str) -> dict[str, str] | None:
            return await self.find(field, value, {search: value} if search else None)

        return find

    def _next_href(self, root: HtmlElement) -> str | None:
        """The href of the "next page" link (its css, text or role choice; for a text inside
        the link, the link around it)."""
        assert self.spec.next is not None
        for found in self.s.html.find_any(root, self.spec.next):
            el: HtmlElement | None = found
            while el is not None and el.get("href") is None:
                el = el.getparent()
            if el is not None:
                return str(el.get("href"))
        return None

    def read(self, root: HtmlElement) -> list[dict[str, str]]:
        """The rows of the table in an lxml page.

        Raises:
            PageChanged: no table (unless the table's ``empty:`` says what that means: with
                ``no_rows``, no rows; with a selector name, no rows when that element is on
                the page), or a declared header is not among its headers.
        """
        tables = self.s.html.find_all(root, self.spec.table)
        if not tables:
            empty = self.spec.empty
            if empty == NO_ROWS or (empty is not None and self.s.html.find_any(root, empty)):
                return []
            said = f" (nor '{empty}', which says the list is empty)" if empty else ""
            raise PageChanged(f"{self.s.name}: table '{self.spec.name}' ({self.spec.table}) is not on the page{said}")
        table = tables[0]
        head = table.xpath("./thead/tr[1]/th|./thead/tr[1]/td") or table.xpath("(./tr|./tbody/tr)[1]/th")
        headers = [" ".join(h.text_content().split()) for h in head]
        index = {}
        for field_name, text in self.spec.columns:
            if text not in headers:
                raise PageChanged(
                    f"{self.s.name}: table '{self.spec.name}' has no column 「{text}」 (for {field_name}); "
                    f"its headers: {'、'.join(headers) or 'none'}"
                )
            index[field_name] = headers.index(text)
        out = []
        for tr in table.xpath("./tbody/tr|./tr"):
            cells = tr.xpath("./td|./th")
            if len(cells) < len(headers) or not tr.xpath("./td"):
                continue  # a header row, or an "empty list" row spanning the table
            out.append({f: " ".join(cells[i].text_content().split()) for f, i in index.items()})
        return out

"""Page objects of the desktop DMS client (DMS客户端, client/server), for the re-key engine.

:class:`DesktopDms` is the engine's view of the DMS (:class:`dealerbot.api.DmsWriter`'s
methods), through the client's own screens and keyboard: the 销售合同 and 客户 lists (search,
then Ctrl+C copies the row: the read-back never trusts the keystrokes), the 新建合同 /
编辑合同 / 新增客户 forms in their tab order, 保存 and its 确认 dialog, a 保存失败 box
(its text copied as the refusal's reason). Screen names come from ``selectors/dms_desktop.yaml``.

The driver blocks (one keyboard, one screen): every call runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from dealerbot.api import (
    DesktopDriver,
    PageChanged,
    PortalUnavailable,
    StepTimeout,
    Submitted,
    dms_values,
    with_retries_sync,
)

FORM_GONE_SECONDS = 0.15  # a form must stay gone this long after 保存 to count as saved
FILL_ATTEMPTS = 5  # a form interrupted while typing is closed and typed again from the start
SAVE_TIMEOUT_SECONDS = 20.0
SEARCH_ATTEMPTS = 4  # a slow save is waited for this long; after that: unknown, search first
FORMS = ("contract_new", "contract_edit", "customer_new")
SELECTORS_USED = ("login", "main", *FORMS, "confirm", "error", "login_error")


class _FormInterrupted(Exception):
    """A form interrupted while typing (a dialog took the keyboard): retried by :meth:`DesktopDms._write`,
    never raised out of it (after the last attempt it becomes :class:`PortalUnavailable`)."""


def parse_rows(text: str) -> list[dict[str, str]]:
    """Copied rows (one a line, ``field=value`` pairs, tab-separated) as dicts."""
    return [dict(part.split("=", 1) for part in line.split("\t") if "=" in part)
            for line in text.strip().splitlines() if line.strip()]


class DesktopDms:
    """The desktop client, as the re-key engine writes through it."""

    def __init__(self, driver: DesktopDriver, capture: Callable[[str], str | None]) -> None:
        self.d = driver
        self._capture = capture

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def login_async(self, username: str, password: Callable[[], str]) -> bool:
        """:meth:`login` off the event loop (the client is driven by blocking calls).

        Raises:
            LoginRejected, StepTimeout: as :meth:`login`.
        """
        return await self._run(self.login, username, password)  # type: ignore[no-any-return]

    # -- logging in ---------------------------------------------------------------------------
    def login(self, username: str, password: Callable[[], str]) -> bool:
        """Log in when the login window shows; whether a password was typed.

        Raises:
            LoginRejected: the client said 登录失败 (never retried).
            StepTimeout: neither the login nor the main window is there (the client is not running).
        """
        from dealerbot.api import LoginRejected

        shown = self.d.first_of(("main", "login"))
        if shown is None:
            raise StepTimeout("dms_desktop: DMS客户端没有运行（找不到登录或主窗口） (the desktop client is not running)")
        if shown == "main":
            return False
        self.d.fill("login", "login", {"username": username, "password": password()}, secret=frozenset({"password"}))
        self.d.keys("login", "submit")
        if self.d.first_of(("main", "login_error"), timeout=15) != "main":
            self.d.keys("login_error", "submit")
            raise LoginRejected(f"DMS客户端拒绝登录（{username}）。为免账号被锁定，不会自动重试；请核对密码 "
                                f"(the desktop client refused the login for {username}; not retried)")
        return True

    # -- reads: the lists, copied back ----------------------------------------------------------
    def _clean(self) -> None:
        """Close what a failed step left open (a message box, a confirm dialog, a form), so that
        every action starts on the main window."""
        shown = self.d.windows.list()
        if len(shown) <= 1:
            return  # the main window alone: nothing to close
        if self.d.find("error", shown) is not None:
            self.d.keys("error", "submit")
        if self.d.find("confirm", shown) is not None:
            self.d.keys("confirm", "close")  # 否: nothing is saved from a step that failed
        for name in FORMS:
            if self.d.find(name, shown) is not None:
                self.d.keys(name, "close")
                self.d.wait(name, gone=True)

    def _search(self, tab: str, field: str, query: str, anchor: bool = False) -> list[dict[str, str]]:
        """The rows of the list whose ``field`` is exactly ``query``, after searching for it.

        "None there" is only believed from a search that ran undisturbed and showed no row, or
        only other rows twice over: a list still showing an earlier search's rows (a search key
        that went elsewhere) must never read as "absent", or a record would be typed twice.

        Raises:
            PortalUnavailable: the search kept being interrupted.
        """
        wanted = query.strip().upper()
        others: list[dict[str, str]] | None = None
        for _ in range(SEARCH_ATTEMPTS):
            self._clean()
            before = self.d.interruptions()
            self.d.keys("main", tab)
            self.d.keys("main", "search")
            self.d.press("main", *self.d.spec.keys("clear_field"))
            self.d.type_text(query)
            if anchor:
                self.d.click_anchor("search_button")
            else:
                self.d.keys("main", "submit")
            rows = parse_rows(self.d.copy("main"))
            if self.d.interruptions() != before:
                continue  # something took the focus meanwhile: the search may not have run
            matching = [r for r in rows if r.get(field, "").strip().upper() == wanted]
            if matching or not rows or rows == others:
                return matching
            others = rows  # rows, none of them this one: the same search once more decides
        raise PortalUnavailable(f"dms_desktop: searching the {tab} list for {query} kept being interrupted")

    async def find_contracts(self, oem_order_no: str) -> list[dict[str, str]]:
        return await self._run(self._search, "contracts_tab", "oem_order_no", oem_order_no)  # type: ignore[no-any-return]

    async def read_contract(self, contract_no: str) -> dict[str, str] | None:
        rows = await self._run(self._search, "contracts_tab", "contract_no", contract_no)
        if not rows:
            return None
        return {**dms_values(rows[0]), "customer_no": rows[0]["customer_no"], "contract_no": contract_no}

    async def find_customer(self, id_number: str) -> str | None:
        rows = await self._run(self._search, "customers_tab", "id_number", id_number, True)
        return rows[0]["customer_no"] if len(rows) == 1 else None

    async def read_customer(self, customer_no: str) -> dict[str, str] | None:
        rows = await self._run(self._search, "customers_tab", "customer_no", customer_no)
        if not rows:
            return None
        return {f: rows[0].get(f, "") for f in ("name", "mobile", "id_number", "address")}

    # -- writes -----------------------------------------------------------------------------------
    def _outcome(self, form: str) -> Submitted:
        """After 保存: the form closed (saved), a 保存失败 box (refused, its text copied), or
        neither in time (unknown: never saved again, searched first)."""
        deadline = time.monotonic() + SAVE_TIMEOUT_SECONDS
        gone_since: float | None = None  # when the form was first seen gone
        while time.monotonic() < deadline:
            shown = self.d.windows.list()
            if self.d.find("error", shown) is not None:
                self._capture(f"{form}-refused")  # the form and the box as the clerk would see them
                message = self.d.copy("error").replace("保存失败", "", 1).strip().replace("\n", "；")
                self.d.keys("error", "submit")
                self.d.wait("error", gone=True)
                return Submitted("refused", message=message or "DMS客户端保存失败")
            if self.d.find(form, shown) is None:
                # Gone for a moment is not saved: while the client answers, the window list may
                # miss the form just before its 保存失败 box shows. Saved once it stays gone.
                gone_since = gone_since if gone_since is not None else time.monotonic()
                if time.monotonic() - gone_since >= FORM_GONE_SECONDS:
                    return Submitted("saved")
            else:
                gone_since = None
            self.d.close_nuisances(shown)
            time.sleep(0.05)
        return Submitted("unknown", message=f"DMS客户端 {SAVE_TIMEOUT_SECONDS:.0f} 秒内没有答复")

    def _write(self, opener: Callable[[], None], window: str, form: str, values: dict[str, str], dry_run: bool,
               confirm: bool) -> Submitted:
        def typed() -> None:  # the form opened and every field typed, or _FormInterrupted
            self._clean()
            opener()
            self.d.wait(window)
            if not self.d.fill(window, form, values):
                raise _FormInterrupted(form)

        def typing_again(_exc: BaseException, attempt: int, _seconds: float) -> None:
            self.d.step(f"{form}: interrupted while typing (attempt {attempt}): closed and typed again from the start")

        try:  # at once, no pause: the form is typed again from the start
            with_retries_sync(f"{form}: typing", typed, FILL_ATTEMPTS - 1, 0.0, jitter=False,
                              retry_if=lambda exc: isinstance(exc, _FormInterrupted), announce=typing_again)
        except _FormInterrupted:
            self.d.step(f"{form}: interrupted while typing (attempt {FILL_ATTEMPTS}): given up")
            raise PortalUnavailable(f"dms_desktop: the {form} form was interrupted {FILL_ATTEMPTS} times while typing") from None
        if dry_run:
            self.d.keys(window, "close")
            self.d.wait(window, gone=True)
            return Submitted("rehearsed")
        self.d.focus(window)
        self.d._press(self.d.spec.form(form).save)
        if confirm:
            self.d.wait("confirm")
            self.d.keys("confirm", "confirm_yes")
        result = self._outcome(window)
        if result.result == "refused":
            self._clean()
        return result

    def _create_customer(self, values: dict[str, str], dry_run: bool) -> Submitted:
        result = self._write(lambda: self.d.keys("main", "new_customer"), "customer_new", "customer", values,
                             dry_run, confirm=False)
        if result.result == "saved":
            rows = self._search("customers_tab", "id_number", values["id_number"], True)
            if len(rows) != 1:
                return Submitted("unknown", message="保存后在客户列表中查不到")
            # Its number; the engine reads the customer back and compares (Rekeyer, read_customer).
            return Submitted("saved", rows[0]["customer_no"])
        return result

    async def create_customer(self, values: dict[str, str], dry_run: bool) -> Submitted:
        return await self._run(self._create_customer, values, dry_run)

    def _create_contract(self, customer_no: str | None, values: dict[str, str], dry_run: bool) -> Submitted:
        typed = {"customer_no": customer_no or "", **values}
        result = self._write(lambda: self.d.keys("main", "new_contract"), "contract_new", "contract", typed, dry_run,
                             confirm=True)
        if result.result == "saved":
            rows = self._search("contracts_tab", "oem_order_no", values["oem_order_no"])
            if len(rows) != 1:  # saved, the number unknown: the engine searches, and lists it when it is not there
                return Submitted("saved", message="保存后在合同列表中查不到（或不止一个）")
            return Submitted("saved", rows[0]["contract_no"])
        return result

    async def create_contract(self, customer_no: str | None, values: dict[str, str], dry_run: bool) -> Submitted:
        return await self._run(self._create_contract, customer_no, values, dry_run)

    def _update_contract(self, contract_no: str, changes: dict[str, str], dry_run: bool) -> Submitted:
        rows = self._search("contracts_tab", "contract_no", contract_no)
        if len(rows) != 1:
            raise PageChanged(f"dms_desktop: contract {contract_no} is not in the client's list")
        result = self._write(lambda: self.d.keys("main", "open_contract"), "contract_edit", "contract", changes,
                             dry_run, confirm=True)
        return Submitted("saved", contract_no) if result.result == "saved" else result

    async def update_contract(self, contract_no: str, changes: dict[str, str], dry_run: bool) -> Submitted:
        return await self._run(self._update_contract, contract_no, changes, dry_run)

    async def evidence(self, label: str) -> str | None:
        return await self._run(self._capture, label)

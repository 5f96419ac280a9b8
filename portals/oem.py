"""Page objects of the OEM dealer portal (厂家经销商门户)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

from dealerbot.api import (
    LOGIN_SELECTORS,
    OEM_CUSTOMER,
    OEM_FOLLOWUP,
    OEM_LEAD,
    OEM_ORDER,
    OEM_REPORT,
    Form,
    PageChanged,
    PagedTable,
    PlaywrightTimeout,
    PortalApp,
    PortalSession,
    PortalUnavailable,
    paged_table_selectors,
    read_table,
)

ORDER_FIELDS = tuple(OEM_ORDER.field_names)  # what the detail page shows: the record type's fields
CUSTOMER_FIELDS = tuple(OEM_CUSTOMER.field_names)  # the customers list's columns, in order
PAGE_SIZE = 20
# Every selector and endpoint name these page objects use: checked when the portal is opened,
# so a renamed or deleted entry in selectors/oem.yaml fails the run at once, naming it.
SELECTORS_USED = (
    *LOGIN_SELECTORS, "login.dealer_code", "login.username", "notice.dialog", "notice.ack",
    "orders.table", "orders.row", "detail.root", "detail.field", *paged_table_selectors("customers"),
    "login", "landing", "orders_page", "orders_api", "order_detail", "customers_page",
)
NOTICE_TIMEOUT_MS = 5_000
REPORT_FIELDS = tuple(OEM_REPORT.field_names)  # the 上报记录 list's columns, in order
LEAD_FIELDS = tuple(OEM_LEAD.field_names)  # the 线索 list's columns (and the detail's fields), in order
FOLLOWUP_FIELDS = tuple(f for f in OEM_FOLLOWUP.field_names if f != "lead_no")  # a lead's 回访记录 columns
FOLLOWUP_FORM = {f: f"followup_form.{f}" for f in ("followed_on", "next_step", "note")}  # typed; the result is chosen
# The names the leads' readers need besides SELECTORS_USED, and what logging a follow-up needs on top.
LEADS_SELECTORS = (*paged_table_selectors("leads"), "lead.detail", "lead.field", "lead.followup_row",
                   "lead.followup_cell", "leads_page", "lead_detail")
FOLLOWUP_WRITE_SELECTORS = (*FOLLOWUP_FORM.values(), "followup_form.form", "followup_form.result", "followup_form.submit",
                            "followup_form.confirm_ok", "followup_form.confirm_cancel", "form.field_error", "shell.toast")
# The 交车上报 form's fields typed as text (the consent is chosen from its list).
REPORT_FORM = {f: f"report_form.{f}" for f in ("delivery_date", "invoice_no", "invoice_amount", "buyer_id_number", "buyer_mobile")}
# The names the 上报记录 reader needs besides SELECTORS_USED (required by the bots that use it, so
# a selector file of before these screens still serves the other bots).
REPORTS_SELECTORS = (*paged_table_selectors("reports"), "reports_page")
# Where the store keeps the portal's business date last read (a watermark of its own name).
BUSINESS_DATE_MARK = "oem:business-date"
# ... and what writing a report needs on top (a writing bot requires them: the canary checks them).
REPORT_WRITE_SELECTORS = (
    *REPORT_FORM.values(), "report_form.form", "report_form.consent", "report_form.submit", "report_form.confirm_ok",
    "report_form.confirm_cancel", "report_search.vin_error", "form.field_error", "shell.toast", "report_new",
)


async def dismiss_notice(s: PortalSession) -> None:
    """Close the 系统公告 modal if it covers the page (it does after each login)."""
    if await s.loc.visible("notice.dialog"):
        dialog = await s.loc.get("notice.dialog")
        await (await s.loc.get("notice.ack")).click()
        try:
            await dialog.wait_for(state="hidden", timeout=NOTICE_TIMEOUT_MS)  # hidden or removed
        except PlaywrightTimeout as exc:
            # The page posts the acknowledgement to the portal; when that fails the notice stays.
            raise PortalUnavailable("oem: the 系统公告 notice did not close after 我知道了") from exc
        s.log.debug("oem: notice dismissed")


class OemPortal(PortalApp):
    """The portal as a whole: logging in (dealer code, user name, password) and the 系统公告
    notice that covers every page after it."""

    name = "oem"

    async def ready(self) -> None:
        """Close the 系统公告 modal if it covers the page."""
        await dismiss_notice(self.s)


class OrdersPage:
    """订单列表: a table the page's own script fills from the portal's JSON endpoint."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session

    async def open(self) -> None:
        """Show the list in the browser and wait until its script has filled the table.

        Raises:
            PageChanged: the table is missing.
        """
        shown = urlparse(self.s.page.url).path == urlparse(self.s.url("orders_page")).path
        if not (shown and await self.s.loc.present("orders.table")):  # else the list shows already (the landing)
            await self.s.goto("orders_page")
        await (await self.s.loc.get("orders.table")).wait_for(state="visible")
        await dismiss_notice(self.s)
        try:
            await (await self.s.loc.get("orders.row", timeout_ms=10_000)).wait_for(state="visible")
        except PageChanged:
            self.s.log.info("oem: the orders list shows no rows")  # an empty list is legal

    async def fetch(self, page: int = 1, updated_since: datetime | None = None, direction: str = "asc") -> dict[str, Any]:
        """One page of the list from the JSON endpoint the page itself calls.

        Returns ``{"page", "pages", "total", "items": [...]}``.

        Raises:
            PageChanged: the answer lacks the fields the list shows.
            SystemFailure: see :mod:`dealerbot.web.portal`.
        """
        params = {
            "page": page, "page_size": PAGE_SIZE, "sort": "updated_at", "dir": direction,
            "updated_since": updated_since.isoformat(timespec="seconds") if updated_since else None,
        }
        data = await self.s.fetch_json("orders_api", params, patient=True)
        if not isinstance(data, dict) or "items" not in data or "total" not in data:
            raise PageChanged(f"oem: the orders endpoint answered an unexpected shape: {str(data)[:200]}")
        return data


class OrderDetailPage:
    """订单详情: every field of one order."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session

    async def read(self, order_no: str) -> dict[str, str]:
        """The order's fields as shown (text).

        Raises:
            PageChanged: a field is missing from the page.
            SystemFailure: see :mod:`dealerbot.web.portal`.
        """
        root = await self.s.fetch_html("order_detail", order_no=order_no)
        if not self.s.html.find_all(root, "detail.root"):
            raise PageChanged(f"oem: order {order_no}: the detail page has no order block")
        return self.s.html.texts(root, "detail.field", "field", ORDER_FIELDS)


class CustomersPage(PagedTable):
    """客户列表: a server-rendered table with the data-sharing consent of each customer."""

    def __init__(self, session: PortalSession) -> None:
        super().__init__(session, "customers", "customers_page", CUSTOMER_FIELDS)

    async def open(self) -> None:
        """Show the list in the browser, closing the notice if it covers it."""
        await super().open()
        await dismiss_notice(self.s)


class ReportsPage(PagedTable):
    """上报记录: the dealer's delivery reports (交车上报), newest first, 20 a page."""

    def __init__(self, session: PortalSession) -> None:
        super().__init__(session, "reports", "reports_page", REPORT_FIELDS)

    async def open(self) -> None:
        """Show the list in the browser, closing the notice if it covers it."""
        await super().open()
        await dismiss_notice(self.s)

    async def find(self, vin: str) -> list[dict[str, str]]:
        """The reports of ``vin`` (exactly that VIN; the list's search also matches parts): a
        report already made is found here before one is made again.

        Raises:
            PageChanged: the list is not as the selectors say.
            SystemFailure: see :meth:`PortalSession.fetch`.
        """
        wanted = vin.strip().upper()
        rows, _ = await self.fetch(1, wanted, patient=False)
        return [r for r in rows if r["vin"].strip().upper() == wanted]


@dataclass(frozen=True)
class WriteOutcome:
    """What a portal answered to one write (a 交车上报, a 回访登记, a 新建潜客).

    ``result``: ``accepted`` (``number`` the portal's number of what it recorded; ``late`` when
    the portal flagged it: a report 逾期, a follow-up 超时: accepted past the deadline),
    ``refused`` (``message``: the portal's words, ``errors`` them by field: for a report, ``vin``
    for the car itself, such as another dealer's or reported already), ``unknown`` (no clear
    answer: look for the record before anything else) or ``rehearsed`` (a dry run filled the form
    and cancelled the confirm step).
    """

    result: Literal["accepted", "refused", "unknown", "rehearsed"]
    number: str = ""
    late: bool = False
    message: str = ""
    errors: dict[str, str] = field(default_factory=dict)


class ReportForm:
    """交车上报: the VIN search, the form it enables and its 确认上报 step."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session
        self.form = Form(session)

    async def open(self, vin: str) -> str:
        """Search the car by ``vin``: "" when the form is ready for it, else the portal's words
        why it cannot be reported (not found, another dealer's, reported already).

        Raises:
            PageChanged: the screen is not as the selectors say.
            SystemFailure: see :meth:`PortalSession.goto`.
        """
        await self.s.goto("report_new", {"vin": vin.strip().upper()})
        await dismiss_notice(self.s)
        if await self.s.loc.present("report_search.vin_error"):
            return await self.form.read_text("report_search.vin_error")
        await self.s.loc.get("report_form.form")
        return ""

    async def business_date(self) -> date | None:
        """The portal's business date (当前业务日期 on the 交车上报 screen: deadlines count from
        it, never from the wall clock); None when the screen shows none.

        Raises:
            PageChanged: the screen is not as the selectors say.
            SystemFailure: see :meth:`PortalSession.goto`.
        """
        await self.s.goto("report_new", {})
        text = (await self.form.read_text("report_form.business_date")).strip()
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None

    async def report_delivery(self, values: dict[str, str], dry_run: bool = False) -> WriteOutcome:
        """Report one delivery: search its ``vin``, type ``delivery_date`` (YYYY-MM-DD),
        ``invoice_no``, ``invoice_amount``, choose ``consent`` (已授权 / 未授权), type
        ``buyer_id_number`` and ``buyer_mobile`` when given (a buyer who did not consent: leave
        them out), then 提交上报 and 确认上报, once. Never retried: an ``unknown`` outcome must be
        looked for in 上报记录 (:meth:`ReportsPage.find`) before anything else.

        Raises:
            PageChanged: a named element is missing (the portal changed), or the consent is not
                one of the form's choices (RecordRejected).
            SystemFailure: the screen could not be opened (before anything was submitted).
        """
        refused = await self.open(values["vin"])
        if refused:
            return WriteOutcome("refused", message=refused, errors={"vin": refused})
        await self.form.fill({REPORT_FORM[f]: str(v) for f, v in values.items() if f in REPORT_FORM and v})
        await self.form.choose("report_form.consent", value=values.get("consent") or "已授权")
        if dry_run:
            await self.form.click("report_form.submit")
            await self.form.click("report_form.confirm_cancel")
            return WriteOutcome("rehearsed")
        outcome = await self.form.submit("report_form.submit", confirm="report_form.confirm_ok",
                                         errors="form.field_error", toast="shell.toast")
        if outcome.result == "saved":
            number = (parse_qs(urlparse(outcome.url).query).get("q") or [""])[0]
            return WriteOutcome("accepted", number=number, late="逾期" in outcome.detail, message=outcome.detail)
        if outcome.result == "refused":
            words = "；".join(outcome.errors.values()) or outcome.detail
            return WriteOutcome("refused", message=words, errors=dict(outcome.errors))
        return WriteOutcome("unknown", message=outcome.detail)


class LeadsPage(PagedTable):
    """线索管理: the leads pushed to this dealer, newest assigned first, 20 a page; ``status`` is
    待回访, 已回访 (a follow-up is logged) or 已超时 (past its deadline with none)."""

    def __init__(self, session: PortalSession) -> None:
        super().__init__(session, "leads", "leads_page", LEAD_FIELDS)

    async def open(self) -> None:
        """Show the list in the browser, closing the notice if it covers it."""
        await super().open()
        await dismiss_notice(self.s)


class LeadPage:
    """线索详情: one lead and the follow-ups logged on it (回访记录)."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session

    async def read(self, lead_no: str) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The lead's fields and its follow-ups (each with ``lead_no``), as shown (text): what the
        portal holds before a follow-up is logged again.

        Raises:
            PageChanged: the page has no lead block (no such lead: 404) or a field is missing.
            SystemFailure: see :mod:`dealerbot.web.portal`.
        """
        root = await self.s.fetch_html("lead_detail", lead_no=lead_no)
        if not self.s.html.find_all(root, "lead.detail"):
            raise PageChanged(f"oem: lead {lead_no}: the page has no lead block")
        lead = self.s.html.texts(root, "lead.field", "field", LEAD_FIELDS)
        rows = read_table(self.s, root, "lead.followup_row", "lead.followup_cell", FOLLOWUP_FIELDS)
        return lead, [{**r, "lead_no": lead_no} for r in rows]


class FollowupForm:
    """回访登记 on a lead's page: date, a result from the portal's fixed list, next step, note, and
    its 确认提交 step."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session
        self.form = Form(session)

    async def log_followup(self, lead_no: str, values: dict[str, str], dry_run: bool = False) -> WriteOutcome:
        """Log one follow-up of ``lead_no``: ``followed_on`` (YYYY-MM-DD), ``result`` (one of the
        portal's 回访结果, chosen by its text), ``next_step``, ``note``; 提交回访 then 确认提交, once.
        Accepted past the lead's deadline: ``late`` (the portal's 超时). Never retried: an
        ``unknown`` outcome must be looked for on the lead's page (:meth:`LeadPage.read`) first.

        Raises:
            PageChanged: no such lead (404) or a named element is missing.
            RecordRejected: the result is not one of the portal's choices.
            SystemFailure: the page could not be opened (before anything was submitted).
        """
        await self.s.goto("lead_detail", lead_no=lead_no)
        await dismiss_notice(self.s)
        await self.s.loc.get("followup_form.form")
        await self.form.fill({FOLLOWUP_FORM[f]: str(v) for f, v in values.items() if f in FOLLOWUP_FORM and v})
        await self.form.choose("followup_form.result", text=values.get("result", ""))
        if dry_run:
            await self.form.click("followup_form.submit")
            await self.form.click("followup_form.confirm_cancel")
            return WriteOutcome("rehearsed")
        # the answer to a saved follow-up is the lead's page again: only the POST's own URL is the form coming back
        outcome = await self.form.submit("followup_form.submit", confirm="followup_form.confirm_ok", errors="form.field_error",
                                         toast="shell.toast", stayed=lambda url: urlparse(url).path.endswith("/followups"))
        if outcome.result == "saved":
            number = re.search(r"回访编号\s*(HF\d+)", outcome.detail)
            return WriteOutcome("accepted", number=number.group(1) if number else "", late="超时" in outcome.detail,
                                message=outcome.detail)
        if outcome.result == "refused":
            return WriteOutcome("refused", message="；".join(outcome.errors.values()) or outcome.detail,
                                errors=dict(outcome.errors))
        return WriteOutcome("unknown", message=outcome.detail)

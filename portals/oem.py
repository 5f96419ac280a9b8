"""Page objects of the OEM dealer portal (厂家经销商门户)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from dealerbot.api import (
    LOGIN_SELECTORS,
    OEM_CUSTOMER,
    OEM_ORDER,
    PageChanged,
    PagedTable,
    PlaywrightTimeout,
    PortalApp,
    PortalSession,
    PortalUnavailable,
    paged_table_selectors,
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

"""Page objects of the dealership's DMS (经销商管理系统)."""

from __future__ import annotations

from collections.abc import Callable

from dealerbot.pages.common import LOGIN_SELECTORS, LoginForm, PagedTable, paged_table_selectors
from dealerbot.portal import PortalSession

# Every selector and endpoint name these page objects use (checked when the DMS is opened).
SELECTORS_USED = (
    *LOGIN_SELECTORS, "login.username", *paged_table_selectors("customers"), *paged_table_selectors("contracts"),
    "login", "landing", "customers_page", "contracts_page",
)
CUSTOMER_FIELDS = ("customer_no", "name", "mobile", "id_number", "address", "created_at")
CONTRACT_FIELDS = (
    "contract_no", "customer_no", "customer_name", "model_code", "color", "vin", "price", "deposit",
    "delivery_date", "oem_order_no", "status", "updated_at",
)


class DmsApp:
    """The DMS as a whole: logging in."""

    def __init__(self, session: PortalSession, password: Callable[[], str]) -> None:
        self.s = session
        self.login_form = LoginForm(session, {"login.username": session.settings.username}, password)

    async def open(self) -> None:
        """Open the landing page, logging in first if the saved login no longer works.

        Raises:
            LoginRejected: the password was refused.
        """
        await self.s.goto("landing", expect_login=True)
        if await self.login_form.is_shown():
            await self.login()
        else:
            self.s.log.info("dms: reusing the saved login")

    async def login(self) -> None:
        """Log in on the login page."""
        await self.login_form.login()


def customers_screen(session: PortalSession) -> PagedTable:
    """客户管理."""
    return PagedTable(session, "customers", "customers_page", CUSTOMER_FIELDS)


def contracts_screen(session: PortalSession) -> PagedTable:
    """销售合同."""
    return PagedTable(session, "contracts", "contracts_page", CONTRACT_FIELDS)

"""oem-customers: the OEM portal's customers with their data-sharing consent."""

from __future__ import annotations

from dealerbot.api import OEM_CUSTOMER, ListBot
from portals.oem import CustomersPage, OemPortal


class OemCustomersBot(ListBot):
    """Reads every page of the OEM portal's customer list (consent included)."""

    name = "oem-customers"
    portal = "oem"
    entity = OEM_CUSTOMER
    title = "读取厂家客户"
    description = "厂家门户客户及数据共享授权"
    app = OemPortal
    screen = CustomersPage

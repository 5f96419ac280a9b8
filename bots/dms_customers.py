"""dms-customers: the DMS's customers, for matching OEM customers later."""

from __future__ import annotations

from dealerbot.api import DMS_CUSTOMER, ListBot
from portals.dms import DmsApp, customers_screen


class DmsCustomersBot(ListBot):
    """Reads every page of the DMS customer list."""

    name = "dms-customers"
    portal = "dms"
    entity = DMS_CUSTOMER
    title = "读取DMS客户"
    description = "DMS客户档案"
    app = DmsApp
    screen = customers_screen

"""dms-customers: the DMS's customers, for matching OEM customers later."""

from __future__ import annotations

from dealerbot.bot import ListBot
from dealerbot.pages.dms import DmsApp, customers_screen
from dealerbot.records import DMS_CUSTOMER


class DmsCustomersBot(ListBot):
    """Reads every page of the DMS customer list."""

    name = "dms-customers"
    portal = "dms"
    entity = DMS_CUSTOMER
    description = "DMS客户档案"
    app = DmsApp
    screen = customers_screen

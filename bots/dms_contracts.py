"""dms-contracts: the DMS's sales contracts (销售合同), for matching OEM orders later."""

from __future__ import annotations

from dealerbot.api import DMS_CONTRACT, ListBot
from portals.dms import DmsApp, contracts_screen


class DmsContractsBot(ListBot):
    """Reads every page of the DMS sales-contract list."""

    name = "dms-contracts"
    portal = "dms"
    entity = DMS_CONTRACT
    title = "读取DMS合同"
    description = "DMS销售合同"
    app = DmsApp
    screen = contracts_screen

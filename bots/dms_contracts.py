"""dms-contracts: the DMS's sales contracts (销售合同), for matching OEM orders later."""

from __future__ import annotations

from dealerbot.bot import ListBot
from dealerbot.pages.dms import DmsApp, contracts_screen
from dealerbot.records import DMS_CONTRACT


class DmsContractsBot(ListBot):
    """Reads every page of the DMS sales-contract list."""

    name = "dms-contracts"
    portal = "dms"
    entity = DMS_CONTRACT
    description = "DMS销售合同"
    app = DmsApp
    screen = contracts_screen

"""usedcars-stock: every car on the trade-in platform, into the store and the review workbook
(the list is read by the column headers its selector file declares under ``tables: cars``)."""

from dealerbot.api import TableBot
from portals.usedcars import USED_CAR


class UsedCarsStock(TableBot):
    name = "usedcars-stock"
    portal = "usedcars"
    entity = USED_CAR
    table = "cars"
    description = "二手车置换平台：全部置换车辆"

"""The shipped flow ``orders``: OEM orders re-keyed as DMS contracts (with their customers).

Its mapping is :func:`dealerbot.rekey.reconcile.classify` (contract values through the data
dictionary, customers matched by mobile, ID number, name), planned over the whole store by
:func:`dealerbot.rekey.reconcile.reconcile`; its writer is ``dms-rekey`` (``dms-desktop-rekey``
with ``[rekey] client = "desktop"``, :func:`dealerbot.rekey.writer.run_rekey`). Its policy is
``[rekey]``'s (``approval_required``, ``enabled``, ``auto_update_fields``); ``[flows.orders]
approval_required`` wins over ``[rekey] approval_required`` when given.
"""

from __future__ import annotations

from typing import Any

from dealerbot.data.records import DMS_CONTRACT, OEM_ORDER
from dealerbot.flows import Flow
from dealerbot.rekey.ledger import ACTION_KINDS, KIND_TEXT, ORDERS_FLOW, Policy

READ_BOTS = ("oem-orders", "oem-customers", "dms-customers", "dms-contracts")
WRITE_BOTS = {"web": "dms-rekey", "desktop": "dms-desktop-rekey"}  # [rekey] client


def _policy(settings: Any) -> Policy:
    return settings.rekey.policy()


ORDERS = Flow(
    name=ORDERS_FLOW,
    title="厂家订单录入DMS",
    read_bots=READ_BOTS,
    source=OEM_ORDER,
    target=DMS_CONTRACT,
    writer_bot=WRITE_BOTS["web"],
    kinds={k: KIND_TEXT[k] for k in ACTION_KINDS},
    approval_required=frozenset({"create_contract", "cancel_contract"}),
    enabled_kinds=frozenset({"create_contract", "update_contract"}),
    description="厂家订单 → DMS合同（新建合同及客户、更新状态、取消）",
    settings_policy=_policy,
)

"""A portal account's request budget, shared by every worker of a dealership group.

``[run] requests_per_minute`` is a portal's limit per account. One process keeps under it with
an even pace (:mod:`aiolimiter`, in :mod:`dealerbot.web.pacing`); several workers on several
machines using one account would each keep that pace and together exceed it. In a group, each
request instead reserves the account's next free slot in the group's PostgreSQL (one row per
account, one ``INSERT ... ON CONFLICT DO UPDATE`` per request, on the database's clock): every
process of the group together sends at most N requests a minute per account, evenly.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

from dealerbot.web.pacing import PACE_MARGIN

if TYPE_CHECKING:
    from dealerbot.store import Store


class SharedPace:
    """A :class:`~dealerbot.web.pacing.Pace` (the portal's ``AsyncLimiter`` in one process):
    :meth:`acquire` waits for this account's next slot in the group's store."""

    def __init__(self, store: Store, account: str, per_minute: int) -> None:
        self.store = store
        self.key = hashlib.sha256(account.encode()).hexdigest()[:32]  # no URL or user name in the table
        self.interval = 60.0 / per_minute * PACE_MARGIN

    async def acquire(self) -> None:
        """Reserve the next slot and wait for it (the database round trip runs off the event loop)."""
        wait = await asyncio.to_thread(self.store.take_request_slot, self.key, self.interval)
        if wait > 0:
            await asyncio.sleep(wait)

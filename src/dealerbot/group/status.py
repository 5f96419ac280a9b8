"""A dealership group at a glance: each store's last sync and failures (the run store), its
queue (the task engine), and the workers alive. For ``dealerbot group status`` and the console."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dealerbot.config import Settings


@dataclass
class StoreStatus:
    """One store's line."""

    code: str
    name: str
    queue: str
    last_run: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_success: datetime | None = None
    failed_24h: int = 0
    awaiting_review: int = 0
    queued: int = 0  # its jobs waiting, in any queue
    running: int = 0


@dataclass
class GroupStatus:
    """The whole group."""

    stores: list[StoreStatus] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    shared_queued: int = 0
    shared_running: int = 0


async def group_status(settings: Settings) -> GroupStatus:
    """Collect the group's status.

    Raises:
        ConfigError: not a group, or its PostgreSQL cannot be reached.
    """
    from dealerbot.group.engine import GroupEngine
    from dealerbot.store import Store

    async with GroupEngine(settings) as engine:
        depths = await engine.queue_depths()
        per_store = await engine.store_depths()
        workers = await engine.workers()
    with Store.open(settings.store_url) as store:
        overview = {row["store"]: row for row in store.stores_overview()}
    out = GroupStatus(workers=workers)
    for code, entry in settings.stores.items():
        queue = settings.store_queue(code)
        row = overview.get(code, {})
        depth = per_store.get(code, {})  # its jobs in its own queue and in the shared one
        out.stores.append(StoreStatus(
            code=code, name=entry.name, queue=queue, last_run=row.get("last_run"), last_status=row.get("last_status"),
            last_error=row.get("last_error"), last_success=row.get("last_success"),
            failed_24h=int(row.get("failed_24h") or 0), awaiting_review=int(row.get("awaiting_review") or 0),
            queued=depth.get("todo", 0), running=depth.get("doing", 0),
        ))
    shared = depths.get(settings.group.shared_queue, {})
    out.shared_queued, out.shared_running = shared.get("todo", 0), shared.get("doing", 0)
    return out

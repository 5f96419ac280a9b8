"""A dealership group's shared parts: the portal accounts' request budget and the stores' overview."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, text

from dealerbot.rekey.ledger import AWAITING_REVIEW
from dealerbot.store.base import StoreBase


class GroupPart(StoreBase):
    """A dealership group's shared parts: the portal accounts' request budget and the stores' overview."""

    def take_request_slot(self, account: str, interval: float) -> float:
        """Reserve the next request slot of a portal account shared by every process of the
        group (an even pace, one request per ``interval`` seconds, on the database's clock).
        Returns how many seconds to wait before sending. PostgreSQL only."""
        with self.engine.begin() as conn:
            return float(conn.execute(text(
                "INSERT INTO request_budget (account, next_at) "
                "VALUES (:a, extract(epoch from clock_timestamp()) + :i) "
                "ON CONFLICT (account) DO UPDATE SET next_at = "
                "greatest(request_budget.next_at, extract(epoch from clock_timestamp())) + :i "
                "RETURNING next_at - :i - extract(epoch from clock_timestamp())"
            ), {"a": account, "i": interval}).scalar_one())

    def stores_overview(self) -> list[dict[str, Any]]:
        """Every store that has runs: its last run, last successful sync, failures in the last
        24 hours and actions waiting for a person (a group's status board; all stores, not
        only this one)."""
        r, a = self.tables["runs"], self.tables["actions"]
        since = datetime.now() - timedelta(days=1)
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(select(
                r.c.store, func.max(r.c.started_at).label("last_run"),
                func.max(case((r.c.status == "succeeded", r.c.ended_at))).label("last_success"),
                func.sum(case(((r.c.status == "failed") & (r.c.started_at >= since), 1), else_=0)).label("failed_24h"),
                func.sum(case((r.c.status == "running", 1), else_=0)).label("running"),
            ).group_by(r.c.store)).mappings():
                out[row["store"]] = {**row, "failed_24h": int(row["failed_24h"] or 0), "running": int(row["running"] or 0),
                                     "awaiting_review": 0, "last_status": None, "last_error": None}
            for store, n in conn.execute(select(a.c.store, func.count()).where(a.c.state.in_(AWAITING_REVIEW))
                                         .group_by(a.c.store)):
                out.setdefault(store, {"store": store, "last_run": None, "last_success": None, "failed_24h": 0,
                                       "running": 0, "last_status": None, "last_error": None})["awaiting_review"] = int(n)
            newest = select(r.c.store, func.max(r.c.started_at).label("at")).group_by(r.c.store).subquery()
            for row in conn.execute(select(r.c.store, r.c.status, r.c.error).join(
                    newest, (newest.c.store == r.c.store) & (newest.c.at == r.c.started_at))).mappings():
                out[row["store"]].update(last_status=row["status"], last_error=row["error"])
        return [out[k] for k in sorted(out)]

"""Refused passwords: a portal account whose password was refused is not tried again until it changes."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dealerbot.store.base import StoreBase


class LoginRefusalsPart(StoreBase):
    """Refused passwords: a portal account whose password was refused is not tried again until it changes."""

    def password_fingerprint(self, password: str) -> str:
        """A keyed digest of a password (never the password): enough to tell whether the
        password now configured is the one a portal refused."""
        return hmac.new(self.store_id().encode(), password.encode(), hashlib.sha256).hexdigest()[:32]

    def login_refusal(self, account: str) -> dict[str, Any] | None:
        """The portal account's last refused password (fingerprint, message, when), or None."""
        t = self.tables["login_refusals"]
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(self._mine(t), t.c.account == account)).mappings().first()
        return dict(row) if row else None

    def record_login_refusal(self, account: str, fingerprint: str, message: str, run_id: str | None) -> None:
        """Remember that the portal refused this password for this account."""
        t = self.tables["login_refusals"]
        with self.engine.begin() as conn:
            conn.execute(self._upsert(t, ["store", "account"]), [{
                "store": self.code, "account": account, "fingerprint": fingerprint, "message": message, "refused_at": datetime.now(),
                "run_id": run_id,
            }])

    def clear_login_refusal(self, account: str) -> bool:
        """Forget a refusal (a new password was set, or the operator asks to try again)."""
        t = self.tables["login_refusals"]
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(self._mine(t), t.c.account == account)).rowcount > 0

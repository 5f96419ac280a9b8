"""What the console calls bots, portals and timetable jobs: the names an operator reads, never
a key like ``dms-rekey``. One home for them (the pages' templates get :class:`Names` as
``names``): a bot's ``title`` (its description when it has none), a portal's screens' ``title``
from its selector file, a job by what it runs."""

from __future__ import annotations

from functools import cache

from dealerbot.config import Settings
from dealerbot.errors import DealerbotError

SYNC_TITLE = "每日同步"


class Names:
    """Operator names for ``settings``'s bots, portals and jobs (read once, then remembered)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bot = cache(self._bot)
        self.portal = cache(self._portal)

    def _bot(self, name: str) -> str:
        """A bot's name as an operator reads it ("读取厂家订单"); ``sync``: 每日同步; a bot not
        known here: its key."""
        from dealerbot.running.registry import discover

        if name == "sync":
            return SYNC_TITLE
        try:
            found = discover(home=self.settings.home).get(name)
        except DealerbotError:
            found = None
        if found is None:
            return name
        return str(getattr(found, "title", "") or getattr(found, "description", "") or name)

    def _portal(self, name: str) -> str:
        """A portal's name as its screens call it ("厂家门户", "DMS"); its key when its selector
        file cannot be read."""
        from dealerbot.web.locators import load_portal_selectors

        try:
            return load_portal_selectors(name, None, self.settings.home).title or name
        except DealerbotError:
            return name

    def job(self, name: str, runs: str) -> str:
        """A timetable job ``name`` running ``runs`` (a bot or ``sync``), by what it does."""
        return self.bot(runs)

"""dms-desktop-rekey: types the approved actions of the ledger into a desktop (client/server)
DMS through its keyboard and screen, exactly once, read back through the client itself.

The same ledger and rules as dms-rekey (search before create, one save, read back, resume
after a kill), for dealerships whose DMS is a desktop client: ``[rekey] client = "desktop"``
makes ``dealerbot sync`` use it. The client must be running and logged in or at its login
window on this machine's desktop (Linux: ``DISPLAY``; under Xvfb in the tests).
``--dry-run`` fills every form and cancels it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dealerbot.api import Bot, BotContext, run_rekey
from portals.dms_desktop import DesktopDms


class DmsDesktopRekeyBot(Bot):
    """Writes approved OEM orders and status changes into the desktop DMS client."""

    name = "dms-desktop-rekey"
    portal = "dms"
    title = "写入DMS（桌面客户端）"
    description = "通过DMS桌面客户端（键盘与屏幕）录入已批准的操作，逐条回读核对"
    options = ("dry_run",)
    ledger_writer = True  # planning waits while it writes (the store's ledger lock)
    uses_browser = False

    async def run(self, ctx: BotContext) -> None:
        @asynccontextmanager
        async def client(_actions: int) -> AsyncIterator[list[DesktopDms]]:
            """The one desktop client, logged in."""
            async with ctx.desktop("dms", "dms_desktop") as driver:
                dms = DesktopDms(driver, lambda label: ctx.desktop_evidence(driver, label))
                username = ctx.settings.portal("dms").username
                if await dms.login_async(username, lambda: ctx.password("dms")):
                    ctx.log.info("dms: logged in to the desktop client as {}", username)
                yield [dms]

        await run_rekey(ctx, client)

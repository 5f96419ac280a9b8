"""dms-desktop-rekey: types the approved actions of the ledger into a desktop (client/server)
DMS through its keyboard and screen, exactly once, read back through the client itself.

The same ledger and rules as dms-rekey (search before create, one save, read back, resume
after a kill), for dealerships whose DMS is a desktop client: ``[rekey] client = "desktop"``
makes ``dealerbot sync`` use it. The client must be running and logged in or at its login
window on this machine's desktop (Linux: ``DISPLAY``; under Xvfb in the tests).
``--dry-run`` fills every form and cancels it.
"""

from __future__ import annotations

from dealerbot.api import Bot, BotContext, Failpoints, Rekeyer, pending_actions, write_actions
from portals.dms_desktop import DesktopDms


class DmsDesktopRekeyBot(Bot):
    """Writes approved OEM orders and status changes into the desktop DMS client."""

    name = "dms-desktop-rekey"
    portal = "dms"
    description = "通过DMS桌面客户端（键盘与屏幕）录入已批准的操作，逐条回读核对"
    options = ("dry_run",)
    uses_browser = False

    async def run(self, ctx: BotContext) -> None:
        dry_run = bool(ctx.options.get("dry_run"))
        rekeyer = Rekeyer(
            ctx.store, ctx.run_id, self.name, ctx.counts, ctx.log, dry_run=dry_run,
            failpoints=Failpoints.from_env(), progress=ctx.progress,
        )
        todo = pending_actions(ctx.store, ctx.settings.rekey.policy().enabled, include_resumed=not dry_run, log=ctx.log)
        if not todo:
            ctx.log.info("nothing approved to write (see `dealerbot reconcile` and the review workbook)")
            return
        for action, _ in todo:  # the names and addresses about to be typed: masked in every artifact
            ctx.personal(*action.customer.values.values(), action.new_values.get("customer_name"))
        async with ctx.desktop("dms", "dms_desktop") as driver:
            dms = DesktopDms(driver, lambda label: ctx.desktop_evidence(driver, label))
            username = ctx.settings.portal("dms").username
            if await dms._run(dms.login, username, lambda: ctx.password("dms")):
                ctx.log.info("dms: logged in to the desktop client as {}", username)
            await write_actions(
                ctx.store, rekeyer, [dms], todo, ctx.settings.run.retries, ctx.settings.run.backoff_seconds, ctx.log,
                check_stop=ctx.check_stop,
            )

"""oem-reports: the OEM portal's 上报记录 (the deliveries this dealer reported, 逾期 flagged), to
reconcile the DMS's deliveries against."""

from __future__ import annotations

from dealerbot.api import OEM_REPORT, BotContext, DealerbotError, ListBot, scrape_pages
from portals.oem import BUSINESS_DATE_MARK, REPORTS_SELECTORS, OemPortal, ReportForm, ReportsPage


class OemReportsBot(ListBot):
    """Reads every page of the OEM portal's 上报记录 list."""

    name = "oem-reports"
    portal = "oem"
    entity = OEM_REPORT
    title = "读取厂家上报记录"
    description = "厂家门户交车上报记录（含逾期标记）"
    app = OemPortal
    screen = ReportsPage

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal(self.portal, OemPortal, require=REPORTS_SELECTORS) as s:
            screen = ReportsPage(s)
            await s.step("open the list", screen.open)
            await scrape_pages(ctx, screen, self.entity)
            try:  # the portal's business date, for the deadlines the sync's message lists (best effort)
                today = await ReportForm(s).business_date()
            except DealerbotError as exc:
                ctx.log.warning("the portal's business date could not be read: {}", exc)
                return
            if today is not None:
                ctx.store.set_watermark(BUSINESS_DATE_MARK, today.isoformat(), ctx.run_id)

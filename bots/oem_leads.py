"""oem-leads: the leads the car maker pushed to this dealer (线索管理), and the follow-ups logged on
each (回访记录, read from the lead's page for the leads the list shows 已回访)."""

from __future__ import annotations

from dealerbot.api import OEM_FOLLOWUP, OEM_LEAD, Bot, BotContext
from portals.oem import LEADS_SELECTORS, LeadPage, LeadsPage, OemPortal


class OemLeadsBot(Bot):
    """Reads every page of the OEM portal's leads, then the 回访记录 of each lead followed up."""

    name = "oem-leads"
    portal = "oem"
    entity = OEM_LEAD
    entities = (OEM_FOLLOWUP,)
    title = "读取厂家线索"
    description = "厂家门户线索及回访记录"
    recycles = True

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal(self.portal, OemPortal, require=LEADS_SELECTORS) as s:
            leads = LeadsPage(s)
            await s.step("open the list", leads.open)
            followed: list[str] = []
            page = 1
            limit = ctx.settings.run.page_limit
            while True:
                ctx.check_stop()
                rows, has_next = await leads.fetch(page)
                if page == 1 and leads.total is not None:
                    ctx.counts.setdefault("expected", leads.total)
                ctx.page_done()
                for row in rows:
                    ctx.emit(OEM_LEAD, row, source=f"page {page}")
                    if row["status"] == "已回访" and OEM_LEAD.key_is_valid(row["lead_no"]):
                        followed.append(row["lead_no"])
                if not has_next or (limit and page >= limit):
                    break
                page += 1
            detail = LeadPage(s)
            for lead_no in followed:
                ctx.check_stop()
                _, followups = await detail.read(lead_no)
                for f in followups:
                    ctx.emit(OEM_FOLLOWUP, f, source=f"lead {lead_no}")

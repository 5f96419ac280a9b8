"""oem-orders: orders (with their details) updated since the last successful run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from dealerbot.api import OEM_ORDER, Bot, BotContext, fan_out
from portals.oem import PAGE_SIZE, OemPortal, OrderDetailPage, OrdersPage

TIE_OVERLAP = timedelta(seconds=1)


class OemOrdersBot(Bot):
    """Reads the OEM portal's orders list and every listed order's detail page."""

    name = "oem-orders"
    portal = "oem"
    entity = OEM_ORDER
    title = "读取厂家订单"
    description = "厂家门户订单（含详情），默认增量"
    incremental = True
    recycles = True  # reads go through the session while the page waits on the list

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("oem", OemPortal) as s:
            orders = OrdersPage(s)
            await s.step("open the orders list", orders.open)
            detail = OrderDetailPage(s)

            async def read_detail(order_no: str) -> None:
                ctx.check_stop()
                ctx.emit(OEM_ORDER, await detail.read(order_no), source=order_no)

            run = ctx.settings.run
            await fan_out(
                lambda put: self._walk(ctx, orders, put), read_detail, workers=run.concurrency, buffer=PAGE_SIZE * 2,
                requeue_rounds=run.requeue_rounds, pause=run.backoff_seconds, log=ctx.log,
            )

    async def _walk(self, ctx: BotContext, orders: OrdersPage, put: Callable[[str], Awaitable[None]]) -> None:
        """Walk the list oldest change first, by keyset (updated_since = last seen) not by page
        number, so that orders changing during the walk never shift others out of view."""
        cursor: datetime | None = ctx.since
        page_no = 1
        boundary: dict[str, datetime] = {}  # orders already queued near the cursor
        limit = ctx.settings.run.page_limit
        while True:
            data = await orders.fetch(page_no, cursor)
            ctx.page_done()
            items = data["items"]
            if page_no == 1 and cursor == ctx.since:
                ctx.counts.setdefault("expected", data["total"])
            for item in items:
                order_no, changed = item["order_no"], datetime.fromisoformat(item["updated_at"])
                if boundary.get(order_no) == changed:
                    continue  # seen at this very version in the overlap
                boundary[order_no] = changed
                ctx.observe_change(changed)
                if not OEM_ORDER.key_is_valid(order_no):  # it would become the detail page's URL
                    ctx.reject(OEM_ORDER, item, "bad_key", f"订单号格式不正确：「{order_no}」，未读取详情", "order_no")
                    continue
                await put(order_no)
            if len(items) < PAGE_SIZE or page_no >= data["pages"] or (limit and ctx.counts["pages"] >= limit):
                return
            last = datetime.fromisoformat(items[-1]["updated_at"])
            if cursor is not None and last - TIE_OVERLAP <= cursor:
                page_no += 1  # a whole page shares one timestamp: step by page number
                continue
            cursor, page_no = last - TIE_OVERLAP, 1
            boundary = {k: t for k, t in boundary.items() if t > cursor}

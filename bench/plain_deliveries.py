"""The delivery reports written in plain Playwright, the baseline of ``bench/deliveries.py``.

    python bench/plain_deliveries.py OEM_URL BROWSER deliveries.json

What a competent engineer writes without dealerbot: log into the OEM portal, then for each
delivery of the input (a JSON list of the values to type): search 上报记录 for its VIN first
(nothing twice), open 交车上报 for the VIN, type the fields one by one, choose the consent,
提交上报, 确认上报, wait for the list, then read the report back from 上报记录 and compare.
Exits 1 when a report does not read back as typed.
"""

from __future__ import annotations

import asyncio
import json
import sys

from playwright.async_api import async_playwright

FIELDS = ("delivery_date", "invoice_no", "invoice_amount", "buyer_id_number", "buyer_mobile")


async def main(oem: str, browser_path: str, path: str) -> int:
    deliveries = json.loads(open(path, encoding="utf-8").read())
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=browser_path, headless=True)
        page = await browser.new_page()
        await page.goto(f"{oem}/login")
        await page.fill("#dealer_code", "D31001")
        await page.fill("#username", "dealer_admin")
        await page.fill("#password", "Oem@2026!")
        await page.click("#login-submit")
        await page.wait_for_load_state()
        wrong = 0
        for d in deliveries:
            vin = d["vin"]
            await page.goto(f"{oem}/retail-reports?q={vin}")
            if await page.locator("#notice-modal").is_visible():
                await page.click("#notice-ack")
            if await page.locator(f"#reports-table tr.report-row:has(td[data-field=vin]:text-is('{vin}'))").count():
                continue  # reported already
            await page.goto(f"{oem}/retail-reports/new?vin={vin}")
            if await page.locator("#notice-modal").is_visible():
                await page.click("#notice-ack")
            for f in FIELDS:
                if d.get(f):
                    await page.fill(f"#report-form #{f}", d[f])
            await page.select_option("#report-form #consent", d["consent"])
            await page.click("#report-submit")
            async with page.expect_navigation():
                await page.click("#confirm-dialog #confirm-ok")
            await page.goto(f"{oem}/retail-reports?q={vin}")
            row = page.locator(f"#reports-table tr.report-row:has(td[data-field=vin]:text-is('{vin}'))").first
            got = {f: (await row.locator(f"td[data-field={f}]").inner_text()).strip() for f in FIELDS}
            got["invoice_amount"] = got["invoice_amount"].replace(",", "")
            if any(got[f] != (d.get(f) or "") for f in FIELDS):
                wrong += 1
        await browser.close()
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))

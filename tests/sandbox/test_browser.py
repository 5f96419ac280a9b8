"""A real headless Chromium drives both sandbox apps the way the bots will."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]


async def test_oem_and_dms_in_chromium(sandbox):
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            ctx = await browser.new_context(locale="zh-CN")
            page = await ctx.new_page()
            # OEM portal: login, notice modal, JS-filled orders table
            await page.goto(sandbox.oem_url + "/login")
            await page.fill("#dealer_code", "D31001")
            await page.fill("#username", "dealer_admin")
            await page.fill("#password", "Oem@2026!")
            await page.click("#login-submit")
            await page.wait_for_url("**/orders*")
            await expect(page.locator("#notice-modal")).to_be_visible()
            await expect(page.locator("#notice-overlay")).to_be_visible()
            await expect(page.locator("#notice-modal")).to_contain_text("系统公告")
            await page.click("#notice-ack")
            await expect(page.locator("#notice-modal")).to_have_count(0)
            rows = page.locator("#orders-table tbody tr.order-row")
            await expect(rows).to_have_count(20)
            await expect(page.locator("#orders-loading")).to_be_hidden()
            await expect(page.locator("#pager-info")).to_have_text("第 1/6 页，共 120 条")
            await expect(page.locator("#pager-prev")).to_be_disabled()
            first = await rows.first.get_attribute("data-order-no")
            await page.click("#pager-next")
            await expect(page.locator("#pager-info")).to_have_text("第 2/6 页，共 120 条")
            assert await rows.first.get_attribute("data-order-no") != first
            await page.select_option("#filter-status", "已交车")
            await page.click("#filter-submit")
            await expect(page.locator("#pager-info")).to_contain_text("第 1/")
            await expect(rows.first.locator("td[data-field=status]")).to_have_text("已交车")
            await rows.first.locator("a.order-link").click()
            await expect(page.locator("#order-detail dd[data-field=status]")).to_have_text("已交车")
            # the notice stays away for this session
            await expect(page.locator("#notice-modal")).to_have_count(0)

            # DMS: login, contract form, customer pop-up, confirm dialog
            await page.goto(sandbox.dms_url + "/login")
            await page.fill("#username", "sales01")
            await page.fill("#password", "Dms@2026!")
            await page.click("#login-submit")
            await page.wait_for_url("**/contracts*")
            await expect(page.locator("#contracts-table tr.contract-row")).to_have_count(20)
            await page.goto(sandbox.dms_url + "/contracts/new")
            await page.click("#customer-pick")
            await expect(page.locator("#customer-dialog")).to_be_visible()
            await page.fill("#customer-dialog-q", "KH0000")
            await page.click("#customer-dialog-search")
            pick = page.locator("#customer-dialog tr.pick-row")
            await expect(pick.first).to_be_visible()
            chosen = await pick.first.get_attribute("data-customer-no")
            await pick.first.locator("button.pick").click()
            await expect(page.locator("#customer-dialog")).to_be_hidden()
            assert await page.input_value("#customer_no") == chosen
            await expect(page.locator("#customer-display")).to_contain_text(chosen)
            await page.click("#save")
            await expect(page.locator("#confirm-dialog")).to_be_visible()
            await expect(page.locator("#confirm-dialog")).to_contain_text("确认保存?")
            await page.click("#confirm-cancel")
            await expect(page.locator("#confirm-dialog")).to_be_hidden()
        finally:
            await browser.close()

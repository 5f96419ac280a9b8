"""The baseline of bench/followups.py: logging DMS follow-ups into the OEM portal's 回访登记 as a
competent RPA developer writes it with plain Playwright (sync API, one page, CSS by hand): log in,
then for each follow-up of an input CSV open its lead's page, look for the same follow-up in the
回访记录 first (the OEM would take a duplicate), fill the form field by field, 提交回访, 确认提交,
then read the lead's page back to check it is there.

None of what dealerbot adds (ledger, resume after a kill, retries, evidence, masking, review).

    python bench/plain_followups.py URL PASSWORD BROWSER INPUT.csv
"""

import csv
import sys

from playwright.sync_api import sync_playwright

url, password, executable, input_csv = sys.argv[1:5]
FIELDS = ("followed_on", "result", "next_step", "note")
ROWS = """rows => rows.map(r => Object.fromEntries(Array.from(r.querySelectorAll('td[data-field]'),
                                                        c => [c.dataset.field, c.innerText.trim()])))"""


def logged(page, lead_no):
    page.goto(f"{url}/leads/{lead_no}")
    return page.locator("#followups-table tr.followup-row").evaluate_all(ROWS)


def same(row, f):
    return all(row.get(k, "") == f[k] for k in FIELDS)


with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
    page = browser.new_page()
    page.goto(f"{url}/login")
    page.fill("#dealer_code", "D31001")
    page.fill("#username", "dealer_admin")
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(lambda u: "/login" not in u)
    if page.locator("#notice-ack").is_visible():
        page.click("#notice-ack")
    done = 0
    with open(input_csv, encoding="utf-8") as fh:
        for f in csv.DictReader(fh):
            if any(same(r, f) for r in logged(page, f["lead_no"])):
                done += 1
                continue
            if page.locator("#notice-ack").is_visible():
                page.click("#notice-ack")
            page.fill("#followup-form #followed_on", f["followed_on"])
            page.select_option("#followup-form #result", label=f["result"])
            page.fill("#followup-form #next_step", f["next_step"])
            page.fill("#followup-form #note", f["note"])
            page.click("#followup-submit")
            with page.expect_navigation():
                page.click("#confirm-dialog #confirm-ok")
            if not any(same(r, f) for r in logged(page, f["lead_no"])):
                sys.exit(f"{f['lead_no']}: not found after saving")
            done += 1
    browser.close()
print(done)

"""The baseline of bench/own_portal.py: the same two tasks as examples/usedcars, written as a
competent RPA developer writes them with plain Playwright (sync API, one page, CSS by hand):
log in in the browser, read every car of the list into a CSV through the logged-in context's
request API (``context.request``: the same cookies, no page rendered; parsed with lxml, as
dealerbot reads over HTTP through its session), then register the cars of an input CSV in the
browser, each searched first (never registered twice) and read back after saving.

It has none of what dealerbot adds (retries, re-login, evidence, masking, run history, store,
workbook, rejects with reasons): it is the time and the lines to beat.

    python bench/plain_usedcars.py URL USER PASSWORD BROWSER INPUT.csv OUTPUT.csv
"""

import csv
import sys

from lxml import html
from playwright.sync_api import sync_playwright

url, user, password, executable, input_csv, output_csv = sys.argv[1:7]
COLUMNS = ["vin", "brand", "model", "reg_date", "mileage_km", "price", "owner_name", "owner_mobile", "status"]
READ_ROWS = """rows => rows.filter(r => r.cells.length > 1).map(r => Array.from(r.cells, c => c.innerText.trim()))"""


def search(page, vin):
    page.goto(f"{url}/cars/?q={vin}")
    return [r for r in page.locator("table.table tbody tr").evaluate_all(READ_ROWS) if r[0] == vin]


with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
    page = browser.new_page()
    page.goto(f"{url}/accounts/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if "/accounts/login/" in page.url:
        sys.exit("login refused")

    with open(output_csv, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        href = ""
        while True:
            doc = html.fromstring(page.context.request.get(f"{url}/cars/{href}").text())
            writer.writerows([c.text_content().strip() for c in row.cssselect("td")]
                             for row in doc.cssselect("table.table tbody tr") if len(row.cssselect("td")) > 1)
            next_link = doc.cssselect("ul.pagination li.next a")
            if not next_link:
                break
            href = next_link[0].get("href")

    page.on("dialog", lambda dialog: dialog.accept())
    with open(input_csv, encoding="utf-8-sig") as fh:
        for car in csv.DictReader(fh):
            if search(page, car["vin"]):
                print(f"{car['vin']} already registered")
                continue
            page.goto(f"{url}/cars/add/")
            for field in ("vin", "model", "reg_date", "mileage_km", "price", "owner_name", "owner_mobile"):
                page.fill(f"input[name={field}]", car[field])
            page.select_option("select[name=brand]", label=car["brand"])
            if car.get("license_photo"):
                page.set_input_files("input[name=license_photo]", car["license_photo"])
            with page.expect_navigation():
                page.click("#car-form button[type=submit]")
            if page.locator(".errorlist").count():
                print(f"{car['vin']} refused: {page.locator('.errorlist').first.inner_text()}")
                continue
            if not search(page, car["vin"]):
                print(f"{car['vin']} not found after saving")
    browser.close()

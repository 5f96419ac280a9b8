"""The baseline of bench/own_portal.py: the same two tasks as examples/usedcars, written as a
competent RPA developer writes them with plain Playwright (sync API, one page, CSS by hand):
log in in the browser, read every car of the list into a CSV through the logged-in context's
request API (``context.request``: the same cookies, no page rendered; parsed with lxml, as
dealerbot reads over HTTP through its session), then register the cars of an input CSV in the
browser, each searched first (never registered twice) and read back after saving.

With ``--sell`` it does the sale-like task instead (measured apart): for each sale of an input
CSV, find the car by its VIN on the list, open its sale form (售出登记), fill it, submit once,
read the sale back from the car's sale page; a car already sold is not sold again.

It has none of what dealerbot adds (retries, re-login, evidence, masking, run history, store,
workbook, rejects with reasons): it is the time and the lines to beat.

    python bench/plain_usedcars.py URL USER PASSWORD BROWSER INPUT.csv OUTPUT.csv
    python bench/plain_usedcars.py --sell URL USER PASSWORD BROWSER SALES.csv
"""

import csv
import sys

from lxml import html
from playwright.sync_api import sync_playwright

selling = sys.argv[1] == "--sell"
url, user, password, executable, input_csv, output_csv = (sys.argv[2:7] + [""]) if selling else sys.argv[1:7]
SALE_FIELDS = ("sale_price", "buyer_name", "buyer_mobile", "sold_on")
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

    if selling:
        with open(input_csv, encoding="utf-8-sig") as fh:
            for sale in csv.DictReader(fh):
                page.goto(f"{url}/cars/?q={sale['vin']}")
                link = page.locator("table.table tbody td:first-child a", has_text=sale["vin"])
                if not link.count():
                    print(f"{sale['vin']} not on the list")
                    continue
                sale_page = f"{url}{link.first.get_attribute('href')}sell/"
                page.goto(sale_page)
                if page.locator("dl.sale").count():
                    print(f"{sale['vin']} already sold")
                    continue
                for field in SALE_FIELDS:
                    page.fill(f"input[name={field}]", sale[field])
                with page.expect_navigation():
                    page.click("#sale-form button[type=submit]")
                if page.locator(".errorlist").count():
                    print(f"{sale['vin']} refused: {page.locator('.errorlist').first.inner_text()}")
                    continue
                page.goto(sale_page)
                if page.locator("dl.sale dd[data-field=sold_on]").inner_text() != sale["sold_on"]:
                    print(f"{sale['vin']} not found sold after saving")
        browser.close()
        sys.exit()

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

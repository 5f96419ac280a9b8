"""A dealership adds its own portal as a new user would: the example project (examples/usedcars:
a config section, a selector file, page objects and two bots, no change to dealerbot's package)
copied into a fresh folder and driven through the `dealerbot` command against the sandbox's
used-car trade-in platform, a portal built unlike the shipped two (unlinked labels, plain
tables, a native confirm(), a 404 page for an ended session, a frame, a shadow root, a new
window, a download). Outcomes are checked against the platform's admin ground truth."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openpyxl import Workbook, load_workbook

from dealerbot.sandbox.data import vin_check_digit
from dealerbot.sandbox.usedcars import DEMO_PASSWORD

from .test_cli import dealerbot

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser


class Platform:
    def __init__(self, sandbox) -> None:
        self.http = httpx.Client(base_url=sandbox.usedcars_url, headers={"X-Admin-Token": sandbox.admin_token}, timeout=10)

    def cars(self) -> list[dict]:
        return self.http.get("/__admin/cars").raise_for_status().json()["cars"]

    def counters(self) -> dict:
        return self.http.get("/__admin/counters").raise_for_status().json()

    def behave(self, **values) -> None:
        self.http.put("/__admin/behaviours", json=values).raise_for_status()

    def reset(self) -> None:
        self.http.post("/__admin/reset").raise_for_status()


@pytest.fixture
def platform(sandbox) -> Iterator[Platform]:
    p = Platform(sandbox)
    p.reset()
    yield p
    p.reset()
    p.http.close()


@pytest.fixture
def shop(tmp_path: Path, sandbox) -> Path:
    """The example project, copied as a dealership would, pointed at the sandbox."""
    folder = tmp_path / "shop"
    shutil.copytree(ROOT / "examples" / "usedcars", folder)
    cfg = folder / "dealerbot.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("http://127.0.0.1:8703", sandbox.usedcars_url)
                   + "\n[run]\nbackoff_seconds = 0.05\n", encoding="utf-8")
    return folder


def run(shop: Path, *args: str):
    return dealerbot(list(args), shop, DEALERBOT_USEDCARS_PASSWORD=DEMO_PASSWORD)


def _vin(serial: int) -> str:
    body = f"LSVB123A0PH{serial:06d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def _sheet(path: Path, title: str) -> list[dict]:
    ws = load_workbook(path, read_only=True)[title]
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_a_new_user_reads_and_registers_cars_on_their_own_portal(shop, platform):
    listed = run(shop, "bots")
    assert listed.returncode == 0 and "usedcars-stock" in listed.stdout and "oem-orders" in listed.stdout
    check = run(shop, "selectors", "check", "usedcars")  # logs in with the default login app
    assert check.returncode == 0, check.stdout + check.stderr
    lines = {line.split("│")[1].strip(): line for line in check.stdout.splitlines() if line.count("│") >= 3}
    assert " ok " in lines["login.username"] and " ok " in lines["car.vin"]  # labels not linked to inputs
    assert " ok " in lines["notice.guide"]  # inside the notice's iframe

    stock = run(shop, "run", "usedcars-stock")
    assert stock.returncode == 0, stock.stdout + stock.stderr
    exported = run(shop, "export", "-o", "stock.xlsx")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    rows = _sheet(shop / "stock.xlsx", "置换车辆")
    truth = platform.cars()
    assert sorted(r["车架号"] for r in rows) == sorted(c["vin"] for c in truth)  # three pages, by header text
    first = next(r for r in rows if r["车架号"] == truth[0]["vin"])
    assert first["车主"] == truth[0]["owner_name"] and first["表显里程"] == truth[0]["mileage_km"]

    existing = truth[0]
    new, refused_vin, unknown_brand = _vin(900001), _vin(900002)[:8] + "Z" + _vin(900002)[9:], _vin(900003)
    wb = Workbook()
    photo = shop / "行驶证.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    wb.active.append(["vin", "brand", "model", "reg_date", "mileage_km", "price", "owner_name", "owner_mobile", "license_photo"])
    wb.active.append([new, "丰田", "卡罗拉", "2021-05-06", 42000, 86000, "欧阳娜", "13912345678", str(photo)])
    wb.active.append([existing["vin"], "大众", "朗逸", "2020-01-01", 1000, 1000, "张三", "13800000000"])
    wb.active.append([refused_vin, "本田", "雅阁", "2021-05-06", 42000, 86000, "李四", "13912345679"])
    wb.active.append([unknown_brand, "特斯拉", "Model 3", "2022-05-06", 12000, 186000, "王五", "13912345670"])
    wb.save(shop / "cars.xlsx")

    register = run(shop, "run", "usedcars-register", "--input", "cars.xlsx")
    assert register.returncode == 0, register.stdout + register.stderr
    assert f"{existing['vin']} 已在置换车辆中，未重复写入" in register.stdout
    after = platform.cars()
    added = [c for c in after if c["vin"] == new]
    assert len(added) == 1 and added[0]["brand"] == "丰田" and added[0]["price"] == "86000.00"
    assert added[0]["owner_name"] == "欧阳娜" and added[0]["reg_date"] == "2021-05-06"
    assert added[0]["license_file"] == "行驶证.png"  # uploaded through the file input
    assert not {refused_vin, unknown_brand} & {c["vin"] for c in after}
    assert platform.counters()["submits"] == 1  # the bad VIN never reached the platform; 特斯拉 never reached 保存

    again = run(shop, "run", "usedcars-register", "--input", "cars.xlsx")
    assert again.returncode == 0 and f"{new} 已在置换车辆中，未重复写入" in again.stdout
    assert len(platform.cars()) == len(truth) + 1  # nothing registered twice
    leaked = [p for p in (shop / "logs").rglob("*") if p.is_file() and DEMO_PASSWORD in p.read_text(errors="ignore")]
    assert not leaked  # the new portal's password is masked like the shipped ones'
    audit = run(shop, "audit", "--order", new)
    assert audit.returncode == 0 and "已写入并回读" in audit.stdout and "已存在，未写入" in audit.stdout, audit.stdout
    assert "评估价" in audit.stdout and "欧阳娜" not in audit.stdout  # its own headers; personal values masked

    run(shop, "export", "-o", "review.xlsx")
    wb = load_workbook(shop / "review.xlsx", read_only=True)
    register_sheets = [t for t in wb.sheetnames if t.startswith("置换车辆")]
    rows = _sheet(shop / "review.xlsx", register_sheets[-1])
    reasons = {r["车架号"]: r["问题说明"] for r in rows if r["校验结果"] == "拒绝"}
    assert "特斯拉" in reasons[unknown_brand] and "VIN校验位错误" in reasons[refused_vin]


def test_an_ended_session_sent_to_a_404_page_logs_in_again(shop, platform):
    assert run(shop, "run", "usedcars-stock").returncode == 0
    platform.behave(session_idle_seconds=0.3)
    time.sleep(0.6)  # the saved login has ended: the platform now answers with its 404 page
    second = run(shop, "run", "usedcars-stock")
    assert second.returncode == 0, second.stdout + second.stderr
    counters = platform.counters()
    assert counters["logins"] == 2 and counters["expired"] >= 1


def test_a_bad_input_file_changes_nothing_and_says_where(shop, platform):
    (shop / "cars.csv").write_text("vin,brand,vin\nLSVB123AXPH900001,丰田,x\n", encoding="utf-8")
    bad = run(shop, "run", "usedcars-register", "--input", "cars.csv")
    assert bad.returncode == 2 and "cars.csv" in bad.stdout + bad.stderr and "列名重复" in bad.stdout + bad.stderr
    assert platform.counters()["requests"] == 0
    wrong = run(shop, "run", "usedcars-stock", "--input", "cars.csv")
    assert wrong.returncode == 2 and "不读取输入文件" in wrong.stdout + wrong.stderr
    missing = run(shop, "run", "usedcars-register")  # no file: refused before anything starts
    assert missing.returncode == 2 and "需要输入文件" in missing.stdout + missing.stderr
    assert platform.counters()["requests"] == 0 and not (shop / "logs" / "runs").exists()


PROBE_BOT = '''
from dealerbot.api import Bot, BotContext, Form


class Probe(Bot):
    name = "usedcars-probe"
    portal = "usedcars"
    description = "reads through a frame, a shadow root, a new window and a download"

    async def run(self, ctx: BotContext) -> None:
        async with ctx.portal("usedcars") as s:
            form = Form(s)
            await s.goto("cars_page")
            ctx.note("guide=" + await form.read_text("notice.guide"))
            saved = await form.download("cars.export", ctx.download_dir(), "cars.csv")
            ctx.note("download=" + str(saved))
            await s.goto("car_detail", car_id=1)
            ctx.note("status=" + await form.read_text("car.status"))
            window = await form.popup("car.print")
            ctx.note("printed=" + await Form(window).read_text("print.vin"))
'''


def test_frames_shadow_roots_new_windows_and_downloads_are_reached_by_name(shop, platform):
    (shop / "bots" / "usedcars_probe.py").write_text(PROBE_BOT, encoding="utf-8")
    probe = run(shop, "run", "usedcars-probe")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    notes = dict(line.split("usedcars-probe: ", 1)[1].split("=", 1) for line in probe.stdout.splitlines()
                 if "usedcars-probe: " in line and "=" in line)
    car = platform.cars()[0]
    assert notes["guide"] == "0.93" and notes["status"] == car["status"] and notes["printed"] == car["vin"]
    [saved] = (shop / "out" / "downloads").glob("*-usedcars-probe-*/cars.csv")  # the run's own folder
    assert saved.read_text(encoding="utf-8-sig").count(car["vin"]) == 1 and oct(saved.stat().st_mode)[-3:] == "600"
    assert platform.counters()["exports"] == 1


LABELS = """
<table>
  <tr><th><label for="vin">车架号</label></th><th><label for="brand">品牌</label></th></tr>
  <tr><td><input id="vin"></td><td><input id="brand"></td></tr>
</table>
<div><label>车主姓名：</label><input name="owner"></div>
<div><label>备注</label></div>
<div><label>车主手机：</label><span><input name="mobile"></span></div>
<label>里程 <input name="km"></label>
"""


async def test_labels_find_their_own_input_linked_or_not(tmp_path):
    from dealerbot.config import BrowserSettings
    from dealerbot.errors import PageChanged
    from dealerbot.web.browser import open_browser
    from dealerbot.web.locators import load_selector_file
    from dealerbot.web.page_locators import Locators

    path = tmp_path / "x.yaml"
    path.write_text("portal: x\nselectors:\n" + "".join(
        f"  f.{n}:\n    - label: {t}\n" for n, t in
        (("vin", "车架号"), ("brand", "品牌"), ("owner", "车主姓名"), ("note", "备注"), ("mobile", "车主手机"), ("km", "里程"))),
        encoding="utf-8")
    async with open_browser(BrowserSettings()) as browser:
        page = await browser.browser.new_page()
        await page.set_content(LABELS)
        loc = Locators(page, load_selector_file(path), timeout_ms=1500)

        async def found(name: str) -> str:
            return await (await loc.get(name)).evaluate("el => el.id || el.name")

        # linked labels win, even when an unlinked reading would pick the input after them
        assert await found("f.vin") == "vin" and await found("f.brand") == "brand"
        # unlinked: the input right after the label, or inside it
        assert await found("f.owner") == "owner" and await found("f.mobile") == "mobile" and await found("f.km") == "km"
        with pytest.raises(PageChanged):  # 备注 has no input of its own: not the next label's
            await loc.get("f.note")
        await page.close()

"""`dealerbot init`'s scaffold and `dealerbot record`'s parsing and merging, without a browser
(the live side: tests/integration/test_init_record.py)."""

from __future__ import annotations

import importlib.util
import shutil
import tomllib
from pathlib import Path

import lxml.html
import pytest

from dealerbot.api import read_saved_table
from dealerbot.cli.init import PortalSpec, scaffold
from dealerbot.cli.record import Entry, merge_entries, parse_recorded, recorded_locators
from dealerbot.errors import ConfigError, PageChanged
from dealerbot.web.locators import load_selector_file

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "# our shop\n[run]\nretries = 2   # a comment kept\n\n[portals.other]\nurl = \"http://x:1\"\n"


def _generated_test(folder: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"generated_{name}", folder / "tests" / f"test_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_init_appends_its_section_writes_a_passing_test_and_refuses_to_overwrite(tmp_path):
    (tmp_path / "dealerbot.toml").write_text(CONFIG, encoding="utf-8")
    spec = PortalSpec("stock_dms", url="https://dms.example.cn", username="clerk", title="库存 \"DMS\"",
                      columns="stock_no=库存编号,model=车型,buyer=客户: 姓名", personal="buyer")
    done = scaffold(tmp_path, spec)
    config = (tmp_path / "dealerbot.toml").read_text(encoding="utf-8")
    assert config.startswith(CONFIG)  # what was there, byte for byte
    assert tomllib.loads(config)["portals"]["stock_dms"] == {"url": "https://dms.example.cn", "username": "clerk"}
    assert {p.relative_to(tmp_path).as_posix() for p, _ in done} >= {
        "selectors/stock_dms.yaml", "portals/stock_dms.py", "bots/stock_dms_list.py", "tests/test_stock_dms.py",
        "tests/pages/stock_dms_list.html", "bots/__init__.py", "portals/__init__.py", "dealerbot.toml"}
    f = load_selector_file(tmp_path / "selectors" / "stock_dms.yaml")
    assert f.table("list").columns == (("stock_no", "库存编号"), ("model", "车型"), ("buyer", "客户: 姓名"))
    portal_code = (tmp_path / "portals" / "stock_dms.py").read_text(encoding="utf-8")
    assert 'FieldDef("buyer", "客户: 姓名", personal=True)' in portal_code and 'title="库存 \\"DMS\\""' in portal_code
    compile(portal_code, "portal", "exec")
    compile((tmp_path / "bots" / "stock_dms_list.py").read_text(encoding="utf-8"), "bot", "exec")

    generated = _generated_test(tmp_path, "stock_dms")
    generated.test_the_list_is_read_by_its_column_headers()  # passes as written
    page_html = (tmp_path / "tests" / "pages" / "stock_dms_list.html").read_text(encoding="utf-8")
    rows = read_saved_table("stock_dms", "list", page_html, home=tmp_path)
    assert "list.personal" in f.evidence_mask  # the personal column's cells, masked in screenshots and saved pages
    masked = lxml.html.fromstring(page_html).cssselect(f.selectors["list.personal"].candidates[0].value)
    assert [c.text_content() for c in masked] == [r["buyer"] for r in rows] and len(rows) == 2
    page = tmp_path / "tests" / "pages" / "stock_dms_list.html"
    page.write_text(page.read_text(encoding="utf-8").replace("<th>车型</th>", "<th>型号</th>"), encoding="utf-8")
    with pytest.raises(PageChanged, match="no column 「车型」"):  # and fails when the page drifts
        generated.test_the_list_is_read_by_its_column_headers()

    selectors_text = (tmp_path / "selectors" / "stock_dms.yaml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=r"selectors/stock_dms.yaml 已存在"):
        scaffold(tmp_path, PortalSpec("stock_dms"))
    assert (tmp_path / "dealerbot.toml").read_text(encoding="utf-8") == config  # nothing written
    assert (tmp_path / "selectors" / "stock_dms.yaml").read_text(encoding="utf-8") == selectors_text
    done = dict(scaffold(tmp_path, PortalSpec("stock_dms"), force=True))
    assert done[tmp_path / "dealerbot.toml"] == "保留" and done[tmp_path / "selectors" / "stock_dms.yaml"] == "覆盖"
    assert (tmp_path / "dealerbot.toml").read_text(encoding="utf-8") == config  # its section kept, not doubled


@pytest.mark.parametrize(("spec", "words"), [
    (PortalSpec("Stock"), "门户名 'Stock' 无效"),
    (PortalSpec("dms"), "'dms' 是 dealerbot 自带的门户"),
    (PortalSpec("s", url="dms.example.cn"), "--url 'dms.example.cn'"),
    (PortalSpec("s", columns="vin=车架号,车型"), "'车型' 应写成 字段=列标题"),
    (PortalSpec("s", columns="vin=车架号,vin=VIN"), "字段 'vin' 重复"),
    (PortalSpec("s", columns="vin=车架号", personal="mobile"), "--personal 中的 mobile"),
    (PortalSpec("s", list_path="cars"), "--list-path 'cars'"),
])
def test_bad_init_options_are_named_and_nothing_is_written(tmp_path, spec, words):
    with pytest.raises(ConfigError, match=words):
        scaffold(tmp_path, spec)
    assert not any(tmp_path.iterdir())


def test_a_config_that_is_not_toml_is_named_and_left_alone(tmp_path):
    (tmp_path / "dealerbot.toml").write_text("[run\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="dealerbot.toml: 不是有效的 TOML"):
        scaffold(tmp_path, PortalSpec("s"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dealerbot.toml"]


# What Playwright's codegen wrote (`--target python-async`) for a login and a click on the
# sandbox's used-car platform, captured from a scripted run.
CODEGEN = '''import asyncio
import re
from playwright.async_api import Playwright, async_playwright, expect


async def run(playwright: Playwright) -> None:
    browser = await playwright.chromium.launch(headless=False)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto("http://127.0.0.1:38619/accounts/login/")
    await page.locator("input[name=\\"username\\"]").click()
    await page.locator("input[name=\\"username\\"]").fill("zhihuan01")
    await page.locator("input[name=\\"password\\"]").click()
    await page.locator("input[name=\\"password\\"]").fill("Used@2026!")
    await page.get_by_role("button", name="登录").click()
    await page.get_by_role("link", name=re.compile("登记")).click()
    await page.locator("form").get_by_label("车架号").first.fill("LSV")
    await page.get_by_role("link", name="登记置换车辆").click()
    await page.close()
'''


def test_the_recorded_script_gives_each_locator_once_in_order_without_the_values_typed():
    found = parse_recorded(CODEGEN)
    assert [r.describe() for r in found] == [
        "locator('input[name=\"username\"]')",
        "locator('input[name=\"password\"]')",
        "get_by_role('button', name='登录')",
        "locator('form').get_by_label('车架号').first",
        "get_by_role('link', name='登记置换车辆')",
    ]  # a regex name is skipped (not a literal); clicked then filled: once
    assert "Used@2026!" not in repr(found)
    snippets = ['    await page.get_by_role("button", name="登录").click()', "    async with page.expect_popup() as p:",
                '    await page.get_by_label("车型").fill("x")']
    assert [r.describe() for r in recorded_locators(snippets)] == ["get_by_role('button', name='登录')", "get_by_label('车型')"]


def test_recorded_entries_merge_into_the_file_keeping_every_line_and_never_replacing_a_name(tmp_path):
    path = tmp_path / "usedcars.yaml"
    shutil.copy(ROOT / "examples" / "usedcars" / "selectors" / "usedcars.yaml", path)
    before = path.read_text(encoding="utf-8").splitlines()
    entries = [
        Entry("car.vin", [{"label": "车架号"}], recorded="locator('x')"),                       # the same as there: skipped
        Entry("car.model", [{"label": "车型"}, {"css": "input[name='model']"}], recorded="a"),  # a taken name: _2
        Entry("edit.plate", [{"role": "textbox", "name": "车牌: 号"}, {"css": "#plate"}], recorded="b"),
        Entry("edit.field_1", [], note="recorded as get_by_text('x'): not found", recorded="get_by_text('x')"),
    ]
    merged, said = merge_entries(path, "edit", "/cars/{car_id}/edit/", entries)
    after = merged.splitlines()
    kept = iter(after)
    assert all(line in kept for line in before)  # every comment and entry, in order
    f = load_selector_file(_write(tmp_path / "merged.yaml", merged))
    assert [c.value for c in f.selectors["car.model_2"].candidates] == ["车型", "input[name='model']"]
    assert [(c.kind, c.value, c.name) for c in f.selectors["edit.plate"].candidates] == [
        ("role", "textbox", "车牌: 号"), ("css", "#plate", None)]
    assert "car.vin_2" not in f.selectors and "edit.field_1" not in f.selectors
    assert "  # edit.field_1:" in after  # left for a person to fill in, as a comment
    assert f.endpoints["edit_page"] == "/cars/{car_id}/edit/" and any(s.names == ("edit",) for s in f.screens)
    assert any("car.vin 已有相同的选择，跳过" in line for line in said)
    assert any("新条目命名为 car.model_2" in line for line in said)

    again, _ = merge_entries(_write(path, merged), "edit", "/cars/{car_id}/edit/", entries)
    assert again.count("edit.plate:") == 1 and again.count("edit_page:") == 1  # recorded twice: nothing doubled

    with pytest.raises(ConfigError, match="合并后的选择器文件无法加载"):
        merge_entries(path, "edit", "/x/", [Entry("edit.save", [{"css": "button:has-text('保存')"}])])


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path

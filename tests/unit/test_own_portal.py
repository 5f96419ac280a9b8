"""What a dealership adding its own portal relies on: portals as a named collection, record
types it declares, selector files with tables and expiry, input files, and a public API the
shipped bots use too (pure pieces; the browser side is tests/integration/test_own_portal.py)."""

from __future__ import annotations

import ast
import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import html
from openpyxl import Workbook

from dealerbot.config import load_settings
from dealerbot.data.inputs import read_input
from dealerbot.data.pipeline import pipeline_for
from dealerbot.data.records import Entity, FieldDef, Item
from dealerbot.errors import ConfigError, DataFileError, RecordRejected, SelectorFileError, SessionExpired
from dealerbot.web.html_reader import HtmlReader
from dealerbot.web.locators import load_selector_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "usedcars"


# -- portals as a collection --------------------------------------------------------------------
def _config(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "dealerbot.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def test_a_third_portal_is_configured_by_name_and_overridden_from_the_environment(tmp_path, monkeypatch):
    cfg = _config(tmp_path, '[portals.usedcars]\nurl = "http://127.0.0.1:8703"\nusername = "zhihuan01"\n'
                            'login_fields = {store = "S01"}\n')
    monkeypatch.setenv("DEALERBOT_PORTALS__USEDCARS__URL", "http://127.0.0.1:9903")
    s = load_settings(cfg)
    assert s.portal_names == ["oem", "dms", "usedcars"]
    assert s.portal("usedcars").url == "http://127.0.0.1:9903"  # the environment wins, the file's other keys stay
    assert s.portal("usedcars").username == "zhihuan01" and s.portal("usedcars").login_fields == {"store": "S01"}
    assert s.portal("oem").dealer_code == "D31001"  # the shipped two keep their defaults
    changed = s.with_portal("usedcars", username="other")
    assert changed.portal("usedcars").username == "other" and s.portal("usedcars").username == "zhihuan01"


def test_portals_oem_is_the_same_as_the_oem_section(tmp_path):
    s = load_settings(_config(tmp_path, '[portals.oem]\nurl = "http://127.0.0.1:9001"\n[oem]\nusername = "u2"\n'))
    assert s.portal("oem").url == "http://127.0.0.1:9001" and s.oem.username == "u2" and "oem" not in s.portals
    with pytest.raises(ConfigError, match="portals.oem.url and oem.url differ"):
        load_settings(_config(tmp_path, '[portals.oem]\nurl = "http://a:1"\n[oem]\nurl = "http://b:1"\n'))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[portals.usedcars]\nusername = "x"\n', "portals.usedcars.url"),  # no url: named
        ('[portals.Used-Cars]\nurl = "http://127.0.0.1:1"\n', "lower-case letters"),
        ('[portals.usedcars]\nurl = "http://127.0.0.1:1"\npassword = "x"\n',
         r"\[portals.usedcars\] password.*DEALERBOT_USEDCARS_PASSWORD.*credentials set usedcars"),
        ('[portals.usedcars]\nurl = "http://127.0.0.1:1"\nlogin_fields = {pin_password = "x"}\n',
         r"\[portals.usedcars\] login_fields.pin_password holds a password"),
    ],
)
def test_bad_portal_sections_are_named(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words):
        load_settings(_config(tmp_path, text))


def test_an_unknown_portal_says_how_to_add_it(tmp_path):
    s = load_settings(_config(tmp_path, "[run]\nretries = 1\n"))
    with pytest.raises(ConfigError, match=r"\[portals.cardealer\].*configured: oem, dms"):
        s.portal("cardealer")


# -- record types a user declares ----------------------------------------------------------------
CAR = Entity("used_car", "置换车辆", "vin", (
    FieldDef("vin", "车架号", check="vin"),
    FieldDef("brand", "品牌", required=True),
    FieldDef("reg_date", "上牌日期", "date"),
    FieldDef("price", "评估价", "decimal"),
    FieldDef("owner_mobile", "手机", personal=True, check="mobile"),
))


def test_a_declared_record_type_gets_the_default_pipeline():
    p = pipeline_for(CAR)
    ok = p.process(Item(CAR, {"vin": "LSVB123AXPH900001", "brand": "丰田", "reg_date": "2021-05-06",
                              "price": "86,000.00", "owner_mobile": "139 1234 5678"}))
    assert ok.data["price"] == Decimal("86000.00") and ok.data["reg_date"] == date(2021, 5, 6)
    assert ok.data["owner_mobile"] == "13912345678"  # normalised by its check
    with pytest.raises(RecordRejected, match="品牌"):
        p.process(Item(CAR, {"vin": "LSVB123AXPH900001", "brand": ""}))
    with pytest.raises(RecordRejected) as bad_vin:
        p.process(Item(CAR, {"vin": "LSVB123A0PH900001", "brand": "丰田"}))
    assert bad_vin.value.field == "vin"


def test_a_rejected_key_names_the_rule_and_checks_speak_of_the_field_by_its_header():
    with pytest.raises(RecordRejected) as default_rule:
        pipeline_for(CAR).process(Item(CAR, {"vin": "a.b@example.com", "brand": "丰田"}))
    assert "不符合" in default_rule.value.reason and "只含字母、数字、_ 和 -，最长64位" in default_rule.value.reason
    contact = Entity("contact", "联系人", "email", (FieldDef("email", "Email"), FieldDef("owner", "车主", check="name")),
                     key_pattern=r"[^@\s/]+@[^@\s/]+\.[A-Za-z]{2,}", key_rule="有效的电子邮箱地址")
    assert pipeline_for(contact).process(Item(contact, {"email": "a.b@example.com", "owner": "王伟"})).key == "a.b@example.com"
    with pytest.raises(RecordRejected) as own_rule:
        pipeline_for(contact).process(Item(contact, {"email": "../logout", "owner": "王伟"}))
    assert "Email格式不正确：「../logout」不符合联系人的编号规则（有效的电子邮箱地址" in own_rule.value.reason
    with pytest.raises(RecordRejected) as unnamed:
        pipeline_for(contact).process(Item(contact, {"email": "a@b.cn", "owner": ""}))
    assert unnamed.value.reason == "缺少车主"  # its own header, not the shipped types' 客户姓名
    bare = Entity("contact", "联系人", "email", (FieldDef("email", "Email"),), key_pattern=r"\S+@\S+")
    with pytest.raises(RecordRejected, match=r"须完全匹配 \\S\+@\\S\+"):
        pipeline_for(bare).process(Item(bare, {"email": "nobody"}))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Entity("Used Car", "t", "vin", (FieldDef("vin", "v"),)), "lower-case"),
        (lambda: Entity("used_car", "t", "vin", (FieldDef("no", "v"),)), "key 'vin' is not one of its fields"),
        (lambda: Entity("used_car", "t", "vin", (FieldDef("vin", "v"), FieldDef("vin", "w"))), "appears twice"),
        (lambda: FieldDef("price", "p", "money"), "kind 'money'"),  # type: ignore[arg-type]
        (lambda: Entity("a" * 33, "t", "vin", (FieldDef("vin", "v"),)), "at most 32"),
        (lambda: Entity("contact", "t", "email", (FieldDef("email", "v"),), key_pattern="[a-z"), "key_pattern '\\[a-z' is not a regular expression"),
    ],
)
def test_a_malformed_record_type_is_refused_where_it_is_declared(make, words):
    with pytest.raises(ValueError, match=words):
        make()


# -- selector files: one css dialect, tables, expiry, frames -------------------------------------
def _selectors(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text("portal: x\nendpoints:\n  cars_page: /cars/\nselectors:\n  cars.table:\n    - css: table\n" + body,
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("css", ["button:has-text('保存')", "td:contains('x')", "#a >> .b", "tr:visible", "div[", "text=保存"])
def test_css_that_only_one_engine_reads_is_refused_with_its_line(tmp_path, css):
    path = _selectors(tmp_path, f'  car.save:\n    - css: "{css}"\n')
    with pytest.raises(SelectorFileError, match=r"x.yaml:8: selector 'car.save': css"):
        load_selector_file(path)


def test_tables_expiry_and_frames_are_read_and_checked(tmp_path):
    f = load_selector_file(EXAMPLE / "selectors" / "usedcars.yaml")
    assert f.table("cars").columns[0] == ("vin", "车架号") and f.table("cars").next == "cars.next"
    assert f.expired_paths == ("/404",) and f.spec("notice.guide").candidates[0].frame == "iframe[title='公告']"
    bad = _selectors(tmp_path, "tables:\n  cars:\n    endpoint: nowhere\n    table: cars.table\n    columns: {vin: 车架号}\n")
    with pytest.raises(SelectorFileError, match="x.yaml:9: table 'cars': unknown endpoint 'nowhere'"):
        load_selector_file(bad)
    bad = _selectors(tmp_path, "session_expired:\n  paths: [error]\n")
    with pytest.raises(SelectorFileError, match="paths must be a list of URL paths"):
        load_selector_file(bad)


def test_placeholders_in_css_are_checked_with_a_value_both_words_and_numbers_fit(tmp_path):
    path = _selectors(tmp_path, '  grid.cell:\n    - css: "tr:nth-child({row}) td[data-field=\'{field}\']"\n')
    assert load_selector_file(path).spec("grid.cell").candidates[0].fields() == {"row", "field"}


def test_a_placeholder_called_name_is_a_placeholder(tmp_path):
    path = _selectors(tmp_path, "  brand.option:\n    - css: \"option[data-name='{name}']\"\n")
    reader = HtmlReader(load_selector_file(path))
    root = html.fromstring("<select><option data-name='丰田'>1</option><option data-name='本田'>2</option></select>")
    assert reader.text(root, "brand.option", name="本田") == "2"  # was: TypeError (two values for 'name')


def test_a_declared_expiry_page_means_log_in_again():
    from dealerbot.config import PortalSettings, RunSettings
    from dealerbot.web.portal import PortalSession

    s = PortalSession("usedcars", PortalSettings(url="http://127.0.0.1:8703"), None, None,
                      load_selector_file(EXAMPLE / "selectors" / "usedcars.yaml"), RunSettings())
    with pytest.raises(SessionExpired):
        s.check(404, "http://127.0.0.1:8703/404/?from=/cars/", "http://127.0.0.1:8703/cars/")
    s.check(404, "http://127.0.0.1:8703/404/", "http://127.0.0.1:8703/cars/", expect_login=True)  # the app logs in


# -- input files ---------------------------------------------------------------------------------
def test_input_rows_from_csv_in_gbk_and_from_xlsx(tmp_path):
    gbk = tmp_path / "cars.csv"
    gbk.write_bytes("车架号,品牌\nLSVB123AXPH900001,丰田\n\n".encode("gbk"))
    assert read_input(gbk) == [{"车架号": "LSVB123AXPH900001", "品牌": "丰田"}]
    wb = Workbook()
    wb.active.append(["vin", "reg_date", "price"])
    wb.active.append(["LSVB123AXPH900001", date(2021, 5, 6), 86000.0])
    wb.save(tmp_path / "cars.xlsx")
    assert read_input(tmp_path / "cars.xlsx") == [{"vin": "LSVB123AXPH900001", "reg_date": "2021-05-06", "price": "86000"}]


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([["vin", "vin"], ["a", "b"]], "列名重复"),
        ([["vin", ""], ["a", "b"]], "第 2 行的值多于列名"),
        ([["vin", "", "brand"], ["a", "", "b"]], "第 1 行第 2 列没有列名"),
        ([], "文件为空"),
    ],
)
def test_a_bad_input_file_is_named_with_its_row(tmp_path, rows, words):
    path = tmp_path / "cars.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DataFileError, match=words):
        read_input(path)
    with pytest.raises(DataFileError, match="须为 .csv 或 .xlsx"):
        read_input(path.with_suffix(".txt").resolve()) if path.with_suffix(".txt").write_text("x") else None


# -- the public API ------------------------------------------------------------------------------
def _engine_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dealerbot"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dealerbot")}
    return found


@pytest.mark.parametrize("path", sorted([*ROOT.glob("bots/*.py"), *ROOT.glob("portals/*.py"),
                                         *EXAMPLE.glob("bots/*.py"), *EXAMPLE.glob("portals/*.py")]),
                         ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_bots_and_page_objects_use_only_the_public_api(path):
    assert _engine_imports(path) <= {"dealerbot.api"}, "the shipped portals use what users get: dealerbot.api"


def test_the_project_folder_bots_and_portals_are_found_first(tmp_path):
    from dealerbot.running.registry import discover, discover_portals

    for part in ("bots", "portals"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "portals" / "dmsx_test_portal.py").write_text(
        "from dealerbot.api import PortalApp\n\nclass MyDms(PortalApp):\n    name = 'dms'\n", encoding="utf-8")
    (tmp_path / "bots" / "mine_test_bot.py").write_text(
        "from dealerbot.api import Bot\n\nclass Mine(Bot):\n    name = 'mine'\n    portal = 'usedcars'\n"
        "    description = 'x'\n\n    async def run(self, ctx):\n        pass\n", encoding="utf-8")
    try:
        bots = discover(home=tmp_path)
        assert {"mine", "oem-orders", "dms-rekey"} <= set(bots)
        with pytest.raises(ConfigError, match="two page-object apps claim portal 'dms'"):
            discover_portals(tmp_path)
    finally:
        import sys

        for name in ("bots.mine_test_bot", "portals.dmsx_test_portal"):
            sys.modules.pop(name, None)
        discover(home=ROOT)  # the packages' search path back to the shipped folders only


# -- header tables: paging ends, row headers count ---------------------------------------------
class _FakeSession:
    """Just what HeaderTable reads: pages served from a dict by URL."""

    def __init__(self, pages: dict[str, str]) -> None:
        from dealerbot.config import PortalSettings

        self.pages, self.name, self.fetched = pages, "x", []
        self.settings = PortalSettings(url="http://portal.test")
        self.selectors = load_selector_file(EXAMPLE / "selectors" / "usedcars.yaml")
        self.html = HtmlReader(self.selectors)

    def url(self, target: str, params=None) -> str:
        base = "http://portal.test/cars/" if target == "cars_page" else target
        return base + (f"?q={params['q']}" if params else "")

    async def fetch_html(self, target: str, params=None, patient: bool = False):
        url = self.url(target, params)
        self.fetched.append(url)
        return html.fromstring(self.pages[url])


def _page(rows: list[tuple[str, str]], next_href: str | None, row_header: bool = False) -> str:
    cell = "th" if row_header else "td"
    body = "".join(f"<tr><{cell}>{v}</{cell}><td>{b}</td></tr>" for v, b in rows)
    nav = f"<ul class='pagination'><li class='next'><a href='{next_href}'>下一页</a></li></ul>" if next_href else ""
    return f"<table class='table'><thead><tr><th>车架号</th><th>品牌</th></tr></thead><tbody>{body}</tbody></table>{nav}"


def _table(pages: dict[str, str]):
    from dealerbot.pages.common import HeaderTable
    from dealerbot.web.locators import TableSpec

    t = HeaderTable(_FakeSession(pages), "cars")  # type: ignore[arg-type]
    t.spec = TableSpec("cars", "cars_page", "cars.table", (("vin", "车架号"), ("brand", "品牌")), "cars.next")
    return t


async def test_a_next_link_back_to_the_start_or_on_an_empty_page_ends_the_list():
    base = "http://portal.test/cars/"
    t = _table({base: _page([("V1", "大众")], "?page=2"), base + "?page=2": _page([("V2", "丰田")], base)})
    assert [r["vin"] async for rows in t.rows() for r in rows] == ["V1", "V2"]  # page 1 is not read twice
    t = _table({base: _page([("V1", "大众")], "?page=2"), base + "?page=2": _page([], "?page=3")})
    assert [r["vin"] async for rows in t.rows() for r in rows] == ["V1"]  # an empty page ends it
    assert t.s.fetched == [base, base + "?page=2"]


async def test_find_without_a_search_reads_every_page_and_row_headers_count():
    base = "http://portal.test/cars/"
    t = _table({base: _page([("V1", "大众")], "?page=2", row_header=True), base + "?page=2": _page([("V2", "丰田")], None)})
    assert (await t.find("vin", "v2")) == {"vin": "V2", "brand": "丰田"}  # on page 2
    assert (await t.find("vin", "V1"))["brand"] == "大众"  # the VIN cell is a <th>


def test_the_environment_wins_over_the_file_whichever_spelling_each_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("DEALERBOT_PORTALS__OEM__URL", "http://127.0.0.1:9101")
    s = load_settings(_config(tmp_path, '[oem]\nurl = "http://127.0.0.1:9001"\nusername = "u1"\n'))
    assert s.portal("oem").url == "http://127.0.0.1:9101" and s.oem.username == "u1"
    monkeypatch.delenv("DEALERBOT_PORTALS__OEM__URL")
    monkeypatch.setenv("DEALERBOT_OEM__URL", "http://127.0.0.1:9102")
    s = load_settings(_config(tmp_path, '[portals.oem]\nurl = "http://127.0.0.1:9001"\n'))
    assert s.portal("oem").url == "http://127.0.0.1:9102"

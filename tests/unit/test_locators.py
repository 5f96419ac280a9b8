"""Selector files: loaded, validated, and every error names the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import html

from dealerbot.errors import PageChanged, SelectorFileError, UnknownSelector
from dealerbot.web.html_reader import HtmlReader
from dealerbot.web.locators import load_portal_selectors, load_selector_file

ROOT = Path(__file__).resolve().parents[2]


def test_selectors_folder_is_data_only():
    # A selectors package would shadow the stdlib module that asyncio (and Playwright) import.
    assert not (ROOT / "selectors" / "__init__.py").exists()
    import selectors as stdlib_selectors

    assert hasattr(stdlib_selectors, "DefaultSelector")


@pytest.mark.parametrize("portal", ["oem", "dms"])
def test_shipped_selector_files_are_valid(portal):
    f = load_portal_selectors(portal, ROOT / "selectors")
    assert f.portal == portal and f.screens and "login.password" in f.selectors
    assert f.endpoint("login") == "/login"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "x.yaml"
    p.write_text(text, encoding="utf-8")
    return p


_OUTCOMES = ("portal: x\nselectors:\n  a.save: {role: button, name: 保存}\n  a.ok: {css: '.ok'}\n"
             "  a.lbl: {label: 下一页}\n")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("portal: x\nselectors:\n  a.b:\n    - xpath: //div\n", 4, "unknown key 'xpath'"),
        ("portal: x\nselectors:\n  a.b:\n    - css: '#a'\n      label: A\n", 4, "exactly one type"),
        ("portal: x\nselectors:\n  a.b: []\n", 3, "non-empty list"),
        ("portal: x\nselectors:\n  a.b:\n    - css: ''\n", 4, "non-empty text"),
        ("selectors:\n  a.b:\n    - css: '#a'\n", 1, "missing top-level key 'portal'"),
        ("portal: x\nselectorz: {}\n", 2, "unknown top-level key 'selectorz'"),
        ("portal: x\nselectors:\n  a.b:\n    - css: '#a'\n  a.b:\n    - css: '#b'\n", 5, "defined twice"),
        ("portal: x\nselectors:\n  a.b:\n    - label: A\n      name: B\n", 4, "'name' only goes with 'role'"),
        ("portal: x\nselectors:\n  a.b:\n    - css: '#a'\nevidence_mask: [a.c]\n", 5, "unknown selector 'a.c'"),
        ("portal: x\nselectors:\n  a.b: [css: '#a'\n", 4, "not valid YAML"),
        ("portal: x\nselectors:\n  a.b:\n    - css: '#a'\nscreens:\n  - {names: [zz], endpoint: login}\n", 6, "no selector name starts with 'zz.'"),
        (_OUTCOMES + "outcomes:\n  a.save:\n    success: [{selector: a.gone}]\n", 8, "unknown selector 'a.gone'"),
        (_OUTCOMES + "outcomes:\n  a.save:\n    success: [{toast: ok}]\n", 8, "a signal is one of"),
        (_OUTCOMES + "outcomes:\n  a.save:\n    failure: [{text: 失败}]\n", 8, "with success: [signals]"),
        (_OUTCOMES + "outcomes:\n  a.save:\n    success: [{response: {url: /api, status: ok}}]\n", 8, "an HTTP status"),
        (_OUTCOMES + "outcomes:\n  a.nope:\n    success: [{text: 好}]\n", 7, "'a.nope' is not a selector"),
        (_OUTCOMES + "endpoints: {l: /l}\ntables:\n  t: {endpoint: l, table: a.ok, columns: {v: V}, empty: none}\n", 8,
         "empty must be 'no_rows'"),
        (_OUTCOMES + "endpoints: {l: /l}\ntables:\n  t: {endpoint: l, table: a.ok, columns: {v: V}, next: a.lbl}\n", 8,
         "needs a css, text or role (link/button) choice"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, text, line, words):
    path = _write(tmp_path, text)
    with pytest.raises(SelectorFileError) as err:
        load_selector_file(path)
    assert str(err.value).startswith(f"{path}:{line}:"), str(err.value)
    assert words in str(err.value)


def test_unknown_name_lists_close_names(tmp_path):
    f = load_selector_file(_write(tmp_path, "portal: x\nselectors:\n  login.user:\n    - css: '#u'\n  login.pw:\n    - css: '#p'\n"))
    with pytest.raises(UnknownSelector, match=r"no selector named 'login.password'.*login.pw, login.user"):
        f.spec("login.password")
    with pytest.raises(UnknownSelector):
        f.require(["login.user", "login.nope"])


def test_html_reader_falls_back_and_fills_placeholders(tmp_path):
    f = load_selector_file(_write(tmp_path, (
        "portal: x\nselectors:\n  d.field:\n    - css: \"#new dd[data-field='{field}']\"\n"
        "    - css: \"#old dd[data-field='{field}']\"\n"
    )))
    root = html.fromstring("<div id='old'><dl><dd data-field='vin'> LVSHCAMB1CE054249 </dd></dl></div>")
    warnings: list[str] = []

    class Log:
        def warning(self, msg, *args):
            warnings.append(msg.format(*args))

    reader = HtmlReader(f, log=Log())
    assert reader.text(root, "d.field", field="vin") == "LVSHCAMB1CE054249"
    assert reader.text(root, "d.field", field="vin") == "LVSHCAMB1CE054249"
    assert len(warnings) == 1 and "fallback #2" in warnings[0]  # warned once, not per record
    with pytest.raises(PageChanged, match="field=price"):
        reader.text(root, "d.field", field="price")
    assert reader.text(root, "d.field", required=False, field="price") == ""


DETAIL = """<div id='order'><dl>
  <dt>VIN</dt><dd data-field='vin'> LVSHCAMB1CE054249 </dd>
  <dd data-field='price'>199,800</dd><dd data-field='price'>second</dd>
  <span class='x' data-field='color'>白色</span><dd data-field='color'>珍珠白</dd>
</dl></div><div id='legacy'><p data-f='mobile'>139 0000 1234</p></div>"""


@pytest.mark.parametrize("first", [
    "#order dd[data-field='{field}']",  # read in one pass
    "#order dd[data-field=\"{field}\"]",  # the same, double quotes
    "#order [data-field='{field}']:not(span), #nothing",  # a selector list: one pass per field
    "div[id='order'] dd:not([data-field='none{field}'])",  # the placeholder elsewhere
    "dl:not([x]) dd:not([data-field='{field}'])",  # inside :not(): a test of the same element, negated
])
def test_reading_many_fields_at_once_answers_as_reading_each(tmp_path, first):
    f = load_selector_file(_write(tmp_path, (
        f"portal: x\nselectors:\n  d.field:\n    - css: {json.dumps(first)}\n"
        "    - css: \"#legacy p[data-f='{field}']\"\n"
    )))
    root = html.fromstring(DETAIL)
    warned: list[str] = []

    class Log:
        def warning(self, msg, *args):
            warned.append(msg.format(*args))

    fields = ["vin", "price", "color", "mobile"]
    one_by_one = HtmlReader(f, log=Log())
    expected = {v: one_by_one.text(root, "d.field", required=False, field=v) for v in fields}
    warned_each = list(warned)
    warned.clear()
    at_once = HtmlReader(f, log=Log()).texts(root, "d.field", "field", fields, required=False)
    assert at_once == expected
    assert len(warned) == len(warned_each)  # a fallback that matched warns once either way
    if not one_by_one.text(root, "d.field", required=False, field="gone"):
        with pytest.raises(PageChanged, match="field=gone"):
            HtmlReader(f, log=Log()).texts(root, "d.field", "field", [*fields, "gone"])


@pytest.mark.parametrize("portal", ["oem", "dms"])
def test_shipped_selector_files_have_every_name_the_page_objects_use(portal):
    import importlib

    used = importlib.import_module(f"portals.{portal}").SELECTORS_USED
    load_portal_selectors(portal, ROOT / "selectors").require(used)  # raises naming a missing one


def test_hostile_selector_files_are_refused_with_file_and_line(tmp_path):
    """An alias bomb once took 2.2 GB from a 3.9 KB file; a repeated key silently replaced the first."""
    cases = {
        "bomb.yaml": ('portal: x\nselectors:\n  a: &a [{css: "#a"}, {css: "#a"}]\n  b: [*a, *a]\n', "anchors and aliases"),
        "twice.yaml": ('portal: x\nselectors:\n  a: [{css: "#a"}]\nportal: y\n', "'portal' appears twice"),
        "endpoints.yaml": ('portal: x\nselectors:\n  a: [{css: "#a"}]\nendpoints:\n  login: /login\n  login: /signin\n',
                           "endpoint 'login' is defined twice"),
    }
    for name, (text, words) in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(SelectorFileError, match=words) as err:
            load_selector_file(tmp_path / name)
        assert f"{tmp_path / name}:" in str(err.value)
    gbk = tmp_path / "gbk.yaml"
    gbk.write_bytes('portal: x\ntitle: 经销商管理系统\nselectors:\n  a: [{css: "#a"}]\n'.encode("gbk"))
    with pytest.raises(SelectorFileError, match=r"gbk.yaml:2: the file is not UTF-8"):
        load_selector_file(gbk)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"portal: x\nselectors:\n  a: [{css: '#a'}]\n# " + b"x" * 2_000_000)
    with pytest.raises(SelectorFileError, match="too large"):
        load_selector_file(huge)


def test_a_working_folder_selectors_file_replaces_only_its_own_portal(tmp_path, monkeypatch):
    from dealerbot.web.locators import portal_selectors_path, shipped_selectors_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "selectors").mkdir()
    own = tmp_path / "selectors" / "dms.yaml"
    own.write_text((shipped_selectors_dir() / "dms.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert portal_selectors_path("dms") == own  # the dealership's adjusted copy
    assert portal_selectors_path("oem") == shipped_selectors_dir() / "oem.yaml"  # not hidden by it
    assert load_portal_selectors("oem").portal == "oem"


def test_outcomes_and_empty_tables_load_as_declared(tmp_path):
    f = load_selector_file(_write(tmp_path, _OUTCOMES + (
        "endpoints: {l: /l, api: /api/cars}\n"
        "tables:\n  t: {endpoint: l, table: a.ok, columns: {v: V}, next: a.save, empty: no_rows}\n"
        "outcomes:\n  a.save:\n    success: [{selector: a.ok}, {text: 保存成功}, {response: {url: api, status: [200, 201]}}]\n"
        "    failure: [{response: /api/cars}]\n")))
    assert f.tables["t"].empty == "no_rows" and f.tables["t"].next == "a.save"
    out = f.outcomes["a.save"]
    assert [(s.kind, s.value, s.status) for s in out.success] == [
        ("selector", "a.ok", ()), ("text", "保存成功", ()), ("response", "api", (200, 201))]
    assert [(s.kind, s.value) for s in out.failure] == [("response", "/api/cars")]


def test_fetched_pages_find_a_link_by_its_role_or_words(tmp_path):
    f = load_selector_file(_write(tmp_path, (
        "portal: x\nselectors:\n  by.role:\n    - role: link\n      name: 下一页\n  by.text:\n    - text: 下一页\n"
        "  by.exact:\n    - text: 0 辆车\n      exact: true\n  by.none:\n    - role: link\n      name: 上一页\n")))
    root = html.fromstring(
        "<html><head><title>下一页</title><script>var t = '下一页 0 辆车';</script></head><body>"
        "<p>第 1/3 页 <a href='?p=2'><span>下一页</span></a></p><a>下一页</a><p>共 10 辆车</p><p> 0  辆车 </p></body></html>")
    reader = HtmlReader(f)
    assert [el.get("href") for el in reader.find_any(root, "by.role")] == ["?p=2"]  # <a> without href is no link
    assert [el.tag for el in reader.find_any(root, "by.text")] == ["span", "a"]  # innermost; not the title or script
    assert [el.text_content() for el in reader.find_any(root, "by.exact")] == [" 0  辆车 "]
    assert reader.find_any(root, "by.none") == []

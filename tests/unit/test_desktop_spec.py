"""The desktop client's screen file: loaded, validated, and every error names the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dealerbot.desktop.spec import load_desktop_spec
from dealerbot.errors import SelectorFileError, UnknownSelector
from portals.dms_desktop import parse_rows

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_desktop_screens_are_valid():
    spec = load_desktop_spec(ROOT / "selectors" / "dms_desktop.yaml")
    assert spec.form("contract").fields[0] == "customer_no" and spec.keys("new_contract") == ("ctrl+n",)
    assert spec.anchors["search_button"].image.is_file() and spec.anchors["search_button"].confidence == 0.9
    assert ("^提示$", ("enter",)) in spec.nuisances and spec.masks["customer_new"]
    with pytest.raises(UnknownSelector, match="no window named 'nowhere'"):
        spec.window("nowhere")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("kind: web\nwindows: {main: x}\n", r":2: kind must be 'desktop'"),
        ("kind: desktop\nwindows: {main: '('}\n", r":3: window 'main': not a valid title pattern"),
        ("kind: desktop\nwindows: {main: x}\nhotkeys:\n  save: [ctrl-s]\n", r":5: hotkey save: 'ctrl-s' is not a key"),
        ("kind: desktop\nwindows: {main: x}\nanchors:\n  b: {image: nope.png}\n", r":5: anchor 'b': image .*nope.png is not a PNG"),
        ("kind: desktop\nwindows: {main: x}\nmasks:\n  form: [[1, 2, 3, 4]]\n", r":5: masks: no window named 'form'"),
        ("kind: desktop\nwindows: {main: x}\nmasks:\n  main: [[1, 2, 3]]\n", r":5: masks of 'main' must be a list of"),
    ],
)
def test_a_malformed_screen_file_names_the_line(tmp_path, body, words):
    path = tmp_path / "d.yaml"
    path.write_text("portal: d\n" + body, encoding="utf-8")
    with pytest.raises(SelectorFileError, match=words):
        load_desktop_spec(path)


def test_a_copied_row_is_read_back_field_by_field():
    assert parse_rows("contract_no=HT1\tcustomer_name=王小明\tprice=1,000.00\ncontract_no=HT2\n") == [{
        "contract_no": "HT1", "customer_name": "王小明", "price": "1,000.00"}, {"contract_no": "HT2"}]
    assert parse_rows("") == []

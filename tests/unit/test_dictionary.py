"""The data dictionary: the shipped file loads; every mistake names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dealerbot.data.dictionary import load_dictionary
from dealerbot.errors import DataFileError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "dictionary.yaml"


def test_the_shipped_dictionary_maps_the_sandbox_and_never_guesses():
    d = load_dictionary(SHIPPED)
    assert d.lookup("models", "GX7-25T-LUX") == "DMS-GX7L"
    assert d.lookup("models", " GX7-25T-LUX ") == "DMS-GX7L"
    assert d.lookup("models", "EV9-AWD-LTD") is None  # launched after the file was written
    assert d.lookup("statuses", "在途") == "运输中"
    assert d.dms_statuses[-1] == "已取消" and d.status_order[0] == "待配车"
    assert d.contract["vin"].update == "fill_empty" and d.contract["price"].update == "never"
    assert d.fields_from("customer") == {"city"}


def test_a_missing_dictionary_names_the_shipped_one_to_copy(tmp_path):
    """An installed wheel has no checkout to copy from: the message gives the shipped file's path."""
    from dealerbot.resources import shipped_dir

    with pytest.raises(DataFileError) as err:
        load_dictionary(tmp_path / "dictionary.yaml")
    shipped = shipped_dir() / "dictionary.yaml"
    assert str(tmp_path / "dictionary.yaml") in str(err.value) and f"copy {shipped}" in str(err.value)
    assert shipped.is_file()


def _write(tmp_path: Path, text: str, name: str = "dictionary.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    return _write(tmp_path, text.replace(old, new, 1))


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("old", "new", "needle", "words"), [
    ("  GX3-15T-LUX: DMS-GX3L", "  GX3-15T-LUX:", "GX3-15T-LUX:", "has no DMS value"),
    ("  曜石黑: 曜石黑", "  曜石黑: 曜石黑\n  曜石黑: 黑色", "曜石黑: 黑色", "appears twice"),
    ("  vin:           {from: order.vin, update: fill_empty}",
     "  vin:           {from: order.vim, update: fill_empty}", "order.vim", "names no OEM field"),
    ("  price:         {from: order.price, update: never}",
     "  price:         {from: order.price, update: sometimes}", "sometimes", "update"),
    ("status_order: [待配车, 已配车, 运输中, 待交车, 已交车]",
     "status_order: [待配车, 已配车, 运输中, 已交车]", "已到店: 待交车", "status_order"),
    ("models:  ", "modles:  ", "modles", "unknown key"),
    # Values of the wrong type: never turned into text ("['DMS-GX7L', 'x']" as a model code).
    ("  GX7-25T-LUX: DMS-GX7L", "  GX7-25T-LUX: [DMS-GX7L, x]", "GX7-25T-LUX:", "不能是列表"),
    ("  GX7-25T-LUX: DMS-GX7L", "  GX7-25T-LUX:\n    dms: DMS-GX7L", "GX7-25T-LUX:", "不能是键值表"),
    ("  赤焰红: 赤焰红", "  赤焰红: [赤焰红]", "赤焰红: [", "colors: '赤焰红'"),
    ("  在途: 运输中", "  在途: {运输中: 1}", "在途:", "statuses: '在途'"),
    ("  GX7-25T-LUX: DMS-GX7L", "  GX7-25T-LUX: yes", "GX7-25T-LUX:", "put it in quotes"),
    ("  GX7-25T-LUX: DMS-GX7L", "  GX7-25T-LUX: 0123", "GX7-25T-LUX:", "YAML 把 0123 读作数字"),
    ("  GX7-25T-LUX: DMS-GX7L", "  GX7-25T-LUX: 1.50", "GX7-25T-LUX:", "put it in quotes"),
    ("  珍珠白: 珍珠白", "  no: 珍珠白", "no: 珍珠白", "YAML 把键 no 读作 False"),
    ("status_order: [待配车, 已配车, 运输中, 待交车, 已交车]",
     "status_order: [待配车, 已配车, 运输中, 待交车, [已交车]]", "status_order:", "status_order.4"),
    ("cancelled_status: 已取消", "cancelled_status: [已取消]", "cancelled_status:", "cancelled_status"),
    ('  deposit:       {value: "0", update: never}', '  deposit:       {value: [0], update: never}',
     "deposit:", "contract.deposit.value"),
    ("version: 1", "version: true", "version:", "version"),
])
def test_mistakes_name_the_file_and_line(tmp_path, old, new, needle, words):
    path = _variant(tmp_path, old, new)
    with pytest.raises(DataFileError) as err:
        load_dictionary(path)
    message = str(err.value)
    assert words in message
    assert f"{path}:" in message
    line = int(message.split(f"{path}:")[1].split(":")[0])
    assert abs(line - _line_of(path, needle)) <= 1, message


def test_hostile_and_broken_files_are_refused_clearly(tmp_path):
    bomb = _write(tmp_path, 'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: [*b, *b]\n', "bomb.yaml")
    with pytest.raises(DataFileError, match="anchors and aliases"):
        load_dictionary(bomb)
    gbk = tmp_path / "gbk.yaml"
    gbk.write_bytes(SHIPPED.read_text(encoding="utf-8").encode("gbk", errors="replace"))
    with pytest.raises(DataFileError, match="not UTF-8"):
        load_dictionary(gbk)
    with pytest.raises(DataFileError, match="missing"):
        load_dictionary(tmp_path / "nope.yaml")
    with pytest.raises(DataFileError, match="not valid YAML"):
        load_dictionary(_write(tmp_path, "models: [\n", "broken.yaml"))
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"# " + b"x" * 3_000_000 + b"\n")
    with pytest.raises(DataFileError, match="too large"):
        load_dictionary(huge)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + SHIPPED.read_bytes())  # Notepad's BOM is fine
    assert load_dictionary(bom).lookup("models", "EV6-LR-PRO") == "DMS-EV6P"


def test_a_store_adds_its_own_entries_over_the_groups_dictionary(tmp_path):
    own = _write(tmp_path, "models:\n  EV9-AWD-LTD: DMS-EV9L   # sold only at this store\n  GX7-25T-LUX: PD-GX7L\n",
                 "dictionary-S01.yaml")
    d = load_dictionary(SHIPPED, own)
    assert d.lookup("models", "EV9-AWD-LTD") == "DMS-EV9L" and d.lookup("models", "GX7-25T-LUX") == "PD-GX7L"
    assert d.lookup("models", "GX3-15T-STD") == "DMS-GX3S" and d.lookup("statuses", "在途") == "运输中"
    bad = _write(tmp_path, "models:\n  X: DMS-X\nstatus_order: [待配车]\n", "bad.yaml")
    with pytest.raises(DataFileError, match=r"bad\.yaml:3: a store's dictionary holds models, colors, statuses, followup_results only"):
        load_dictionary(SHIPPED, bad)
    unknown = _write(tmp_path, "statuses:\n  在途: 运输途中\n", "statuses-S01.yaml")
    with pytest.raises(DataFileError, match=r"statuses-S01\.yaml:2: statuses: 在途 -> 运输途中"):
        load_dictionary(SHIPPED, unknown)  # named in the store's file, where the mistake is
    empty = _write(tmp_path, "colors:\n  珍珠白: ''\n", "empty.yaml")
    with pytest.raises(DataFileError, match=r"empty\.yaml:2: colors: '珍珠白' has no DMS value"):
        load_dictionary(SHIPPED, empty)


def test_a_value_that_is_text_as_written_is_kept_as_written(tmp_path):
    d = load_dictionary(_variant(tmp_path, "  GX7-25T-LUX: DMS-GX7L", '  GX7-25T-LUX: 101\n  "0123": "0456"'))
    assert d.lookup("models", "GX7-25T-LUX") == "101" and d.lookup("models", "0123") == "0456"


def test_a_stores_dictionary_with_a_value_of_the_wrong_type_is_refused_in_its_own_file(tmp_path):
    for text, line, words in (
        ("models:\n  EV9-AWD-LTD: DMS-EV9L\n  GX7-25T-LUX: [DMS-GX7L, x]\n", 3, "不能是列表"),
        ("colors:\n  珍珠白: {a: b}\n", 2, "不能是键值表"),
        ("statuses:\n  在途: on\n", 2, "put it in quotes"),
        ("models:\n  off: DMS-X\n", 2, "YAML 把键 off"),
    ):
        own = _write(tmp_path, text, "dictionary-S01.yaml")
        with pytest.raises(DataFileError) as err:
            load_dictionary(SHIPPED, own)
        assert f"{own}:{line}:" in str(err.value) and words in str(err.value), str(err.value)

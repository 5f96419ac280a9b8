"""Tests for dealerbot.review.workbook: read every workbook back with openpyxl."""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hostile_xlsx import (
    billion_laughs,
    corrupt_deflate,
    external_entity,
    hidden_entities,
    lying_sizes,
    many_members,
    ods_file,
    xls_file,
    zip_bomb,
)
from openpyxl import load_workbook

from dealerbot.review.untrusted import MAX_MEMBERS, MAX_SHARED_STRINGS_BYTES, open_xlsx, xlsx_rows
from dealerbot.review.workbook import (
    CellIssue,
    Column,
    Row,
    Sheet,
    WorkbookStats,
    is_formula_like,
    safe_text,
    write_workbook,
)

COLUMNS = [
    Column("name", "客户姓名"),
    Column("phone", "手机号"),
    Column("qty", "数量", "int"),
    Column("amount", "金额", "decimal"),
    Column("delivery", "交车日期", "date"),
    Column("scraped", "抓取时间", "datetime"),
    Column("paid", "已付款", "bool"),
]
HEADERS = [c.header for c in COLUMNS] + ["校验结果", "问题说明"]

FORMULA_LIKE = [
    '=HYPERLINK("http://x","点")',
    "+86 138",
    "-1",
    "@SUM(A1)",
    "\tcmd",
    "\rcmd",
]

RED, YELLOW, GREEN = "FFC7CE", "FFEB9C", "C6EFCE"


def _rgb(cell) -> str | None:
    """Solid fill colour of a cell as RRGGBB, or None when unfilled."""
    if cell.fill is None or cell.fill.fill_type != "solid":
        return None
    return cell.fill.fgColor.rgb[-6:]


def _sheet_xml(path: Path, title: str) -> str:
    """Raw XML of the worksheet called ``title``."""
    wb = load_workbook(path, read_only=True)
    index = wb.sheetnames.index(title) + 1
    wb.close()
    with zipfile.ZipFile(path) as zf:
        return zf.read(f"xl/worksheets/sheet{index}.xml").decode("utf-8")


def _cell_xml(sheet_xml: str, ref: str) -> str:
    m = re.search(rf'<c r="{ref}"[^>]*?(?:/>|>.*?</c>)', sheet_xml, re.S)
    assert m, f"cell {ref} not found"
    return m.group(0)


def _basic_rows() -> list[Row]:
    return [
        Row(
            values={
                "name": "张三",
                "phone": "13812345678",
                "qty": 3,
                "amount": Decimal("1234.50"),
                "delivery": date(2026, 1, 2),
                "scraped": datetime(2026, 11, 25, 8, 30, 15),
                "paid": True,
            }
        ),
        Row(
            values={"name": "李四", "phone": "13912345678", "qty": 0, "amount": Decimal("0"), "paid": False},
            issues={"phone": CellIssue("repaired", "已修正，原值 139 1234 5678")},
        ),
        Row(
            values={"name": "王五", "phone": "12345", "qty": 1},
            issues={
                "phone": CellIssue("flag", "号码位数不足"),
                "amount": CellIssue("reject", "金额缺失"),
            },
            row_issues=[CellIssue("flag", "疑似重复记录")],
        ),
        Row(values={"name": "赵六"}, row_issues=[CellIssue("flag", "疑似重复记录")]),
    ]


@pytest.fixture
def basic_book(tmp_path: Path) -> tuple[Path, WorkbookStats]:
    path = tmp_path / "review.xlsx"
    stats = write_workbook(
        path,
        [("运行编号", "20261125-083000"), ("开始时间", datetime(2026, 11, 25, 8, 30)), ("订单数", 487)],
        [Sheet("客户", COLUMNS, iter(_basic_rows()))],
    )
    return path, stats


# --- structure and typed values --------------------------------------------


def test_stats_and_sheet_order(basic_book):
    path, stats = basic_book
    assert stats.path == path
    assert stats.rows == {"客户": 4}
    wb = load_workbook(path)
    assert wb.sheetnames == ["概要", "客户"]


def test_summary_sheet(basic_book):
    path, _ = basic_book
    ws = load_workbook(path)["概要"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows == [
        ("项目", "内容"),
        ("运行编号", "20261125-083000"),
        ("开始时间", datetime(2026, 11, 25, 8, 30)),
        ("订单数", 487),
    ]
    assert ws["A2"].font.bold and ws["A4"].font.bold
    assert ws["B3"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws["B4"].data_type == "n"
    # widths fit the longest label/value (CJK counts double)
    assert ws.column_dimensions["A"].width >= 8
    assert ws.column_dimensions["B"].width >= len("2026-11-25 08:30:00")


def test_header_row_style_freeze_and_filter(basic_book):
    path, _ = basic_book
    ws = load_workbook(path)["客户"]
    assert [c.value for c in ws[1]] == HEADERS
    for cell in ws[1]:
        assert cell.font.bold
        assert cell.font.color.rgb[-6:] == "FFFFFF"
        assert _rgb(cell) == "1F4E78"
        assert cell.alignment.horizontal == "center"
        assert cell.alignment.wrap_text
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:I5"


def test_values_round_trip_with_types_and_formats(basic_book):
    path, _ = basic_book
    ws = load_workbook(path)["客户"]
    name, phone, qty, amount, delivery, scraped, paid = ws[2][:7]

    assert (name.value, name.data_type) == ("张三", "s")
    assert (phone.value, phone.data_type) == ("13812345678", "s")
    assert (qty.value, qty.data_type) == (3, "n")
    assert isinstance(qty.value, int)
    assert amount.data_type == "n" and amount.value == pytest.approx(1234.5)
    assert amount.number_format == "#,##0.00"
    assert delivery.is_date and delivery.number_format == "yyyy-mm-dd"
    assert delivery.value == datetime(2026, 1, 2)
    assert scraped.is_date and scraped.number_format == "yyyy-mm-dd hh:mm:ss"
    assert scraped.value == datetime(2026, 11, 25, 8, 30, 15)
    assert (paid.value, paid.data_type) == ("是", "s")
    assert ws["G3"].value == "否"
    # missing values are empty cells
    assert ws["E3"].value is None and ws["F4"].value is None


def test_column_widths(basic_book):
    path, _ = basic_book
    dims = load_workbook(path)["客户"].column_dimensions
    widths = {letter: dims[letter].width for letter in "ABCDEFGHI"}
    assert widths["F"] >= len("2026-11-25 08:30:15")  # datetime
    assert widths["E"] >= len("2026-01-02")  # date
    assert widths["I"] > widths["H"]  # 问题说明 is wide
    assert all(w and w > 0 for w in widths.values())


def test_explicit_width_is_used(tmp_path):
    path = tmp_path / "w.xlsx"
    write_workbook(path, [], [Sheet("表", [Column("a", "备注", width=42.5)], [])])
    assert load_workbook(path)["表"].column_dimensions["A"].width == 42.5


# --- issues -------------------------------------------------------------------


def test_issue_status_and_detail_texts(basic_book):
    path, _ = basic_book
    ws = load_workbook(path)["客户"]
    status = [ws.cell(row=r, column=8).value for r in range(2, 6)]
    detail = [ws.cell(row=r, column=9).value for r in range(2, 6)]
    assert status == ["通过", "已修正", "拒绝", "需核对"]
    assert detail[0] is None
    assert detail[1] == "手机号：已修正，原值 139 1234 5678"
    assert detail[2] == "手机号：号码位数不足；金额：金额缺失；疑似重复记录"
    assert detail[3] == "疑似重复记录"


def test_issue_highlight_fills(basic_book):
    path, _ = basic_book
    ws = load_workbook(path)["客户"]
    # row 2: clean
    assert all(_rgb(c) is None for c in ws[2][:8])
    # row 3: repaired phone
    assert _rgb(ws["B3"]) == GREEN and _rgb(ws["H3"]) == GREEN
    assert _rgb(ws["A3"]) is None
    # row 4: flagged phone, rejected (empty) amount, worst = reject
    assert _rgb(ws["B4"]) == YELLOW
    assert _rgb(ws["D4"]) == RED
    assert ws["D4"].font.color.rgb[-6:] == "9C0006"  # dark red text
    assert _rgb(ws["H4"]) == RED and ws["H4"].font.color.rgb[-6:] == "9C0006"
    # row 5: row-level flag only colours the status cell
    assert _rgb(ws["H5"]) == YELLOW
    assert all(_rgb(c) is None for c in ws[5][:7])
    # number formats are kept on highlighted cells
    assert ws["D4"].number_format == "#,##0.00"


def test_styles_are_shared_not_per_cell(tmp_path):
    path = tmp_path / "s.xlsx"
    rows = (
        Row({"a": f"x{i}", "b": i}, issues={"a": CellIssue("flag", "待查")} if i % 2 else {})
        for i in range(500)
    )
    write_workbook(path, [], [Sheet("表", [Column("a", "甲"), Column("b", "乙", "int")], rows)])
    wb = load_workbook(path)
    assert len(wb._cell_styles) < 30  # a handful of xfs, not one per cell
    assert len(wb._fills) < 10


def test_unknown_issue_key_raises(tmp_path):
    path = tmp_path / "u.xlsx"
    rows = [Row({"a": "x"}, issues={"nope": CellIssue("flag", "?")})]
    with pytest.raises(ValueError, match="nope"):
        write_workbook(path, [], [Sheet("表", [Column("a", "甲")], rows)])
    assert list(tmp_path.iterdir()) == []


def test_invalid_severity_and_kind_raise():
    with pytest.raises(ValueError, match="severity"):
        CellIssue("fatal", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        Column("a", "甲", "money")  # type: ignore[arg-type]


def test_frozen_columns_and_prompts_beyond_what_excel_holds_raise():
    with pytest.raises(ValueError, match="frozen_columns"):
        Sheet("表", [Column("a", "甲")], [], frozen_columns=2)
    with pytest.raises(ValueError, match="prompt"):
        Column("a", "甲", choices=("是", "否"), prompt="请" * 256)


def test_a_row_needing_judgement_is_light_blue_where_no_issue_colours_it_and_long_text_gets_its_height(tmp_path):
    path = tmp_path / "a.xlsx"
    long = "原因" * 60  # 240 display columns: six lines in the 40-wide 问题说明
    rows = [Row({"a": "x", "b": "y"}, {"b": CellIssue("reject", long)}, attention=True), Row({"a": "z", "b": "w"})]
    write_workbook(path, [("说明", "很长的说明" * 30)], [Sheet("表", [Column("a", "甲"), Column("b", "乙")], rows,
                                                                  frozen_columns=1)])
    wb = load_workbook(path)
    ws = wb["表"]
    assert ws.freeze_panes == "B2"
    assert _rgb(ws["A2"]) == "DDEBF7" and _rgb(ws["B2"]) == "FFC7CE"  # the issue keeps its own colour
    assert _rgb(ws["A3"]) is None  # a routine row stays plain
    assert ws["D2"].alignment.wrap_text and ws.row_dimensions[2].height >= 15 * 6
    summary = wb["概要"]
    assert summary["B2"].alignment.wrap_text and summary.row_dimensions[2].height > 15


# --- formula injection --------------------------------------------------------


@pytest.mark.parametrize("text", FORMULA_LIKE)
def test_is_formula_like_and_safe_text(text):
    assert is_formula_like(text)
    assert safe_text(text) == text


@pytest.mark.parametrize("text", ["张三", "13812345678", "a=b", " =1", "", "#N/A"])
def test_not_formula_like(text):
    assert not is_formula_like(text)
    assert safe_text(text) == text


def test_formula_like_text_stays_text(tmp_path):
    path = tmp_path / "inj.xlsx"
    texts = FORMULA_LIKE + ["#N/A", "普通文本"]
    rows = [Row({"a": t}) for t in texts]
    write_workbook(path, [("=1+1", "=cmd|' /C calc'!A0")], [Sheet("注入", [Column("a", "备注")], rows)])

    ws = load_workbook(path)["注入"]
    for r, text in enumerate(texts, start=2):
        cell = ws.cell(row=r, column=1)
        assert cell.data_type == "s", text
        assert cell.value == text
        assert cell.quotePrefix is is_formula_like(text), text

    xml = _sheet_xml(path, "注入")
    assert "<f>" not in xml and "<f " not in xml
    for r in range(2, len(texts) + 2):
        assert "<f" not in _cell_xml(xml, f"A{r}")
        assert 't="inlineStr"' in _cell_xml(xml, f"A{r}")

    summary = load_workbook(path)["概要"]
    assert (summary["A2"].value, summary["A2"].data_type) == ("=1+1", "s")
    assert (summary["B2"].value, summary["B2"].data_type) == ("=cmd|' /C calc'!A0", "s")
    summary_xml = _sheet_xml(path, "概要")
    assert "<f>" not in summary_xml and "<f " not in summary_xml  # no formula (<firstHeader> is the print layout)


def test_formula_like_issue_message_stays_text(tmp_path):
    path = tmp_path / "msg.xlsx"
    rows = [Row({"a": "x"}, row_issues=[CellIssue("flag", "=1+1")])]
    write_workbook(path, [], [Sheet("表", [Column("a", "甲")], rows)])
    cell = load_workbook(path)["表"]["C2"]
    assert (cell.value, cell.data_type) == ("=1+1", "s")
    assert cell.quotePrefix


# --- streaming ------------------------------------------------------------------


def test_large_generator_streams(tmp_path):
    n = 20_000
    consumed = 0

    def rows() -> Iterator[Row]:
        nonlocal consumed
        for i in range(n):
            consumed += 1
            yield Row(
                {"id": i, "name": f"客户{i}", "amount": Decimal(i) / 100},
                issues={"name": CellIssue("flag", "待查")} if i % 100 == 0 else {},
            )

    cols = [Column("id", "编号", "int"), Column("name", "姓名"), Column("amount", "金额", "decimal")]
    path = tmp_path / "big.xlsx"
    stats = write_workbook(path, [("订单数", n)], [Sheet("订单", cols, rows())])

    assert consumed == n
    assert stats.rows == {"订单": n}

    wb = load_workbook(path, read_only=True)
    ws = wb["订单"]
    count = 0
    last = None
    for last in ws.iter_rows(min_row=2, values_only=True):
        count += 1
    wb.close()
    assert count == n
    assert last[:3] == (n - 1, f"客户{n - 1}", pytest.approx((n - 1) / 100))
    xml_tail = _sheet_xml(path, "订单")[-1500:]  # after the rows: the filter, then the print layout
    assert f'<autoFilter ref="A1:E{n + 1}"/>' in xml_tail


def test_rows_iterable_consumed_once(tmp_path):
    class Once:
        def __init__(self) -> None:
            self.calls = 0

        def __iter__(self):
            self.calls += 1
            if self.calls > 1:
                raise AssertionError("rows iterated twice")
            yield Row({"a": "x"})

    once = Once()
    stats = write_workbook(tmp_path / "o.xlsx", [], [Sheet("表", [Column("a", "甲")], once)])
    assert once.calls == 1 and stats.rows == {"表": 1}


def test_empty_sheet_has_header_and_filter(tmp_path):
    path = tmp_path / "e.xlsx"
    stats = write_workbook(path, [], [Sheet("空表", [Column("a", "甲")], iter(()))])
    ws = load_workbook(path)["空表"]
    assert stats.rows == {"空表": 0}
    assert [c.value for c in ws[1]] == ["甲", "校验结果", "问题说明"]
    assert ws.auto_filter.ref == "A1:C1"


# --- atomicity ------------------------------------------------------------------


def test_failure_mid_stream_keeps_existing_and_leaves_no_temp(tmp_path, monkeypatch):
    openpyxl_tmp = tmp_path / "sys-tmp"
    openpyxl_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(openpyxl_tmp))

    out_dir = tmp_path / "out"
    path = out_dir / "review.xlsx"
    write_workbook(path, [("运行编号", "old")], [Sheet("客户", [Column("a", "甲")], [Row({"a": "旧"})])])
    before = path.read_bytes()

    def exploding() -> Iterator[Row]:
        for i in range(1000):
            if i == 500:
                raise RuntimeError("scraper died")
            yield Row({"a": f"新{i}"})

    with pytest.raises(RuntimeError, match="scraper died"):
        write_workbook(path, [("运行编号", "new")], [Sheet("客户", [Column("a", "甲")], exploding())])

    assert path.read_bytes() == before
    assert sorted(p.name for p in out_dir.iterdir()) == ["review.xlsx"]
    assert list(openpyxl_tmp.iterdir()) == []  # openpyxl's sheet buffers removed too
    assert load_workbook(path)["客户"]["A2"].value == "旧"


def test_failure_without_existing_target_leaves_nothing(tmp_path):
    def exploding() -> Iterator[Row]:
        yield Row({"a": "x"})
        raise KeyError("boom")

    path = tmp_path / "new.xlsx"
    with pytest.raises(KeyError):
        write_workbook(path, [], [Sheet("表", [Column("a", "甲")], exploding())])
    assert list(tmp_path.iterdir()) == []


def test_creates_parent_dirs_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "review.xlsx"
    write_workbook(path, [("运行编号", "1")], [])
    write_workbook(path, [("运行编号", "2")], [])
    assert load_workbook(path)["概要"]["B2"].value == "2"
    assert sorted(p.name for p in path.parent.iterdir()) == ["review.xlsx"]


@pytest.mark.parametrize("name", ["review.xls", "review.csv", "review", "review.xlsx.bak"])
def test_path_must_be_xlsx(tmp_path, name):
    with pytest.raises(ValueError, match="xlsx"):
        write_workbook(tmp_path / name, [], [])
    assert list(tmp_path.iterdir()) == []


# --- sheet titles -----------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    ["客户/订单", "订单[1]", "a:b", "问?", "星*", "反\\斜", "长" * 32, "", "'引号'"],
)
def test_bad_sheet_title_raises_naming_it(title):
    with pytest.raises(ValueError) as exc:
        Sheet(title, [Column("a", "甲")], [])
    assert repr(title) in str(exc.value)


def test_bad_title_set_after_construction_raises_in_writer(tmp_path):
    sheet = Sheet("客户", [Column("a", "甲")], [])
    sheet.title = "客户/订单"
    with pytest.raises(ValueError, match=re.escape("'客户/订单'")):
        write_workbook(tmp_path / "t.xlsx", [], [sheet])
    assert list(tmp_path.iterdir()) == []


def test_duplicate_and_reserved_titles_raise(tmp_path):
    cols = [Column("a", "甲")]
    with pytest.raises(ValueError, match="概要"):
        write_workbook(tmp_path / "d.xlsx", [], [Sheet("概要", cols, [])])
    with pytest.raises(ValueError, match="Orders"):
        write_workbook(tmp_path / "d.xlsx", [], [Sheet("orders", cols, []), Sheet("Orders", cols, [])])


def test_31_char_title_is_fine(tmp_path):
    title = "订" * 31
    stats = write_workbook(tmp_path / "ok.xlsx", [], [Sheet(title, [Column("a", "甲")], [])])
    assert stats.rows == {title: 0}


def test_duplicate_column_keys_raise():
    with pytest.raises(ValueError, match="duplicate column key 'a'"):
        Sheet("表", [Column("a", "甲"), Column("a", "乙")], [])


# --- reading a workbook back: hostile files -----------------------------------------


@pytest.fixture
def returned(tmp_path: Path) -> Path:
    path = tmp_path / "returned.xlsx"
    write_workbook(path, [("项目", "值")], [Sheet("表", COLUMNS, [Row({"name": "王芳", "qty": 3})])])
    return path


def test_a_sound_workbook_opens_and_its_rows_read(returned):
    wb = open_xlsx(returned)
    try:
        rows = list(xlsx_rows(returned, wb["表"]))
    finally:
        wb.close()
    assert rows[0][:3] == ("客户姓名", "手机号", "数量") and rows[1][0] == "王芳"


@pytest.mark.parametrize("build, words", [
    (lambda src, out: zip_bomb(src, out, MAX_SHARED_STRINGS_BYTES + 1), ["xl/sharedStrings.xml", "过大"]),
    (lying_sizes, ["损坏", "CRC"]),
    (corrupt_deflate, ["损坏"]),
    (billion_laughs, ["实体"]),
    (hidden_entities, ["实体"]),  # past the quick look: openpyxl's parser (defusedxml) refuses it
    (lambda src, out: external_entity(src, out, Path("/etc/hostname")), ["实体"]),
    (lambda src, out: many_members(src, out, MAX_MEMBERS), ["部件", str(MAX_MEMBERS)]),
    (lambda src, out: xls_file(out), [".xls", "请另存为 .xlsx"]),
    (lambda src, out: ods_file(out), [".ods", "请另存为 .xlsx"]),
    (lambda src, out: out.write_text("order_no,name\nXS1,王芳\n", encoding="utf-8"), ["不是 .xlsx"]),
    (lambda src, out: out.write_bytes(src.read_bytes()[:3000]), ["损坏"]),
])
def test_a_hostile_or_wrong_workbook_is_refused_naming_it(returned, tmp_path, build, words):
    from dealerbot.errors import DataFileError

    path = tmp_path / "审核 工作簿.xlsx"
    build(returned, path)
    with pytest.raises(DataFileError) as exc:
        wb = open_xlsx(path)
        try:
            for ws in wb.worksheets:
                for _ in xlsx_rows(path, ws):
                    pass
        finally:
            wb.close()
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and all(w in message for w in words), message

"""Streaming writer for the review workbook (审核工作簿).

Dealership staff review everything dealerbot scraped in an Excel workbook
before anything is written to the OEM portal or the DMS.  This module is a
generic writer: the caller maps its store rows to :class:`Sheet` /
:class:`Row` objects and calls :func:`write_workbook`.

Design notes
------------
* openpyxl write-only mode is used, so memory does not grow with the number
  of rows: ``Sheet.rows`` is consumed exactly once and each row is streamed to
  disk as it is produced.
* Styles are registered once per workbook as ``NamedStyle`` objects; every
  cell is created from the pre-computed style array of one of them, so no
  Font/Fill object is created per cell.
* Every ``str`` value is written as a string cell (data type ``"s"``), never a
  formula or an error value, and "formula-like" text additionally gets
  ``quotePrefix`` so Excel keeps it as text even after the reviewer edits it.
* The file is written to a temporary file next to the target, fsynced and
  then atomically moved onto the target with :func:`os.replace`.

Operator-facing text (sheet titles, headers, reasons) is Simplified Chinese.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Alignment, Font, NamedStyle, PatternFill
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from dealerbot.private_files import private_dir

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

__all__ = [
    "CellIssue",
    "Column",
    "ColumnKind",
    "Row",
    "Severity",
    "Sheet",
    "WorkbookStats",
    "is_formula_like",
    "safe_text",
    "write_workbook",
    "SUMMARY_TITLE",
    "STATUS_HEADER",
    "DETAIL_HEADER",
]

ColumnKind = Literal["text", "int", "decimal", "date", "datetime", "bool"]
Severity = Literal["reject", "flag", "repaired"]

_KINDS: frozenset[str] = frozenset(get_args(ColumnKind))
_SEVERITIES: frozenset[str] = frozenset(get_args(Severity))

# --- operator-facing text ---------------------------------------------------
SUMMARY_TITLE = "概要"
SUMMARY_HEADERS = ("项目", "内容")
STATUS_HEADER = "校验结果"
DETAIL_HEADER = "问题说明"
# "flag" is 需核对 (a value to check), never 待复核/待审核: 待审核 is the ledger's state of an action
# waiting for a person's decision (rekey.ledger.STATE_TEXT), and both sit on one row of 待处理.
STATUS_TEXT: dict[str | None, str] = {
    None: "通过",
    "repaired": "已修正",
    "flag": "需核对",
    "reject": "拒绝",
}
BOOL_TEXT = {True: "是", False: "否"}
ISSUE_SEPARATOR = "；"
LABEL_SEPARATOR = "："

# Worst first.  reject > flag > repaired > (no issue).
_SEVERITY_RANK = {"repaired": 1, "flag": 2, "reject": 3}

# Excel's own "Bad" / "Neutral" / "Good" colour pairs.
_SEVERITY_COLOURS = {
    "reject": ("FFC7CE", "9C0006"),
    "flag": ("FFEB9C", "9C5700"),
    "repaired": ("C6EFCE", "006100"),
}
# A row that needs a person's judgement (Row.attention): light blue, apart from the issue colours.
_ATTENTION_COLOURS = ("DDEBF7", "1F3864")
_ATTENTION = "attention"  # the style key of such a row's plain cells
_HEADER_FILL = "1F4E78"  # dark blue
_EDITABLE_HEADER_FILL = "548235"  # green: staff may change this column
_HEADER_FONT = "FFFFFF"

_NUMBER_FORMATS = {
    "text": "General",
    "int": "0",
    "decimal": "#,##0.00",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm:ss",
    "bool": "General",
}
_DEFAULT_WIDTHS = {
    "text": 16.0,
    "int": 10.0,
    "decimal": 14.0,
    "date": 12.0,
    "datetime": 20.0,
    "bool": 8.0,
}
_STATUS_WIDTH = 10.0
_DETAIL_WIDTH = 40.0  # wraps: the sheet stays narrow enough to print one page wide
_LINE_HEIGHT = 15.0  # points: a wrapped cell's row gets this per line (no application re-measures rows on opening)
_MAX_WIDTH = 80.0
_FILTER_BUTTON_PAD = 4.0  # room for the autofilter drop-down arrow
_SUMMARY_VALUE_WIDTH = 90.0  # 概要's value column wraps beyond this: both columns fit one landscape page

# Print layout (every sheet): A4 landscape, as wide as one page, the header row on every page.
_PRINT_MARGINS = {"left": 0.4, "right": 0.4, "top": 0.7, "bottom": 0.7, "header": 0.3, "footer": 0.3}  # inches
_PRINT_HEADER = "&A"  # the sheet's name
_PRINT_FOOTER = "第 &P 页，共 &N 页"
# A sheet wider than one page at a readable scale prints over several pages across, its frozen
# columns (审核, the order number) repeated on each: one A4 landscape page holds ~150 characters
# of column width at 100 %; below 60 % the print is too small to read.
_PAGE_WIDTH_CHARS = 150.0
_MIN_PRINT_SCALE = 0.6
_PROMPT_TITLE_MAX, _PROMPT_MAX = 32, 255  # Excel's limits on a data validation's input message

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_BAD_TITLE_CHARS = frozenset("[]:*?/\\")
_MAX_TITLE_LEN = 31
_STYLE_PREFIX = "dealerbot"


# --- public data model ------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One data column of a review sheet.

    Raises:
        ValueError: if ``key`` or ``header`` is empty, ``kind`` is not a
            :data:`ColumnKind`, or ``width`` is not a positive number.
    """

    key: str
    header: str  # Chinese header text
    kind: ColumnKind = "text"
    width: float | None = None  # None -> sensible default from kind and header length
    hidden: bool = False  # e.g. a row key read back on import
    choices: tuple[str, ...] = ()  # an Excel drop-down list on the column's cells
    editable: bool = False  # staff may change it (the header is coloured to say so)
    prompt: str = ""  # the drop-down's input message, shown when a cell of the column is selected

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("Column.key must not be empty")
        if not self.header:
            raise ValueError(f"Column {self.key!r}: header must not be empty")
        if self.kind not in _KINDS:
            raise ValueError(
                f"Column {self.key!r}: unknown kind {self.kind!r}, expected one of {sorted(_KINDS)}"
            )
        if self.width is not None and not (0 < self.width <= 255):
            raise ValueError(f"Column {self.key!r}: width must be in (0, 255], got {self.width!r}")
        if len(self.prompt) > _PROMPT_MAX or (self.prompt and len(self.header) > _PROMPT_TITLE_MAX):
            raise ValueError(f"Column {self.key!r}: a prompt is at most {_PROMPT_MAX} characters and its header "
                             f"(the prompt's title) at most {_PROMPT_TITLE_MAX}")


@dataclass(frozen=True)
class CellIssue:
    """A validation finding on a cell (or a whole row).

    Raises:
        ValueError: if ``severity`` is not one of ``reject``/``flag``/``repaired``.
    """

    severity: Severity
    message: str  # Chinese reason

    def __post_init__(self) -> None:
        if self.severity not in _SEVERITIES:
            raise ValueError(
                f"CellIssue: unknown severity {self.severity!r}, expected one of {sorted(_SEVERITIES)}"
            )


@dataclass
class Row:
    """One data row: values by column key plus validation issues."""

    values: Mapping[str, Any]  # key -> value (str, int, Decimal, float, date, datetime, bool, None)
    issues: Mapping[str, CellIssue] = field(default_factory=dict)  # column key -> issue on that cell
    row_issues: Sequence[CellIssue] = ()  # issues not tied to a column (e.g. duplicate record)
    attention: bool = False  # needs a person's judgement: the row's cells without an issue are light blue
    notes: Sequence[str] = ()  # plain remarks for 问题说明 that colour nothing and leave 校验结果 as it is


@dataclass
class Sheet:
    """One review sheet.

    ``rows`` may be a generator over thousands of rows; it is consumed exactly
    once by :func:`write_workbook` and never materialised.

    Raises:
        ValueError: if ``title`` is not a valid Excel sheet name (empty, longer
            than 31 characters, contains any of ``[]:*?/\\``, or starts/ends
            with an apostrophe), or if column keys are duplicated or a header
            collides with the appended 校验结果 / 问题说明 columns.
    """

    title: str  # Chinese sheet name (<=31 chars, no []:*?/\)
    columns: Sequence[Column]
    rows: Iterable[Row]
    hidden: bool = False  # a sheet for the program, not for people
    frozen_columns: int = 0  # leading columns (hidden ones included) that stay in view when scrolling right

    def __post_init__(self) -> None:
        _validate_title(self.title)
        _validate_columns(self.title, self.columns)
        if not 0 <= self.frozen_columns <= len(self.columns):
            raise ValueError(f"sheet {self.title!r}: frozen_columns must be in [0, {len(self.columns)}], "
                             f"got {self.frozen_columns!r}")


@dataclass
class WorkbookStats:
    """What :func:`write_workbook` wrote."""

    path: Path
    rows: dict[str, int]  # sheet title -> data rows written


# --- formula injection ------------------------------------------------------


def is_formula_like(value: str) -> bool:
    """Return True if Excel (or a CSV consumer) could treat ``value`` as a formula.

    That is text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return.  Such text is still written verbatim, but as a string cell with
    ``quotePrefix`` set, so Excel shows it as text and never evaluates it.

    Raises:
        TypeError: if ``value`` is not a ``str``.
    """
    if not isinstance(value, str):
        raise TypeError(f"is_formula_like expects str, got {type(value).__name__}")
    return value.startswith(_FORMULA_PREFIXES)


def safe_text(value: str) -> str:
    """Return ``value`` unchanged.

    The workbook never alters text to defuse formula injection (no leading
    apostrophe is added to the data): protection lives in the cell data type
    (always ``"s"``) and the ``quotePrefix`` style, applied to every text for
    which :func:`is_formula_like` is true.  This function exists so callers
    and tests share one definition of what is written for a given text.

    Raises:
        TypeError: if ``value`` is not a ``str``.
    """
    if not isinstance(value, str):
        raise TypeError(f"safe_text expects str, got {type(value).__name__}")
    return value


# --- validation helpers -----------------------------------------------------


def _validate_title(title: str) -> None:
    if not isinstance(title, str) or not title:
        raise ValueError(f"invalid sheet title {title!r}: must be a non-empty string")
    if len(title) > _MAX_TITLE_LEN:
        raise ValueError(
            f"invalid sheet title {title!r}: {len(title)} characters, Excel allows at most {_MAX_TITLE_LEN}"
        )
    bad = sorted(set(title) & _BAD_TITLE_CHARS)
    if bad:
        raise ValueError(f"invalid sheet title {title!r}: contains forbidden character(s) {''.join(bad)!r}")
    if title.startswith("'") or title.endswith("'"):
        raise ValueError(f"invalid sheet title {title!r}: must not start or end with an apostrophe")


def _validate_columns(title: str, columns: Sequence[Column]) -> None:
    if not columns:
        raise ValueError(f"sheet {title!r}: at least one column is required")
    keys: set[str] = set()
    for col in columns:
        if not isinstance(col, Column):
            raise ValueError(f"sheet {title!r}: columns must be Column objects, got {col!r}")
        if col.key in keys:
            raise ValueError(f"sheet {title!r}: duplicate column key {col.key!r}")
        keys.add(col.key)
        if col.header in (STATUS_HEADER, DETAIL_HEADER):
            raise ValueError(f"sheet {title!r}: column header {col.header!r} is reserved")


def _validate_sheets(sheets: Sequence[Sheet]) -> None:
    seen = {SUMMARY_TITLE.casefold(): SUMMARY_TITLE}
    for sheet in sheets:
        _validate_title(sheet.title)
        _validate_columns(sheet.title, sheet.columns)
        folded = sheet.title.casefold()  # Excel sheet names are case-insensitive
        if folded in seen:
            raise ValueError(f"duplicate sheet title {sheet.title!r} (clashes with {seen[folded]!r})")
        seen[folded] = sheet.title


# --- styles -----------------------------------------------------------------


class _Styles:
    """Named styles registered once per workbook, and their style arrays.

    Cells are created with ``Cell(ws, style_array=...)`` from these cached
    arrays, so per-cell styling is an array copy, not a style lookup.
    """

    def __init__(self, wb: Workbook) -> None:
        self._arrays: dict[str, StyleArray] = {}
        self._quoted: dict[str, StyleArray] = {}

        header_align = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for key, colour in (("header", _HEADER_FILL), ("header-editable", _EDITABLE_HEADER_FILL)):
            self._add(
                wb,
                key,
                NamedStyle(
                    name=f"{_STYLE_PREFIX}-{key}",
                    font=Font(bold=True, color=_HEADER_FONT),
                    fill=PatternFill(fill_type="solid", start_color=colour, end_color=colour),
                    alignment=header_align,
                ),
            )
        top = Alignment(vertical="top", wrap_text=True)
        self._add(wb, "label", NamedStyle(name=f"{_STYLE_PREFIX}-label", font=Font(bold=True), alignment=top))
        self._add(wb, "wrap", NamedStyle(name=f"{_STYLE_PREFIX}-wrap", alignment=top))

        fills = {
            sev: (
                PatternFill(fill_type="solid", start_color=bg, end_color=bg),
                Font(color=fg),
            )
            for sev, (bg, fg) in (*_SEVERITY_COLOURS.items(), (_ATTENTION, _ATTENTION_COLOURS))
        }
        centre = Alignment(horizontal="center")
        for kind in sorted(_KINDS):
            for sev in (None, *sorted(_SEVERITIES), _ATTENTION):
                style = NamedStyle(name=f"{_STYLE_PREFIX}-{kind}-{sev or 'ok'}")
                style.number_format = _NUMBER_FORMATS[kind]
                if kind == "bool":
                    style.alignment = centre
                if sev is not None:
                    style.fill, style.font = fills[sev]
                self._add(wb, self.key(kind, sev), style)
        for sev in (None, *sorted(_SEVERITIES), _ATTENTION):
            style = NamedStyle(name=f"{_STYLE_PREFIX}-detail-{sev or 'ok'}", alignment=top)
            if sev is not None:
                style.fill, style.font = fills[sev]
            self._add(wb, self.key("detail", sev), style)
        for sev in (None, *sorted(_SEVERITIES), _ATTENTION):
            style = NamedStyle(name=f"{_STYLE_PREFIX}-status-{sev or 'ok'}", alignment=centre)
            if sev is not None:
                style.fill, style.font = fills[sev]
            self._add(wb, self.key("status", sev), style)

    @staticmethod
    def key(kind: str, severity: str | None) -> str:
        return f"{kind}:{severity or 'ok'}"

    def _add(self, wb: Workbook, key: str, style: NamedStyle) -> None:
        wb.add_named_style(style)
        array = StyleArray(style.as_tuple())
        quoted = StyleArray(array)
        quoted.quotePrefix = 1
        self._arrays[key] = array
        self._quoted[key] = quoted

    def array(self, key: str, quoted: bool = False) -> StyleArray:
        return (self._quoted if quoted else self._arrays)[key]


# --- value coercion ---------------------------------------------------------


def _clean_text(text: str) -> str:
    # Control characters (other than tab, LF, CR) cannot be stored in XLSX;
    # make them visible instead of failing the whole export.
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)


def _is_finite(value: float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def _coerce(value: Any, column_kind: str) -> tuple[Any, str]:
    """Map a Python value to (cell value, style kind).

    The style kind follows the value when it disagrees with the column kind,
    so data is never hidden or reinterpreted (e.g. text in an int column stays
    text; a fractional number in an int column gets two decimals).
    """
    if value is None:
        return None, column_kind
    if isinstance(value, bool):
        return BOOL_TEXT[value], "bool"
    if isinstance(value, int):
        return value, "decimal" if column_kind == "decimal" else "int"
    if isinstance(value, float | Decimal):
        if not _is_finite(value):
            return str(value), "text"
        if column_kind == "int" and value == int(value):
            return int(value), "int"
        return value, "decimal"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            # Excel has no time zones: keep the wall-clock time as given.
            value = value.replace(tzinfo=None)
        return value, "date" if column_kind == "date" else "datetime"
    if isinstance(value, date):
        return value, "date"
    if isinstance(value, str):
        return _clean_text(value), "text"
    if isinstance(value, time):
        return value.isoformat(), "text"
    return _clean_text(str(value)), "text"


def _styled_cell(ws: WriteOnlyWorksheet, value: Any, style: StyleArray) -> Cell:
    """Create a write-only cell (like ``WriteOnlyCell``) with a shared style.

    Strings are always string cells: openpyxl turns ``"=..."`` into a formula
    and ``"#N/A"`` etc. into error values on assignment, so the data type is
    forced back to ``"s"`` (written as an inline string, never ``<f>``).
    """
    # row/column are placeholders; the write-only sheet sets them on append.
    cell = Cell(ws, row=1, column=1, value=value, style_array=style)
    if isinstance(value, str):
        cell.data_type = "s"
    return cell


def _make_cell(ws: WriteOnlyWorksheet, styles: _Styles, value: Any, kind: str, severity: str | None) -> Cell:
    """Create a data cell styled for ``kind``/``severity``; formula-like text gets quotePrefix."""
    quoted = isinstance(value, str) and is_formula_like(value)
    return _styled_cell(ws, value, styles.array(styles.key(kind, severity), quoted))


def _display_width(text: str) -> float:
    """Approximate Excel column width of ``text`` (CJK counts double)."""
    widest = 0
    for line in text.splitlines() or [""]:
        width = sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in line)
        widest = max(widest, width)
    return float(widest)


def _rendered(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float | Decimal) and not isinstance(value, bool):
        return f"{value:,.2f}" if _is_finite(value) else str(value)
    return "" if value is None else str(value)


def _column_width(col: Column) -> float:
    if col.width is not None:
        return float(col.width)
    base = _DEFAULT_WIDTHS[col.kind]
    return min(max(base, _display_width(col.header) + _FILTER_BUTTON_PAD), _MAX_WIDTH)


# --- writing ----------------------------------------------------------------


def _write_summary(wb: Workbook, styles: _Styles, summary: Sequence[tuple[str, Any]]) -> None:
    ws = wb.create_sheet(SUMMARY_TITLE)
    pairs = [(str(label), value) for label, value in summary]
    label_width = max([_display_width(SUMMARY_HEADERS[0])] + [_display_width(lbl) for lbl, _ in pairs])
    value_width = max([_display_width(SUMMARY_HEADERS[1])] + [_display_width(_rendered(v)) for _, v in pairs])
    ws.column_dimensions["A"].width = min(label_width + 2, _MAX_WIDTH)
    ws.column_dimensions["B"].width = min(max(value_width + 2, 12.0), _SUMMARY_VALUE_WIDTH)
    _print_layout(ws, frozen_columns=0)

    ws.append([_styled_cell(ws, h, styles.array("header")) for h in SUMMARY_HEADERS])
    row_number = 2
    for label, raw in pairs:
        label = _clean_text(label)
        label_cell = _styled_cell(ws, label, styles.array("label", is_formula_like(label)))
        value, kind = _coerce(raw, "text")
        if kind == "text":  # long text wraps within the page's width
            cell = _styled_cell(ws, value, styles.array("wrap", isinstance(value, str) and is_formula_like(value)))
            if value:
                _fit_height(ws, row_number, value, ws.column_dimensions["B"].width)
        else:
            cell = _make_cell(ws, styles, value, kind, None)
        ws.append([label_cell, cell])
        row_number += 1
    ws.print_area = f"A1:B{len(pairs) + 1}"


def _fit_height(ws: WriteOnlyWorksheet, row_number: int, text: str, width: float) -> None:
    """Give row ``row_number`` (not appended yet) the height of ``text`` wrapped at ``width``."""
    lines = sum(max(1, math.ceil(_display_width(line) / max(width - 2, 1.0))) for line in text.splitlines() or [""])
    if lines > 1:
        sheet: Any = ws  # set in Worksheet._setup(), unseen by openpyxl's type stubs
        sheet.row_dimensions[row_number].height = _LINE_HEIGHT * lines


def pages_across(width: float) -> int:
    """How many A4 landscape pages a sheet ``width`` characters wide prints across: one when it
    fits at a readable scale (:data:`_MIN_PRINT_SCALE`), else as few as keep it readable."""
    return max(1, math.ceil(width / (_PAGE_WIDTH_CHARS / _MIN_PRINT_SCALE)))


def _print_layout(ws: WriteOnlyWorksheet, frozen_columns: int, width: float = 0.0) -> None:
    """How a sheet prints and scrolls: A4 landscape, fitted to the width of one page or, for a
    sheet ``width`` characters wide, of as few pages as keep it readable (:func:`pages_across`;
    the frozen columns repeated on each), as many pages down as it takes, the header row
    repeated on every page, the sheet's name above and the page number below; on screen the
    header row and ``frozen_columns`` columns stay in view. Set before the first row is
    appended (write-only mode)."""
    ws.freeze_panes = f"{get_column_letter(frozen_columns + 1)}2"
    ws.print_title_rows = "1:1"
    across = pages_across(width)
    if across > 1 and frozen_columns:
        ws.print_title_cols = f"A:{get_column_letter(frozen_columns)}"
    # A write-only sheet gets these in Worksheet._setup(), which openpyxl's type stubs do not see.
    sheet: Any = ws
    setup = sheet.page_setup
    setup.orientation = "landscape"
    setup.paperSize = Worksheet.PAPERSIZE_A4
    setup.fitToWidth, setup.fitToHeight = across, 0  # 0: as many pages down as it takes
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.page_margins = PageMargins(**_PRINT_MARGINS)
    sheet.print_options.gridLines = True
    sheet.oddHeader.center.text = _PRINT_HEADER
    sheet.oddFooter.center.text = _PRINT_FOOTER


def _worst(severities: Iterable[str]) -> str | None:
    worst: str | None = None
    for sev in severities:
        if worst is None or _SEVERITY_RANK[sev] > _SEVERITY_RANK[worst]:
            worst = sev
    return worst


def _write_sheet(wb: Workbook, styles: _Styles, sheet: Sheet) -> int:
    ws = wb.create_sheet(sheet.title)
    columns = list(sheet.columns)
    by_key = {col.key: col for col in columns}
    ncols = len(columns) + 2

    # Layout must be set before the first row is appended in write-only mode.
    if sheet.hidden:
        ws.sheet_state = "hidden"
    for idx, col in enumerate(columns, 1):
        ws.column_dimensions[get_column_letter(idx)].width = _column_width(col)
        ws.column_dimensions[get_column_letter(idx)].hidden = col.hidden
    ws.column_dimensions[get_column_letter(ncols - 1)].width = _STATUS_WIDTH
    ws.column_dimensions[get_column_letter(ncols)].width = _DETAIL_WIDTH
    width = sum(_column_width(col) for col in columns if not col.hidden) + _STATUS_WIDTH + _DETAIL_WIDTH
    _print_layout(ws, sheet.frozen_columns, width)

    header_style, editable_style = styles.array("header"), styles.array("header-editable")
    ws.append(
        [_styled_cell(ws, _clean_text(col.header), editable_style if col.editable else header_style) for col in columns]
        + [_styled_cell(ws, text, header_style) for text in (STATUS_HEADER, DETAIL_HEADER)]
    )

    count = 0
    for row in sheet.rows:  # consumed once, streamed
        values = row.values
        issues = row.issues or {}
        for key in issues:
            if key not in by_key:
                raise ValueError(
                    f"sheet {sheet.title!r}, data row {count + 1}: issue for unknown column key {key!r}"
                )
        cells = []
        reasons = []
        plain = _ATTENTION if row.attention else None  # the colour of a cell without an issue
        for col in columns:
            issue = issues.get(col.key)
            severity = issue.severity if issue is not None else plain
            value, kind = _coerce(values.get(col.key), col.kind)
            cells.append(_make_cell(ws, styles, value, kind, severity))
            if issue is not None:
                reasons.append(f"{col.header}{LABEL_SEPARATOR}{issue.message}")
        reasons.extend(issue.message for issue in row.row_issues)
        reasons.extend(row.notes)
        worst = _worst([i.severity for i in issues.values()] + [i.severity for i in row.row_issues])
        cells.append(_make_cell(ws, styles, STATUS_TEXT[worst], "status", worst or plain))
        detail = _clean_text(ISSUE_SEPARATOR.join(reasons)) if reasons else None
        cells.append(_make_cell(ws, styles, detail, "detail", plain))
        if detail:
            _fit_height(ws, count + 2, detail, _DETAIL_WIDTH)
        ws.append(cells)
        count += 1

    ws.auto_filter.ref = f"A1:{get_column_letter(ncols)}{count + 1}"
    if not sheet.hidden:  # LibreOffice prints a hidden sheet's print area
        ws.print_area = f"A1:{get_column_letter(ncols)}{count + 1}"
    for idx, col in enumerate(columns, 1):
        if col.choices and count:
            listed = ",".join(col.choices)
            validation = DataValidation(type="list", formula1=f'"{listed}"', allow_blank=True, showErrorMessage=True,
                                        errorTitle="请从列表中选择", error=f"可选：{listed}",
                                        showInputMessage=bool(col.prompt), promptTitle=col.header if col.prompt else None,
                                        prompt=col.prompt or None)
            letter = get_column_letter(idx)
            validation.add(f"{letter}2:{letter}{count + 1}")
            ws.data_validations.append(validation)
    return count


def _drop_half_written_zip(exc: OSError) -> None:
    """A write that failed (a full disk) leaves openpyxl's zip writer open in the traceback's
    frames; collected later, after its file is closed, it prints "Exception ignored ... seek of
    closed file" over the real message. Drop those frames now, quietly (the OSError says all)."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        seen: BaseException | None = exc
        while seen is not None:  # the chained errors' frames hold it too
            seen.__traceback__ = None
            seen = seen.__context__
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard_sheet_buffers(wb: Workbook) -> None:
    """Best-effort removal of openpyxl's per-sheet temp files after a failure."""
    for ws in wb.worksheets:
        writer = getattr(ws, "_writer", None)
        if writer is None:
            continue
        rows = getattr(ws, "_rows", None)
        try:
            if rows is not None:
                rows.close()
            writer.close()
        except Exception:  # noqa: BLE001 - cleanup must not mask the real error
            pass
        try:
            writer.cleanup()
        except Exception:  # noqa: BLE001
            pass


def write_workbook(path: Path, summary: Sequence[tuple[str, Any]], sheets: Sequence[Sheet]) -> WorkbookStats:
    """Write the review workbook atomically and return what was written.

    The first sheet is 概要 (the ``summary`` label/value pairs), followed by one
    sheet per :class:`Sheet` in order.  Each sheet's rows are streamed (the
    iterable is consumed once).  The workbook is first written to
    ``.<name>.tmp-<pid>`` in the target directory, fsynced and then moved onto
    ``path`` with :func:`os.replace`; on any error the temp file is removed and
    an existing ``path`` is left untouched.  Parent directories are created.

    Raises:
        ValueError: if ``path`` does not end in ``.xlsx``; if a sheet title is
            invalid (the message names it) or duplicated (case-insensitively,
            including the reserved 概要); if a sheet has no columns, duplicate
            column keys or a reserved header; if a row has an issue for a
            column key that the sheet does not have (raised mid-stream, the
            target is still left untouched).
        Exception: anything raised while iterating ``Sheet.rows`` is
            propagated unchanged after cleanup.
        OSError: if the directory cannot be created or the file cannot be
            written or replaced (e.g. the target is open in Excel on Windows).
    """
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise ValueError(f"workbook path must end in .xlsx: {str(path)!r}")
    sheets = list(sheets)  # the Sheet list itself is small; rows stay lazy
    _validate_sheets(sheets)

    private_dir(path.parent)
    tmp = _temp_path(path)
    wb = Workbook(write_only=True)
    counts: dict[str, int] = {}
    try:
        styles = _Styles(wb)
        _write_summary(wb, styles, summary)
        for sheet in sheets:
            counts[sheet.title] = _write_sheet(wb, styles, sheet)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            wb.save(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the cleanup never hides the real error
            _discard_sheet_buffers(wb)
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            _drop_half_written_zip(exc)
        raise
    _fsync_dir(path.parent)
    return WorkbookStats(path=path, rows=counts)

"""A run's input file (``dealerbot run BOT --input FILE``): rows of a CSV or XLSX, first row the
column names, read whole before the browser starts so that a bad file changes nothing.

Values come as stripped text (numbers as written, dates as ``YYYY-MM-DD``); a CSV saved by
Chinese Excel (GBK / GB18030) is read as well as UTF-8.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path
from typing import Any

from dealerbot.errors import DataFileError

MAX_INPUT_ROWS = 100_000


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if value.time() != datetime.min.time() else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _csv_rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise DataFileError(f"{path}: 无法识别的文件编码 (not UTF-8 or GBK)")
    try:
        return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text, newline=""))]
    except csv.Error as exc:
        raise DataFileError(f"{path}: CSV 格式错误 (not valid CSV): {exc}") from None


def _xlsx_rows(path: Path) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, xml and openpyxl errors alike
        raise DataFileError(f"{path}: 不是有效的 Excel 文件 (not a readable .xlsx: {type(exc).__name__})") from None
    try:
        sheet = wb.worksheets[0]
        sheet.reset_dimensions()  # a file written by other tools may declare a wrong size (e.g. A1)
        return [[_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        wb.close()


def read_input(path: Path) -> list[dict[str, str]]:
    """The rows of ``path`` as dicts by column name (blank rows skipped).

    Raises:
        DataFileError: the file is missing, not CSV/XLSX, empty, has a blank or repeated column
            name, a row longer than the header, or more than ``MAX_INPUT_ROWS`` rows (the message
            names the file and the row).
    """
    if not path.is_file():
        raise DataFileError(f"{path}: 输入文件不存在 (input file not found)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix in (".xlsx", ".xlsm"):
        rows = _xlsx_rows(path)
    else:
        raise DataFileError(f"{path}: 输入文件须为 .csv 或 .xlsx (input must be .csv or .xlsx)")
    while rows and not any(rows[-1]):
        rows.pop()
    if not rows:
        raise DataFileError(f"{path}: 文件为空，第一行应为列名 (empty: the first row names the columns)")
    header = rows[0]
    while header and not header[-1]:
        header = header[:-1]
    for i, name in enumerate(header, start=1):
        if not name:
            raise DataFileError(f"{path}: 第 1 行第 {i} 列没有列名 (row 1, column {i}: no column name)")
    repeated = sorted({n for n in header if header.count(n) > 1})
    if repeated:
        raise DataFileError(f"{path}: 列名重复：{'、'.join(repeated)} (row 1: repeated column names)")
    if len(rows) - 1 > MAX_INPUT_ROWS:
        raise DataFileError(f"{path}: 超过 {MAX_INPUT_ROWS} 行，请分批运行 (more than {MAX_INPUT_ROWS} rows)")
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        if any(row[len(header):]):
            raise DataFileError(f"{path}: 第 {number} 行的值多于列名 (row {number}: more values than column names)")
        out.append({name: (row[i] if i < len(row) else "") for i, name in enumerate(header)})
    return out

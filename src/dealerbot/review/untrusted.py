"""Opening a workbook that comes back from people (a reviewed workbook, uploaded or given to
import-review): :func:`check_xlsx` looks at the file before openpyxl opens it. It must be a zip,
not too many members, each member and all of them not too large once unpacked (counted while
unpacking, so sizes that lie do not help), every member's CRC right, and no XML part with a DTD
(entity expansion, external entities). openpyxl keeps the shared strings table in memory whole
and parses the small parts as trees; worksheets are streamed. The caps leave room over the
largest review workbook dealerbot writes: 50,000 待处理 rows (the export's limit) are a 72 MB
worksheet. Writing the workbook: :mod:`dealerbot.review.workbook`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openpyxl import Workbook

MiB = 1 << 20
MAX_MEMBERS = 1000  # a review workbook has 13; Excel and LibreOffice add a few
MAX_SHEET_BYTES = 256 * MiB  # one worksheet (streamed)
MAX_SHARED_STRINGS_BYTES = 32 * MiB  # held in memory whole (32 MB of tiny strings: a 250 MB peak)
MAX_PART_BYTES = 4 * MiB  # any other XML part (parsed whole: 16 MB of styles is a 500 MB peak)
MAX_OTHER_BYTES = 64 * MiB  # anything else (an image pasted in: never parsed)
MAX_TOTAL_BYTES = 512 * MiB
_SAVE_AS = "请另存为 .xlsx（Excel 工作簿）后再导入"
_DTD_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")
_SNIFF_BYTES = 64 * 1024


def _member_cap(name: str) -> int:
    if name.startswith("xl/worksheets/") and name.endswith(".xml"):
        return MAX_SHEET_BYTES
    if name == "xl/sharedStrings.xml":
        return MAX_SHARED_STRINGS_BYTES
    return MAX_PART_BYTES if name.endswith((".xml", ".rels", ".vml")) else MAX_OTHER_BYTES


def _too_large(path: Path, what: str, cap: int) -> Exception:
    from dealerbot.errors import DataFileError

    return DataFileError(f"{path}: 工作簿解压后过大（{what}超过 {cap // MiB} MB），不像审核工作簿，未导入任何内容"
                         f" (too large when unpacked: refused)")


def damaged_workbook(path: Path, exc: BaseException) -> Exception:
    """The error for a workbook that cannot be read (naming ``path``)."""
    from dealerbot.errors import DataFileError

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:  # openpyxl wraps a parser's error in its own
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    root = chain[-1]
    detail = f"{type(root).__name__}: {(str(root).splitlines() or [''])[0]}"
    if any(type(e).__name__ in ("EntitiesForbidden", "ExternalReferenceForbidden", "DTDForbidden")
           or "entit" in str(e).lower() for e in chain):
        return DataFileError(f"{path}: 工作簿含有 XML 实体声明（DTD），Excel 保存的文件不会这样，可能被篡改，未导入任何内容"
                             f" (XML entities are refused: {detail})")
    return DataFileError(f"{path}: 不是有效的Excel工作簿，可能已损坏 (not a readable .xlsx: {detail})")


def check_xlsx(path: Path) -> None:
    """Check that ``path`` is an .xlsx that is safe to open, without opening it as a workbook.

    Raises:
        DataFileError: naming ``path``: not a file; another format (.xls, .ods, .xlsb: save it
            as .xlsx); not a zip or damaged (a bad CRC, a broken deflate stream); too many
            members or too large once unpacked; an XML part with a DTD (entities).
    """
    import zipfile
    import zlib

    from dealerbot.errors import DataFileError

    if not path.exists():
        raise DataFileError(f"{path}: 文件不存在 (no such file)")
    if not path.is_file():
        raise DataFileError(f"{path}: 不是文件，请给出审核工作簿 .xlsx 的路径 (not a file)")
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise DataFileError(f"{path}: 无法读取 (cannot read: {exc})") from None
    if head == bytes.fromhex("D0CF11E0A1B11AE1"):
        raise DataFileError(f"{path}: 这是旧版 Excel 97-2003 工作簿（.xls），不是 .xlsx：{_SAVE_AS} (an .xls file)")
    if not head.startswith(b"PK"):
        raise DataFileError(f"{path}: 不是 .xlsx 工作簿（文件内容不是 Excel 格式），可能已损坏 (not a zip: not an .xlsx)")
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
            names = {m.filename for m in members}
            if "mimetype" in names and z.getinfo("mimetype").file_size < 200 and \
                    z.read("mimetype").startswith(b"application/vnd.oasis.opendocument"):
                raise DataFileError(f"{path}: 这是 OpenDocument 表格（.ods，WPS / LibreOffice 的格式），不是 .xlsx：{_SAVE_AS}"
                                    f" (an OpenDocument file)")
            if "xl/workbook.bin" in names:
                raise DataFileError(f"{path}: 这是 Excel 二进制工作簿（.xlsb），不是 .xlsx：{_SAVE_AS} (an .xlsb file)")
            if len(members) > MAX_MEMBERS:
                raise DataFileError(f"{path}: 工作簿内含 {len(members)} 个部件（上限 {MAX_MEMBERS}），不像审核工作簿，"
                                    f"未导入任何内容 (too many members)")
            total = 0
            for m in members:  # what the directory says first (cheap), then what unpacking gives
                if m.file_size > _member_cap(m.filename):
                    raise _too_large(path, f"{m.filename} ", _member_cap(m.filename))
                total += m.file_size
            if total > MAX_TOTAL_BYTES:
                raise _too_large(path, "全部内容", MAX_TOTAL_BYTES)
            total = 0
            for m in members:
                cap, size, start = _member_cap(m.filename), 0, b""
                with z.open(m) as part:  # zipfile stops at the declared size and checks the CRC
                    while chunk := part.read(MiB):
                        size += len(chunk)
                        total += len(chunk)
                        if size > cap:
                            raise _too_large(path, f"{m.filename} ", cap)
                        if total > MAX_TOTAL_BYTES:
                            raise _too_large(path, "全部内容", MAX_TOTAL_BYTES)
                        if len(start) < _SNIFF_BYTES:
                            start += chunk[:_SNIFF_BYTES]
                if m.filename.endswith((".xml", ".rels", ".vml")) and any(k in start for k in _DTD_MARKERS):
                    raise damaged_workbook(path, ValueError(f"{m.filename}: a DTD (entity declarations)"))
    except DataFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            ValueError, KeyError) as exc:
        raise damaged_workbook(path, exc) from None


def open_xlsx(path: Path) -> Workbook:
    """Open a workbook people sent back, read-only (cell values, no formulas), after
    :func:`check_xlsx`; read its rows with :func:`xlsx_rows`. Close it when done.

    Raises:
        DataFileError: as :func:`check_xlsx`, or openpyxl cannot read it (naming ``path``).
    """
    from openpyxl import load_workbook

    check_xlsx(path)
    try:
        return load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, XML and openpyxl's own errors alike: a damaged file
        raise damaged_workbook(path, exc) from None


def xlsx_rows(path: Path, ws: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
    """A read-only sheet's rows as values (``ws.iter_rows(values_only=True, **kwargs)``); a
    part that cannot be parsed ends the reading with a :class:`DataFileError` naming ``path``."""
    rows = ws.iter_rows(values_only=True, **kwargs)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - openpyxl parses lazily: XML, zip and value errors alike
            raise damaged_workbook(path, exc) from None
        yield row

"""Hostile review workbooks, built from a real one: a zip bomb, a corrupted deflate stream, entity
expansion, an external entity, a zip whose sizes lie, and the wrong formats (.xls, .ods).

Every builder streams: the test's own memory stays small even for the 1 GB bomb.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

SHARED_STRINGS = "xl/sharedStrings.xml"
SST_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
SST_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
GB = 1 << 30


def _with_shared_strings(src: Path, out: Path, write_sst: Callable[[zipfile.ZipFile], None]) -> Path:
    """``src`` copied to ``out`` with its shared strings table replaced by what ``write_sst``
    writes (registered in the content types and the workbook's relationships if it had none)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        names = zin.namelist()
        for name in names:
            if name == SHARED_STRINGS:
                continue
            data = zin.read(name)
            if name == "[Content_Types].xml" and SST_TYPE.encode() not in data:
                data = data.replace(b"</Types>", f'<Override PartName="/{SHARED_STRINGS}" ContentType="{SST_TYPE}"/></Types>'
                                    .encode())
            if name == "xl/_rels/workbook.xml.rels" and SST_REL.encode() not in data:
                data = data.replace(b"</Relationships>",
                                    f'<Relationship Id="rIdSst9" Type="{SST_REL}" Target="sharedStrings.xml"/></Relationships>'
                                    .encode())
            zout.writestr(name, data)
        write_sst(zout)
    return out


def zip_bomb(src: Path, out: Path, size: int = GB) -> Path:
    """A shared string of ``size`` bytes ("A" repeated), deflated to about ``size / 1000``."""
    def write(zout: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo(SHARED_STRINGS)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zout.open(info, "w", force_zip64=True) as fh:
            fh.write(f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN_NS}" count="1" uniqueCount="1"><si><t>'
                     .encode())
            chunk = b"A" * (1 << 20)
            for _ in range(size // len(chunk)):
                fh.write(chunk)
            fh.write(b"</t></si></sst>")
    return _with_shared_strings(src, out, write)


def _sst_with_doctype(doctype: str, text: str) -> Callable[[zipfile.ZipFile], None]:
    def write(zout: zipfile.ZipFile) -> None:
        zout.writestr(SHARED_STRINGS, f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n'
                                      f'<sst xmlns="{MAIN_NS}" count="1" uniqueCount="1"><si><t>{text}</t></si></sst>')
    return write


def billion_laughs(src: Path, out: Path) -> Path:
    """Entity expansion: ten levels of ten, a 1 GB string from a few hundred bytes."""
    entities = ['<!ENTITY l0 "lollollollol">'] + [
        f'<!ENTITY l{i} "{"".join(f"&l{i - 1};" for _ in range(10))}">' for i in range(1, 10)]
    return _with_shared_strings(src, out, _sst_with_doctype(f"<!DOCTYPE sst [{''.join(entities)}]>", "&l9;"))


def external_entity(src: Path, out: Path, target: Path) -> Path:
    """An external entity naming a local file (whose text must never come back)."""
    return _with_shared_strings(src, out, _sst_with_doctype(
        f'<!DOCTYPE sst [<!ENTITY xxe SYSTEM "{target.resolve().as_uri()}">]>', "&xxe;"))


def _pending_sheet(zin: zipfile.ZipFile) -> str:
    """The member holding the 待处理 sheet (the biggest worksheet of a review workbook)."""
    sheets = [i for i in zin.infolist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", i.filename)]
    return max(sheets, key=lambda i: i.file_size).filename


def corrupt_deflate(src: Path, out: Path) -> Path:
    """The 待处理 sheet's compressed bytes overwritten in the middle (sizes and CRC unchanged)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zin:
        info = zin.getinfo(_pending_sheet(zin))
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    middle = start + info.compress_size // 2
    data[middle:middle + 64] = bytes((i * 37 + 11) % 256 for i in range(64))
    out.write_bytes(bytes(data))
    return out


def lying_sizes(src: Path, out: Path, size: int = 256 << 20) -> Path:
    """A bomb whose central directory claims the shared strings are 1 KB: only what is read counts."""
    zip_bomb(src, out, size)
    data = bytearray(out.read_bytes())
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(SHARED_STRINGS.encode()) + 1)
    assert entry >= 0
    if struct.unpack("<I", data[entry + 24:entry + 28])[0] != 0xFFFFFFFF:
        data[entry + 24:entry + 28] = struct.pack("<I", 1024)
    name_len, extra_len = struct.unpack("<HH", data[entry + 28:entry + 32])  # ... or in its zip64 extra field
    extra_at = entry + 46 + name_len
    i = extra_at
    while i < extra_at + extra_len:
        tag, length = struct.unpack("<HH", data[i:i + 4])
        if tag == 1:
            data[i + 4:i + 12] = struct.pack("<Q", 1024)
        i += 4 + length
    out.write_bytes(bytes(data))
    return out


def xls_file(out: Path) -> Path:
    """An Excel 97-2003 file: the OLE2 compound document signature, then its sectors."""
    out.write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 4088)
    return out


def ods_file(out: Path) -> Path:
    """An OpenDocument spreadsheet (LibreOffice's own format): a zip whose first member says so."""
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", '<?xml version="1.0"?><office:document-content '
                                  'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"/>',
                   compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("META-INF/manifest.xml", "<manifest/>")
    return out


def hidden_entities(src: Path, out: Path) -> Path:
    """Entity expansion to about 1 MB (below the XML parser's own amplification limit), its DTD
    after a 100 KB comment (past any quick look at a part's first bytes)."""
    entities = ['<!ENTITY l0 "lollollollol">'] + [
        f'<!ENTITY l{i} "{"".join(f"&l{i - 1};" for _ in range(10))}">' for i in range(1, 6)]
    return _with_shared_strings(src, out, _sst_with_doctype(
        f"<!--{' ' * 100_000}-->\n<!DOCTYPE sst [{''.join(entities)}]>", "&l5;"))


def many_members(src: Path, out: Path, extra: int) -> Path:
    """``src`` with ``extra`` tiny members added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name))
        for i in range(extra):
            zout.writestr(f"customXml/item{i}.xml", "<a/>")
    return out

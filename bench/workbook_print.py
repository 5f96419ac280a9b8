"""Benchmark: how many A4 pages the review workbook prints on, through a real spreadsheet
application (LibreOffice headless, ``soffice --convert-to pdf``).

    ./run.sh bench print                      # `dealerbot demo` (300 orders), then its workbook
    ./run.sh bench print --before 12c4ce8     # also the same store exported by the code of a git ref
    ./run.sh bench print --workbook some.xlsx # only render a given workbook

The demo's store (sandbox portals, read, reconciled, ten contracts approved and written: what
`dealerbot demo` leaves) is exported with ``dealerbot export``; with ``--before REF`` the same store
is exported a second time by the ``src/dealerbot`` of REF (``git archive``; its store schema must
match), so the figures compare layouts on the same rows. Each workbook is rendered as a whole,
and once per visible sheet (a copy without the other sheets), and the PDF pages are counted. Printed: the pages of each sheet and in total, and
the rows of each sheet. Target: every sheet one page wide, so that a row never spreads over pages
(the pages of a sheet no more than its rows divided by 20, rounded up). Exits 1 when missed, 2
when LibreOffice is missing.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from openpyxl import load_workbook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402

_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
ROWS_PER_PAGE = 20  # the least a landscape page fitted to width holds: fewer means a row spread over pages


@dataclass
class Rendered:
    sheets: dict[str, tuple[int, int]]  # sheet -> (data rows, pages)
    total: int  # the whole workbook's pages


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if not found:
        raise SystemExit(2)
    return found


def pdf_pages(xlsx: Path, work: Path) -> int:
    """Render ``xlsx`` to PDF with LibreOffice headless (a private profile in ``work``) and
    count its pages.

    Raises:
        RuntimeError: LibreOffice made no PDF.
    """
    out = work / "pdf"
    out.mkdir(exist_ok=True)
    profile = (work / "lo-profile").resolve().as_uri()
    subprocess.run([soffice(), f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(out), str(xlsx)], check=True, capture_output=True, timeout=300)
    pdf = out / f"{xlsx.stem}.pdf"
    if not pdf.exists():
        raise RuntimeError(f"LibreOffice made no PDF of {xlsx}")
    pages = len(_PAGE.findall(pdf.read_bytes()))
    pdf.unlink()
    return pages


def render(xlsx: Path, work: Path) -> Rendered:
    """Pages per visible sheet and in total."""
    wb = load_workbook(xlsx)
    visible = [ws.title for ws in wb.worksheets if ws.sheet_state == "visible"]
    rows = {ws.title: ws.max_row - 1 for ws in wb.worksheets}
    wb.close()
    sheets: dict[str, tuple[int, int]] = {}
    for i, title in enumerate(visible):
        one = load_workbook(xlsx)
        for ws in list(one.worksheets):
            if ws.title != title:
                one.remove(ws)
        copy = work / f"sheet{i}.xlsx"
        one.save(copy)
        sheets[title] = (rows[title], pdf_pages(copy, work))
        copy.unlink()
    return Rendered(sheets, pdf_pages(xlsx, work))


def run_demo(folder: Path, orders: int) -> Path:
    """`dealerbot demo` in ``folder`` (its own store, state and out); its store's path."""
    exe = Path(sys.executable).with_name("dealerbot")
    subprocess.run([str(exe), "demo", "--orders", str(orders), "-o", str(folder / "demo.xlsx")], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL, timeout=1800)
    return folder / "var" / "demo.sqlite"


def export(store: Path, folder: Path, out: Path, src: Path | None = None) -> Path:
    """``dealerbot export`` of ``store``; with ``src``, by the dealerbot package found there."""
    env = {**os.environ, "DEALERBOT_STORE__URL": f"sqlite:///{store}"}
    code = "import sys; from dealerbot.cli import main; sys.argv[0] = 'dealerbot'; main()"
    if src is not None:
        env["PYTHONPATH"] = str(src)
    subprocess.run([sys.executable, "-c", code, "export", "-o", str(out)], cwd=folder, env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    return out


def old_source(ref: str, work: Path) -> Path:
    """``src/`` of git ``ref``, unpacked into ``work`` with the data folders it reads (portals/...)."""
    dest = work / f"src-{ref}"
    dest.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def report(label: str, rendered: Rendered) -> None:
    print(f"\n{label}")
    print(f"  {'sheet':<16}{'rows':>7}{'pages':>7}")
    for title, (rows, pages) in rendered.sheets.items():
        print(f"  {title:<16}{rows:>7}{pages:>7}")
    print(f"  {'total':<16}{sum(r for r, _ in rendered.sheets.values()):>7}{rendered.total:>7}")


def missed(rendered: Rendered) -> list[str]:
    out = []
    for title, (rows, pages) in rendered.sheets.items():
        limit = max(1, math.ceil(rows / ROWS_PER_PAGE))
        if pages > limit:
            out.append(f"{title}: {pages} pages for {rows} rows (at most {limit})")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--before", help="a git ref: export the same store with its code too")
    parser.add_argument("--workbook", type=Path, help="render this workbook only")
    parser.add_argument("--keep", type=Path, help="copy the workbooks here")
    args = parser.parse_args()
    soffice()
    with tempfile.TemporaryDirectory(prefix="dealerbot-bench-print-") as tmp:
        work = Path(tmp)
        if args.workbook:
            after = render(args.workbook.resolve(), work)
            report(str(args.workbook), after)
        else:
            folder = work / "demo"
            folder.mkdir()
            store = run_demo(folder, args.orders)
            books = {"after (this code)": export(store, folder, work / "after.xlsx")}
            if args.before:
                books = {f"before ({args.before})": export(store, folder, work / "before.xlsx", old_source(args.before, work)),
                         **books}
            for label, book in books.items():
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(book, args.keep / book.name)
                after = render(book, work)
                report(label, after)
    problems = missed(after)
    for p in problems:
        print(f"MISSED: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The search result -> one CSV or XLSX file inside an AES-256 encrypted ZIP, streamed.

Rows come page by page from the query layer behind ``GET /api/calls``
(:meth:`pbx_recorder.catalog.Catalog.search_page` with the actor's row scope and the keyset
cursor), go through the one masking function (:func:`pbx_recorder.core.masking.present_call`) and the
formula neutralising of :mod:`pbx_recorder.exports.columns`, and are written straight into the
encrypted ZIP entry: memory holds one page, whatever the row count.

XLSX: ``xlsxwriter`` in ``constant_memory`` mode writes the workbook row by row to a 0600 file in
the private export folder; that file is then streamed into the encrypted ZIP and removed.  Office's
own encryption (msoffcrypto-tool) reads and re-writes the whole package in memory, so it cannot
stream 200,000 rows in bounded memory: the XLSX goes into the same AES ZIP as the CSV.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from pathlib import Path
from typing import Any, BinaryIO

import pyzipper

from pbx_recorder.catalog.queries import CallFilters
from pbx_recorder.catalog.scopes import Scope
from pbx_recorder.core.masking import present_call
from pbx_recorder.exports import columns, store

PAGE = 1000  # rows per catalog read
PROGRESS_EVERY = 5000  # rows between two progress updates of the job row
MAX_ROWS = 1_000_000  # an XLSX sheet holds 1,048,576 rows; a larger result is refused: narrow it

Progress = Callable[[int], None]


@dataclass(frozen=True)
class TableSpec:
    filters: CallFilters
    scope: Scope | None
    tz: tzinfo | None
    now: float  # the moment presets (today, 7d) are read at, fixed for every page
    fields: tuple[str, ...]
    unmask: bool
    kind: str  # csv | xlsx


def count(catalog: Any, spec: TableSpec) -> tuple[int, bool]:
    """How many rows the export will hold (capped), and whether that is within :data:`MAX_ROWS`."""
    page = catalog.search_page(replace(spec.filters, limit=1, after=None), now=spec.now, tz=spec.tz,
                               count=True, count_cap=MAX_ROWS + 1, scope=spec.scope)
    n = page.count.value if page.count else len(page.rows)
    return n, n <= MAX_ROWS


def rows(catalog: Any, spec: TableSpec,
         seen: Callable[[str], None] | None = None) -> Iterator[list[str | int | float]]:
    """The export's cells, row by row, one catalog page at a time (keyset: never OFFSET);
    ``seen`` gets each row's call id (the job's ``calls.export.item`` audit rows)."""
    after: str | None = None
    n = 0
    while True:
        page = catalog.search_page(replace(spec.filters, limit=PAGE, after=after), now=spec.now, tz=spec.tz,
                                   count=False, scope=spec.scope)
        for row in page.rows:
            if n >= MAX_ROWS:
                return
            n += 1
            if seen is not None:
                seen(str(row.get("call_id") or ""))
            # reduced to the columns picked first, exactly as the search API shows a row
            yield columns.cells(present_call({k: row.get(k) for k in spec.fields}, spec.unmask), spec.fields,
                                spec.tz)
        after = page.next_cursor
        if not after:
            return


def open_zip(out: BinaryIO, password: str, compression: int = pyzipper.ZIP_DEFLATED) -> pyzipper.AESZipFile:
    """An AES-256 (WinZip AES) ZIP writer; ``compression`` ZIP_STORED for audio (compressed already,
    or PCM that deflate barely shrinks at a high CPU cost)."""
    zf = pyzipper.AESZipFile(out, "w", compression=compression, encryption=pyzipper.WZ_AES)
    zf.setpassword(password.encode("utf-8"))
    zf.setencryption(pyzipper.WZ_AES, nbits=256)
    return zf


Row = list[str | int | float]


def _counted(cells: Iterator[Row], progress: Progress) -> Iterator[Row]:
    n = 0
    for row in cells:
        yield row
        n += 1
        if n % PROGRESS_EVERY == 0:
            progress(n)
    progress(n)


def write_csv(zf: pyzipper.AESZipFile, name: str, fields: Sequence[str],
              cells: Iterator[list[str | int | float]]) -> int:
    n = 0
    with zf.open(name, "w", force_zip64=True) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")  # the BOM: Excel reads UTF-8
        writer = csv.writer(text)
        writer.writerow(columns.header(fields))
        for row in cells:
            writer.writerow(row)
            n += 1
        text.flush()
        text.detach()
    return n


def write_xlsx(zf: pyzipper.AESZipFile, name: str, fields: Sequence[str],
               cells: Iterator[list[str | int | float]], work: Path) -> int:
    import xlsxwriter

    sheet_file = work.with_suffix(".xlsxpart")
    store.create(sheet_file).close()  # 0600 before xlsxwriter writes into it
    n = 0
    try:
        book = xlsxwriter.Workbook(str(sheet_file), {"constant_memory": True, "tmpdir": str(work.parent),
                                                     "strings_to_formulas": False, "strings_to_urls": False,
                                                     "strings_to_numbers": False})
        sheet = book.add_worksheet("calls")
        for c, title in enumerate(columns.header(fields)):
            sheet.write_string(0, c, title)
        for row in cells:
            n += 1
            for c, value in enumerate(row):
                if isinstance(value, str):
                    sheet.write_string(n, c, value)  # never a formula, whatever the text
                else:
                    sheet.write_number(n, c, value)
        book.close()
        with open(sheet_file, "rb") as src, zf.open(name, "w", force_zip64=True) as dst:
            shutil.copyfileobj(src, dst, 1 << 16)
    finally:
        store.remove(sheet_file)
    return n


def export(catalog: Any, spec: TableSpec, out: BinaryIO, password: str, work: Path, progress: Progress,
           inner_name: str, seen: Callable[[str], None] | None = None) -> int:
    """Write the encrypted ZIP to ``out``; the number of rows written (``seen``: see :func:`rows`)."""
    cells = _counted(rows(catalog, spec, seen), progress)
    with open_zip(out, password) as zf:
        if spec.kind == "csv":
            return write_csv(zf, inner_name, spec.fields, cells)
        return write_xlsx(zf, inner_name, spec.fields, cells, work)

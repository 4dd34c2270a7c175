"""Reading import files: what a file is, its encoding, delimiter and header row, and its rows, streamed.

XLSX through openpyxl in read-only mode; CSV in any common encoding (UTF-8
with or without BOM, UTF-16, Windows-1252) and delimiter (, ; tab |). A file
that is empty, binary, too large, has no recognisable header or far too many
columns raises ``ImportFileError`` with a message a person can act on.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Iterator

from flask import current_app

from app.services import zipguard
from app.services.errors import ServiceError
from app.services.imports.mapping import guess_mapping

SAMPLE_ROWS = 5
HEADER_SCAN_ROWS = 10
CSV_FIELD_LIMIT = 131_072
DELIMITERS = (",", ";", "\t", "|")

csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))


class ImportFileError(ServiceError):
    """The file as a whole cannot be imported (empty, binary, no header...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="file", status=422)


MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"MZ", "a program"),
    (b"\x7fELF", "a program"),
)
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class FileInfo:
    """How to read a file, and what its header says."""

    format: str  # "csv" or "xlsx"
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_line: int = 1
    headers: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def description(self) -> str:
        if self.format == "xlsx":
            return f"Excel workbook, sheet “{self.sheet}”"
        names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
        encodings = {"utf-8-sig": "UTF-8 (with BOM)", "utf-8": "UTF-8", "utf-16": "UTF-16",
                     "utf-16-le": "UTF-16", "utf-16-be": "UTF-16", "cp1252": "Windows-1252"}
        return (f"CSV, {names.get(self.delimiter or ',', repr(self.delimiter))}-separated, "
                f"{encodings.get(self.encoding or '', self.encoding)}")


def max_bytes() -> int:
    return int(current_app.config.get("IMPORT_MAX_BYTES", 200 * 1024 * 1024))


def max_columns() -> int:
    return int(current_app.config.get("IMPORT_MAX_COLUMNS", 200))


def size_text(n: int) -> str:
    return f"{n / 1024 / 1024:,.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:,.0f} KB"


def detect_encoding(path: str | os.PathLike) -> str:
    """The text encoding of a CSV file; ImportFileError for binary content.

    BOMs decide first; NUL bytes in a regular pattern mean UTF-16 without BOM;
    a file that decodes as UTF-8 from end to end (checked incrementally, in
    constant memory) is UTF-8; anything else is read as Windows-1252, which is
    what Excel writes on Western-language Windows.
    """
    with open(path, "rb") as fh:
        head = fh.read(65536)
        if head.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        elif b"\x00" in head:
            sample = head[: len(head) - len(head) % 2]
            odd = sample[1::2].count(0)
            even = sample[0::2].count(0)
            if odd > len(sample) // 4 and even == 0:
                return "utf-16-le"
            if even > len(sample) // 4 and odd == 0:
                return "utf-16-be"
            raise ImportFileError("This does not look like a CSV or Excel file: it contains binary data.")
        else:
            encoding = "utf-8"
        controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13, 12))
        if head and controls > max(2, len(head) // 100):
            raise ImportFileError("This does not look like a CSV or Excel file: it contains binary data.")
        decoder = codecs.getincrementaldecoder("utf-8")()
        fh.seek(0)
        try:
            for chunk in iter(lambda: fh.read(1024 * 1024), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return encoding


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the most, consistent, columns."""
    lines = text.splitlines()
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may end mid-line
    sample = "\n".join(lines[:30])
    best, best_score = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if any(c.strip() for c in r)]
        except csv.Error:
            continue
        if not rows:
            continue
        widths = [len(r) for r in rows[:20]]
        width = max(set(widths), key=widths.count)
        if width < 2:
            continue
        consistency = widths.count(width) / len(widths)
        score = (round(consistency, 1), width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def cell_text(value: Any) -> str:
    """A cell as text for display, mapping and reports."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value).strip()


def trimmed(cells: list[Any]) -> list[Any]:
    end = len(cells)
    while end and (cells[end - 1] is None or (isinstance(cells[end - 1], str) and not cells[end - 1].strip())):
        end -= 1
    return list(cells[:end])


def _csv_records(path, encoding: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every CSV record, streamed."""
    with open(path, "r", encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        line = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise ImportFileError(
                        f"Line {reader.line_num}: a cell is longer than {CSV_FIELD_LIMIT:,} characters. "
                        "Is this the right file?") from None
                raise ImportFileError(f"Line {reader.line_num} cannot be read: {exc}.") from None
            yield line, cells
            line = reader.line_num + 1


def _xlsx_open(path):
    from openpyxl import load_workbook

    try:
        return load_workbook(path, read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError, IndexError) as exc:
        raise ImportFileError(
            "This Excel file cannot be read. Save it again as .xlsx (Excel 2007 or later) or as CSV. "
            f"({type(exc).__name__})") from None
    except Exception as exc:  # openpyxl raises assorted errors on damaged workbooks
        raise ImportFileError(f"This Excel file cannot be read: {exc}") from None


def _xlsx_records(path, sheet: str | None, width: int | None) -> Iterator[tuple[int, list[Any]]]:
    """(row number, cell values) of a worksheet, streamed (openpyxl read-only mode)."""
    wb = _xlsx_open(path)
    try:
        ws = wb[sheet] if sheet and sheet in wb.sheetnames else wb.worksheets[0]
        limit = max_columns() + 1 if width is None else width
        for number, values in enumerate(ws.iter_rows(values_only=True, max_col=limit), start=1):
            yield number, list(values)
    finally:
        wb.close()


def _records(path, info: FileInfo, width: int | None = None) -> Iterator[tuple[int, list[Any]]]:
    if info.format == "xlsx":
        return _xlsx_records(path, info.sheet, width)
    return _csv_records(path, info.encoding or "utf-8", info.delimiter or ",")


def inspect_file(path: str | os.PathLike, filename: str = "") -> FileInfo:
    """Find how to read a file and where its header is; ImportFileError when it cannot be imported."""
    size = os.path.getsize(path)
    if size == 0:
        raise ImportFileError("The file is empty.")
    if size > max_bytes():
        raise ImportFileError(f"The file is too large ({size_text(size)}; {size_text(max_bytes())} at most). "
                              "Split it into smaller files.")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(OLE_MAGIC):
        raise ImportFileError("This is an old-style Excel (.xls) file. Save it as .xlsx or CSV and upload that.")
    for magic, what in MAGIC:
        if head.startswith(magic):
            raise ImportFileError(f"This looks like {what}, not a CSV or Excel file.")
    if head.startswith(ZIP_MAGIC):
        zipguard.check_archive(path, max_unpacked=current_app.config["IMPORT_MAX_UNPACKED_BYTES"], label="workbook")
        try:
            with zipfile.ZipFile(path) as archive:
                is_xlsx = "xl/workbook.xml" in archive.namelist()
        except zipfile.BadZipFile:
            is_xlsx = False
        if not is_xlsx:
            raise ImportFileError("This is a ZIP archive, not an Excel workbook. Upload the .xlsx or CSV "
                                  "file itself (OpenDocument .ods files must be saved as .xlsx or CSV).")
        info = FileInfo(format="xlsx", size=size)
        wb = _xlsx_open(path)
        try:
            sheets = [ws for ws in wb.worksheets]
            if not sheets:
                raise ImportFileError("This workbook has no worksheets.")
            info.sheet = sheets[0].title
            for ws in sheets:  # the first sheet with something in it
                if any(any(v not in (None, "") for v in row)
                       for row in ws.iter_rows(values_only=True, max_row=HEADER_SCAN_ROWS, max_col=50)):
                    info.sheet = ws.title
                    break
        finally:
            wb.close()
    else:
        encoding = detect_encoding(path)
        with open(path, "r", encoding=encoding, errors="replace", newline="") as fh:
            sample = fh.read(65536)
        if not sample.strip():
            raise ImportFileError("The file is empty.")
        info = FileInfo(format="csv", encoding=encoding, delimiter=_sniff_delimiter(sample), size=size)
    _find_header(path, info)
    return info


def _find_header(path, info: FileInfo) -> None:
    """The header row: among the first non-empty rows, the one naming the most known fields."""
    limit = max_columns()
    best: tuple[int, int, list[str]] | None = None
    seen = 0
    first_cells: list[str] = []
    too_wide: tuple[int, int] | None = None
    for line, cells in _records(path, info):
        cells = trimmed(cells)
        if not cells:
            continue
        seen += 1
        if len(cells) > limit:  # cannot be the header; a data row this wide is a row error later
            too_wide = too_wide or (line, len(cells))
            if seen >= HEADER_SCAN_ROWS:
                break
            continue
        texts = [cell_text(c) for c in cells]
        if seen == 1:
            first_cells = texts
        recognised = sum(1 for key in guess_mapping(texts) if key)
        if recognised >= 2 and (best is None or recognised > best[1]):
            best = (line, recognised, texts)
        if seen >= HEADER_SCAN_ROWS:
            break
    if seen == 0:
        raise ImportFileError("The file is empty: it has no rows.")
    if best is None and too_wide is not None and (not first_cells or too_wide[0] <= info.header_line):
        line, width = too_wide
        count = f"{width:,}" if info.format == "csv" else f"more than {limit:,}"
        raise ImportFileError(f"Line {line} has {count} columns; at most {limit:,} are read. "
                              "Is this the right file?")
    if best is None:
        shown = ", ".join(f"“{t[:30]}”" for t in first_cells[:6])
        raise ImportFileError(
            "No recognisable header row: the first row must name the columns, e.g. First name, Surname, "
            f"ID No, Cell, Ward. The file starts with: {shown}.")
    info.header_line, _, info.headers = best
    empty = [i for i, h in enumerate(info.headers) if not h]
    for i in empty:
        info.headers[i] = f"Column {i + 1}"


def data_rows(path, info: FileInfo) -> Iterator[tuple[int, list[Any]]]:
    """(line, cells) of every non-empty row after the header."""
    width = len(info.headers) + 1 if info.format == "xlsx" else None
    for line, cells in _records(path, info, width):
        if line <= info.header_line:
            continue
        if not any(c not in (None, "") and not (isinstance(c, str) and not c.strip()) for c in cells):
            continue
        yield line, cells


def sample_rows(path, info: FileInfo, n: int = SAMPLE_ROWS) -> list[list[str]]:
    rows = []
    for _line, cells in data_rows(path, info):
        rows.append([cell_text(c) for c in cells[: len(info.headers)]])
        if len(rows) >= n:
            break
    return rows


def count_rows(path, info: FileInfo) -> int | None:
    """Data rows in the file (CSV: one quick pass; XLSX: from the sheet's dimension, if recorded)."""
    if info.format == "xlsx":
        wb = _xlsx_open(path)
        try:
            ws = wb[info.sheet] if info.sheet in wb.sheetnames else wb.worksheets[0]
            return max(0, ws.max_row - info.header_line) if ws.max_row else None
        finally:
            wb.close()
    return sum(1 for _ in data_rows(path, info))


"""Importing members from CSV and Excel files: read, map, validate in bulk, write in batches.

The flow, shared by the console (background jobs) and ``flask members import``:

1. ``inspect_file(path)`` finds how to read the file: XLSX (openpyxl, read-only,
   streamed) or CSV in any common encoding (UTF-8 with or without BOM, UTF-16,
   Windows-1252) and delimiter (, ; tab |), and which row is the header.
   A file that is empty, binary, too large, has no recognisable header or far
   too many columns raises ``ImportFileError`` with a message a person can act on.
2. ``guess_mapping(headers)`` maps columns to member fields from their names
   ("Surname", "ID No", "Cell", "Ward"...); people adjust it and may save it
   as a named ``ImportMapping``.
3. ``Importer`` streams the rows in batches. Each row is normalised with the
   registry's own rules (``services.members.clean`` and its normalisers); each
   batch is then checked against the registry with one IN query per key
   (national ID, membership number, phone, email), never one query per row,
   and against the rows before it in the file. A row is *new*, an *update*
   (an existing member matched by national ID or membership number), *unchanged*,
   a *duplicate* or an *error*, with the reason and its line number.
4. Writing is batch by batch: members and their first status change go in
   with executemany inserts, membership numbers are allocated in blocks. The
   caller commits after every batch (``on_batch``), so a crash or a killed
   process leaves whole batches only; the committed position is saved with
   the batch, so a resumed job continues where it stopped, and any re-run
   of the same file matches the members it already created instead of
   creating them twice.

Modes: ``valid`` imports the valid rows and reports the others; ``all`` checks
every row first and writes nothing unless all are valid.

Scope: rows may only create members in units where the actor holds
members.create, and only change members where they hold members.update;
anything else is a row error. Memory stays flat with the file size: rows are
streamed, and only a small hash per key (for duplicates within the file) is
kept per row.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import uuid
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from flask import current_app
from sqlalchemy import ARRAY, Integer, Text, any_, bindparam, delete, insert, literal, null, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from app.extensions import db
from app.models import (
    MEMBER_STATUSES, AuditEntry, Counter, ImportMapping, ImportUpload, Job, Member, MemberStatusChange, Tag, Unit, User,
)
from app.models.base import utcnow
from app.models.people import member_tags
from app.security import can, scope_paths, scope_unit_ids
from app.services import audit, jobs
from app.services import members as member_service
from app.services.errors import ServiceError

MEMBERS = Member.__table__
STATUS_CHANGES = MemberStatusChange.__table__
AUDIT = AuditEntry.__table__
TAGS = Tag.__table__
COUNTERS = Counter.__table__

BAD_ROWS_KEPT = 100  # bad rows kept in a result for display; the report file has them all
SAMPLE_ROWS = 5
HEADER_SCAN_ROWS = 10
CSV_FIELD_LIMIT = 131_072
DELIMITERS = (",", ";", "\t", "|")
DATE_ORDERS = ("DMY", "MDY", "YMD")
MODES = ("valid", "all")

csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))


class ImportFileError(ServiceError):
    """The file as a whole cannot be imported (empty, binary, no header...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="file", status=422)


# --- fields and header guessing ---------------------------------------------------------


@dataclass(frozen=True)
class ImportField:
    key: str
    label: str
    # Header spellings that mean this field exactly, squashed to letters and digits
    # ("ID No." -> "idno"); earlier ones win when several columns match.
    names: tuple[str, ...]
    # Fragments that suggest it when no exact spelling matched ("Member Surname").
    hints: tuple[str, ...] = ()


FIELDS: tuple[ImportField, ...] = (
    ImportField("membership_number", "Membership number",
                ("membershipnumber", "membershipno", "membershipnum", "membernumber", "memberno", "membernum",
                 "membershipid", "memberid", "membership"),
                ("membershipno", "membershipnum", "memberno", "membernum")),
    ImportField("first_name", "First name",
                ("firstname", "firstnames", "givenname", "givennames", "forename", "forenames", "first",
                 "christianname", "prenom"),
                ("firstname", "forename", "givenname")),
    ImportField("last_name", "Last name (surname)",
                ("lastname", "surname", "familyname", "last", "nom", "apellido"),
                ("surname", "lastname", "familyname")),
    ImportField("full_name", "Full name (split into first and last name)",
                ("fullname", "name", "names", "membername", "fullnames", "nameandsurname")),
    ImportField("other_names", "Other names",
                ("othernames", "othername", "middlename", "middlenames", "middle"),
                ("middlename", "othername")),
    ImportField("gender", "Gender", ("gender", "sex"), ("gender",)),
    ImportField("date_of_birth", "Date of birth",
                ("dateofbirth", "dob", "birthdate", "birthday", "born", "datenaissance"),
                ("birth", "dob")),
    ImportField("national_id", "National ID",
                ("nationalid", "nationalidnumber", "nationalidno", "idno", "idnumber", "id", "nrc", "nrcno",
                 "nrcnumber", "identitynumber", "identityno", "identitycard", "idcard", "nin", "passport",
                 "passportno", "passportnumber"),
                ("nationalid", "nrc", "idno", "idnumber", "identity")),
    ImportField("phone", "Phone",
                ("phone", "phonenumber", "phoneno", "cell", "cellphone", "cellno", "cellnumber", "mobile",
                 "mobilenumber", "mobileno", "telephone", "tel", "telno", "contact", "contactnumber",
                 "contactno", "msisdn", "whatsapp"),
                ("phone", "mobile", "cell", "tel")),
    ImportField("email", "Email", ("email", "emailaddress", "mail", "emailid"), ("email",)),
    ImportField("address", "Address",
                ("address", "physicaladdress", "residentialaddress", "homeaddress", "postaladdress",
                 "residence"),
                ("address",)),
    ImportField("unit", "Ward (code or name path)",
                ("ward", "unit", "wardcode", "unitcode", "wardname", "unitname", "branch", "branchcode",
                 "unitpath", "wardpath", "location"),
                ("ward", "unit", "branch")),
    ImportField("joined_on", "Joined on",
                ("joinedon", "joined", "datejoined", "joindate", "joiningdate", "membershipdate",
                 "registrationdate", "dateregistered", "registeredon", "membersince", "dateofjoining"),
                ("joined", "joindate", "registrationdate")),
    ImportField("status", "Status", ("status", "membershipstatus", "memberstatus"), ("status",)),
    ImportField("notes", "Notes", ("notes", "note", "comments", "comment", "remarks", "remark"),
                ("note", "comment", "remark")),
    ImportField("tags", "Tags", ("tags", "tag", "labels", "groups"), ("tag",)),
)
FIELD_BY_KEY = {f.key: f for f in FIELDS}
FIELD_LABELS = {f.key: f.label for f in FIELDS}


def squash(header: Any) -> str:
    """A header reduced to folded letters and digits: 'E-mail Address ' -> 'emailaddress'."""
    text = member_service.fold(str(header or "")).replace("#", "no")
    return re.sub(r"[^0-9a-z]+", "", text)


def guess_mapping(headers: list[str]) -> list[str]:
    """The member field each column most likely holds ("" where none), each field used once."""
    squashed = [squash(h) for h in headers]
    mapping = [""] * len(headers)
    taken: set[str] = set()

    def assign(col: int, key: str) -> None:
        mapping[col] = key
        taken.add(key)

    for fld in FIELDS:  # exact spellings first, in each field's order of preference
        for name in fld.names:
            if fld.key in taken:
                break
            if fld.key == "full_name" and {"first_name", "last_name"} <= taken:
                break
            for col, text in enumerate(squashed):
                if text == name and not mapping[col]:
                    assign(col, fld.key)
                    break
    for col, text in enumerate(squashed):  # then fragments, for headers still unmapped
        if mapping[col] or not text:
            continue
        for fld in FIELDS:
            if fld.key not in taken and any(hint in text for hint in fld.hints):
                assign(col, fld.key)
                break
    if "full_name" in taken and ({"first_name", "last_name"} & taken):
        mapping = ["" if key == "full_name" else key for key in mapping]
    return mapping


def mapping_from_saved(headers: list[str], saved: ImportMapping) -> list[str]:
    """Apply a saved mapping by header name; columns it does not know keep the guess."""
    guessed = guess_mapping(headers)
    columns = saved.columns or {}
    mapping = [columns.get(squash(h), guessed[i]) if squash(h) in columns else guessed[i]
               for i, h in enumerate(headers)]
    # A guessed field that the saved mapping gives to another column yields to it.
    explicit = {columns[squash(h)] for h in headers if squash(h) in columns and columns[squash(h)]}
    return [key if (squash(headers[i]) in columns or key not in explicit) else ""
            for i, key in enumerate(mapping)]


def check_mapping(mapping: list[str], default_unit_id: int | None) -> None:
    """Refuse a mapping that cannot produce members."""
    used = [key for key in mapping if key]
    unknown = [key for key in used if key not in FIELD_BY_KEY]
    if unknown:
        raise ServiceError(f"Unknown field '{unknown[0]}'.", field="mapping")
    twice = sorted({key for key in used if used.count(key) > 1})
    if twice:
        raise ServiceError(f"{FIELD_LABELS[twice[0]]} is chosen for more than one column.", field="mapping")
    names = set(used)
    if "full_name" in names and names & {"first_name", "last_name"}:
        raise ServiceError("Choose either Full name, or First name and Last name.", field="mapping")
    if "full_name" not in names and not {"first_name", "last_name"} <= names:
        raise ServiceError("Choose the columns holding the first name and the last name (or the full name).",
                           field="mapping")
    if "unit" not in names and default_unit_id is None:
        raise ServiceError("Choose the column holding the ward, or a ward for every row.", field="unit")


def save_mapping(actor, name: str, headers: list[str], mapping: list[str], options: dict[str, Any]) -> ImportMapping:
    """Save (or replace) the actor's mapping called ``name``."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ServiceError("Give the mapping a name (80 characters at most).", field="save_as")
    row = db.session.scalar(select(ImportMapping).where(ImportMapping.created_by_id == getattr(actor, "id", None),
                                                        ImportMapping.name == name))
    if row is None:
        row = ImportMapping(name=name, created_by_id=getattr(actor, "id", None))
        db.session.add(row)
    row.columns = {squash(h): key for h, key in zip(headers, mapping) if squash(h)}
    row.options = {k: v for k, v in options.items() if k in ("date_order", "default_status")}
    db.session.flush()
    return row


def saved_mappings(actor) -> list[ImportMapping]:
    return list(db.session.scalars(select(ImportMapping)
                                   .where(ImportMapping.created_by_id == getattr(actor, "id", None))
                                   .order_by(ImportMapping.name)))


# --- reading files ----------------------------------------------------------------------

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


def _size_text(n: int) -> str:
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


def _cell_text(value: Any) -> str:
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


def _trimmed(cells: list[Any]) -> list[Any]:
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
        raise ImportFileError(f"The file is too large ({_size_text(size)}; {_size_text(max_bytes())} at most). "
                              "Split it into smaller files.")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(OLE_MAGIC):
        raise ImportFileError("This is an old-style Excel (.xls) file. Save it as .xlsx or CSV and upload that.")
    for magic, what in MAGIC:
        if head.startswith(magic):
            raise ImportFileError(f"This looks like {what}, not a CSV or Excel file.")
    if head.startswith(ZIP_MAGIC):
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
        cells = _trimmed(cells)
        if not cells:
            continue
        seen += 1
        if len(cells) > limit:  # cannot be the header; a data row this wide is a row error later
            too_wide = too_wide or (line, len(cells))
            if seen >= HEADER_SCAN_ROWS:
                break
            continue
        texts = [_cell_text(c) for c in cells]
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
        rows.append([_cell_text(c) for c in cells[: len(info.headers)]])
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


# --- values -----------------------------------------------------------------------------

MONTHS = {name: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
     ("nov", "november"), ("dec", "december")], start=1) for name in names}
EXCEL_EPOCH = date(1899, 12, 30)
NUMERIC_DATE_RE = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
ISO_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?)?$")
WORDY_RE = re.compile(r"^(\d{1,2})[\s\-./]*([a-z]+)\.?[\s\-./,]*(\d{2,4})$")
WORDY_US_RE = re.compile(r"^([a-z]+)\.?[\s\-./]*(\d{1,2})(?:st|nd|rd|th)?[\s,\-./]+(\d{2,4})$")


def _year(text: str) -> int:
    year = int(text)
    if len(text) <= 2:
        pivot = date.today().year % 100
        year += 2000 if year <= pivot else 1900
    return year


def parse_date(value: Any, order: str = "DMY") -> date | None:
    """A date from a cell: date cells, Excel serial numbers, ISO, d/m/y (or m/d/y) and '5 March 1990'."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _serial(value)
    text = str(value).strip().lower()
    if not text:
        return None
    try:
        if re.fullmatch(r"\d{5}(\.0+)?", text):
            return _serial(float(text))
        if re.fullmatch(r"\d{8}", text):
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        match = ISO_RE.match(text)
        if match:
            return date(int(match[1]), int(match[2]), int(match[3]))
        match = NUMERIC_DATE_RE.match(text.split(" ")[0] if " 00:00" in text else text)
        if match:
            a, b, c = match.groups()
            if len(a) == 4:  # year first: y/m/d
                return date(int(a), int(b), int(c))
            day, month = (a, b) if order != "MDY" else (b, a)
            return date(_year(c), int(month), int(day))
        match = WORDY_RE.match(text)
        if match and match[2] in MONTHS:
            return date(_year(match[3]), MONTHS[match[2]], int(match[1]))
        match = WORDY_US_RE.match(text)
        if match and match[1] in MONTHS:
            return date(_year(match[3]), MONTHS[match[1]], int(match[2]))
    except ValueError:
        pass
    example = "25/04/1990" if order != "MDY" else "04/25/1990"
    raise ServiceError(f"'{value}' is not a date (write it like {example} or 1990-04-25).")


def _serial(number: float) -> date:
    """An Excel serial day number (1900 date system) as a date."""
    if not 1 <= number < 2958466:
        raise ServiceError(f"'{number}' is not a date.")
    return EXCEL_EPOCH + timedelta(days=int(number))


GENDER_WORDS = {
    "f": "female", "female": "female", "woman": "female", "w": "female", "girl": "female", "femme": "female",
    "m": "male", "male": "male", "man": "male", "boy": "male", "homme": "male",
    "o": "other", "other": "other", "x": "other", "nonbinary": "other", "non-binary": "other",
    "u": "unspecified", "unspecified": "unspecified", "unknown": "unspecified", "prefernottosay": "unspecified",
    "prefer not to say": "unspecified", "n/a": "unspecified",
}

# A value Muster itself neutralised in an export ("'+260...", "'=..."): drop the quote.
NEUTRALISED_RE = re.compile(r"^'(?=[=+\-@\t\r])")
FORMULA_TAIL_RE = re.compile(r"[|!(]")


def looks_like_formula(text: str, key: str) -> bool:
    """Would a spreadsheet run this cell? '=...' always; '+', '-', '@' with a call or a pipe.

    Phone numbers legitimately start with '+' (and may hold parentheses); they
    are validated as phone numbers anyway, so they are not second-guessed here.
    """
    if not text:
        return False
    first = text[0]
    if first == "=":
        return True
    if first == "@":
        return key != "email" or bool(FORMULA_TAIL_RE.search(text))
    if first in "+-" and key != "phone":
        return bool(FORMULA_TAIL_RE.search(text))
    return False


def _text_of(value: Any) -> str:
    return _cell_text(value)


def split_full_name(text: str) -> tuple[str, str]:
    """'Banda, John' -> ('John', 'Banda'); 'John Mwale Banda' -> ('John Mwale', 'Banda')."""
    text = " ".join(text.split())
    if "," in text:
        last, _, first = text.partition(",")
        return first.strip(), last.strip()
    parts = text.rsplit(" ", 1)
    if len(parts) == 1:
        return "", parts[0]
    return parts[0], parts[1]


# --- units ------------------------------------------------------------------------------

UNIT_SPLIT_RE = re.compile(r"\s*(?:/|>|›|»|\\)\s*")


class UnitResolver:
    """Finds a unit from a cell: its code ('W1'), its name, or a name/code path
    ('Northern / Kasama / Lukashya / Lukashya Ward 1', or its last few parts).

    The whole tree is loaded once (it is small next to the registry) and each
    distinct cell is resolved once.
    """

    def __init__(self) -> None:
        self.paths: dict[int, str] = {}
        self.names: dict[int, str] = {}
        self.by_code: dict[str, list[int]] = defaultdict(list)
        self.by_name: dict[str, list[int]] = defaultdict(list)
        self.children: dict[int | None, list[tuple[int, str, str]]] = defaultdict(list)
        for uid, parent_id, name, code, path in db.session.execute(
            select(Unit.id, Unit.parent_id, Unit.name, Unit.code, Unit.path)
        ):
            self.paths[uid] = path
            self.names[uid] = name
            self.by_code[code.upper()].append(uid)
            self.by_name[member_service.fold(name)].append(uid)
            self.children[parent_id].append((uid, member_service.fold(name), code.upper()))
        self._cache: dict[str, tuple[int | None, str | None]] = {}

    def resolve(self, text: str) -> tuple[int | None, str | None]:
        """(unit id, None), or (None, "unknown" | "ambiguous")."""
        key = text.strip()
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._resolve(key)
        return hit

    def _resolve(self, text: str) -> tuple[int | None, str | None]:
        parts = [p for p in UNIT_SPLIT_RE.split(text) if p.strip()]
        if not parts:
            return None, "unknown"
        if len(parts) == 1:
            for found in (self.by_code.get(parts[0].upper(), []), self.by_name.get(member_service.fold(parts[0]), [])):
                if len(found) == 1:
                    return found[0], None
                if len(found) > 1:
                    return None, "ambiguous"
            return None, "unknown"
        candidates = set(self.by_code.get(parts[0].upper(), [])) | set(self.by_name.get(member_service.fold(parts[0]), []))
        for part in parts[1:]:
            folded, code = member_service.fold(part), part.upper()
            candidates = {uid for parent in candidates for uid, name, c in self.children.get(parent, [])
                          if name == folded or c == code}
        if len(candidates) == 1:
            return candidates.pop(), None
        return None, ("ambiguous" if candidates else "unknown")

    def common_ancestor(self, unit_ids: Iterable[int]) -> int | None:
        """The deepest unit whose subtree holds all of ``unit_ids``."""
        common: list[str] | None = None
        for uid in unit_ids:
            parts = self.paths.get(uid, "").strip("/").split("/")
            if common is None:
                common = parts
            else:
                n = 0
                while n < min(len(common), len(parts)) and common[n] == parts[n]:
                    n += 1
                common = common[:n]
            if not common:
                return None
        return int(common[-1]) if common and common[-1] else None


# --- validation and writing -------------------------------------------------------------

KINDS = ("new", "update", "unchanged", "duplicate", "error")
COMPARED = ("first_name", "last_name", "other_names", "gender", "date_of_birth", "national_id", "phone", "email",
            "address", "joined_on", "notes")
KEY_LABELS = {"national_id": "national ID", "membership_number": "membership number", "phone": "phone number",
              "email": "email address"}
LOOKUP_COLUMNS = (MEMBERS.c.id, MEMBERS.c.membership_number, MEMBERS.c.unit_id, MEMBERS.c.status,
                  MEMBERS.c.deleted_at, *[MEMBERS.c[name] for name in COMPARED])


@dataclass
class ImportSettings:
    """What the person chose: the column mapping and how to read and apply the rows."""

    mapping: list[str]
    default_unit_id: int | None = None
    date_order: str = "DMY"
    default_status: str = "pending"
    mode: str = "valid"  # "valid": import the valid rows; "all": nothing unless every row is valid
    batch_size: int = 1000

    def as_dict(self) -> dict[str, Any]:
        return {"mapping": self.mapping, "default_unit_id": self.default_unit_id, "date_order": self.date_order,
                "default_status": self.default_status, "mode": self.mode, "batch_size": self.batch_size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Progress:
    """Where an import stands; handed to ``on_batch`` after every batch."""

    phase: str  # "check" (all-or-nothing: validating everything first) or "write" (or "preview")
    done: int = 0
    total: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    batch_size: int = 1000

    @property
    def bad(self) -> int:
        return self.counts["duplicate"] + self.counts["error"]

    def resume_state(self) -> dict[str, Any]:
        return {"phase": self.phase, "rows_done": self.done, "batch_size": self.batch_size,
                "counts": dict(self.counts)}

    @property
    def message(self) -> str:
        if self.phase == "check":
            return "Checking every row before writing anything (all-or-nothing)…"
        if self.phase == "preview":
            return "Checking the rows…"
        return (f"{self.counts['new']:,} new, {self.counts['update']:,} updated, "
                f"{self.counts['unchanged']:,} unchanged so far")


@dataclass
class ImportResult:
    counts: dict[str, int]
    rows: int
    bad_rows: list[tuple[int, str]]
    written: bool
    refused: bool = False
    report_path: str | None = None
    unit_id: int | None = None

    @property
    def bad(self) -> int:
        return self.counts["duplicate"] + self.counts["error"]

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "new": self.counts["new"], "updated": self.counts["update"],
                "unchanged": self.counts["unchanged"], "duplicates": self.counts["duplicate"],
                "errors": self.counts["error"]}


class _Row:
    __slots__ = ("line", "cells", "values", "unit_id", "unit_text", "status", "number", "tags", "problems",
                 "kind", "member_id", "changes", "keys")

    def __init__(self, line: int, cells: list[Any]) -> None:
        self.line = line
        self.cells = cells
        self.values: dict[str, Any] = {}
        self.unit_id: int | None = None
        self.unit_text: str | None = None
        self.status: str | None = None
        self.number: str | None = None
        self.tags: list[str] | None = None
        self.problems: list[str] = []
        self.kind = "error"
        self.member_id: int | None = None
        self.changes: dict[str, tuple[Any, Any]] = {}
        self.keys: list[tuple[str, str]] = []

    def fail(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.problems.append(reason)


class Importer:
    """Validates and writes the rows of one file for one actor.

    ``run(write=False)`` is the preview (nothing changes); ``run(write=True)``
    writes batch by batch and calls ``on_batch(progress)`` after each one,
    where the caller commits. ``resume`` (a ``Progress.resume_state()``)
    continues an interrupted run: batches already committed are re-read and
    checked (for duplicates within the file and the error report) but not
    written or counted again.
    """

    def __init__(self, actor, path: str | os.PathLike, info: FileInfo, settings: ImportSettings, *,
                 filename: str = "", report_path: str | os.PathLike | None = None) -> None:
        if settings.mode not in MODES:
            raise ServiceError("Choose how to import: the valid rows, or all or nothing.", field="mode")
        if settings.date_order not in DATE_ORDERS:
            raise ServiceError("Dates are read as DMY, MDY or YMD.", field="date_order")
        if settings.default_status not in ("pending", "active"):
            raise ServiceError("New members start as pending or active.", field="default_status")
        check_mapping(settings.mapping, settings.default_unit_id)
        self.actor = actor
        self.actor_id = getattr(actor, "id", None)
        self.path = path
        self.info = info
        self.settings = settings
        self.filename = filename or os.path.basename(str(path))
        self.report_path = report_path
        self.columns = [(i, key, info.headers[i] if i < len(info.headers) else f"Column {i + 1}")
                        for i, key in enumerate(settings.mapping) if key]
        self.width = len(info.headers)
        self.units = UnitResolver()
        self.create_ids = self._scope("members.create")
        self.update_ids = self._scope("members.update")
        self.read_ids = self._scope("members.read")
        if settings.default_unit_id is not None and not self._may(self.create_ids, settings.default_unit_id):
            raise ServiceError("The ward chosen for every row is outside your area.", field="unit")
        self.prefix = current_app.config["MEMBER_NUMBER_PREFIX"]
        self.own_number_re = re.compile(rf"^{re.escape(self.prefix.upper())}\d+$")
        self.region = current_app.config["DEFAULT_PHONE_REGION"]
        self.mapped = {key for _i, key, _h in self.columns}
        # The column header to name in messages about a field ("Cell: ... is not a valid phone number").
        self.headers_of = {key: header for _i, key, header in self.columns}
        if "full_name" in self.headers_of:
            self.headers_of.setdefault("first_name", self.headers_of["full_name"])
            self.headers_of.setdefault("last_name", self.headers_of["full_name"])
        self.touched_units: set[int] = set()
        self._seen: dict[int, int] = {}  # hash of (key, value) -> first line, for duplicates within the file
        self._claimed: dict[int, int] = {}  # member id -> line of the row already updating it
        self._added: list[tuple[str, int]] = []  # what the current batch added to the two above
        self._tag_ids: dict[str, int] = {}
        self.status_reason = f"Imported from {self.filename}"[:200]
        self.dialect = db.session.get_bind().dialect.name
        self.sqlite = self.dialect == "sqlite"

    # -- scope ----------------------------------------------------------------------

    def _scope(self, permission: str) -> set[int] | None:
        if self.actor is None:
            return None
        ids = scope_unit_ids(self.actor, permission)
        return None if ids is None else set(ids)

    @staticmethod
    def _may(ids: set[int] | None, unit_id: int) -> bool:
        return ids is None or unit_id in ids

    # -- running --------------------------------------------------------------------

    def run(self, *, write: bool, on_batch: Callable[[Progress], None] | None = None,
            resume: dict[str, Any] | None = None, total: int | None = None) -> ImportResult:
        """Validate every row; with ``write``, also write (mode "all": only if all rows are valid)."""
        resume = resume or {}
        if write and self.settings.mode == "all" and resume.get("phase") != "write":
            check = self._pass(write=False, phase="check", on_batch=on_batch, resume=None, total=total)
            if check.bad:
                check.refused = True
                check.written = False
                return check
            total = check.rows
            resume = {}
        return self._pass(write=write, phase="write" if write else "preview", on_batch=on_batch,
                          resume=resume or None, total=total)

    def _pass(self, *, write: bool, phase: str, on_batch, resume, total) -> ImportResult:
        self._seen.clear()
        self._claimed.clear()
        self.touched_units.clear()
        batch_size = int((resume or {}).get("batch_size") or self.settings.batch_size)
        skip_until = int((resume or {}).get("rows_done") or 0)
        progress = Progress(phase=phase, total=total, batch_size=batch_size)
        if resume:
            progress.counts.update(resume.get("counts") or {})
        bad_rows: list[tuple[int, str]] = []
        report = _ReportWriter(self.report_path, self.info.headers) if self.report_path else None
        rows_seen = 0
        try:
            batch: list[tuple[int, list[Any]]] = []
            for item in data_rows(self.path, self.info):
                batch.append(item)
                if len(batch) >= batch_size:
                    rows_seen = self._batch(batch, rows_seen, skip_until, write, progress, bad_rows, report, on_batch)
                    batch = []
            if batch:
                rows_seen = self._batch(batch, rows_seen, skip_until, write, progress, bad_rows, report, on_batch)
        finally:
            if report:
                report.close()
        progress.total = rows_seen
        return ImportResult(counts=dict(progress.counts), rows=rows_seen, bad_rows=bad_rows, written=write,
                            report_path=str(self.report_path) if self.report_path else None,
                            unit_id=self._audit_unit())

    def _batch(self, items, rows_seen, skip_until, write, progress, bad_rows, report, on_batch) -> int:
        rows_seen += len(items)
        replay = rows_seen <= skip_until  # committed by an earlier, interrupted run
        rows = [self._normalise(line, cells) for line, cells in items]
        if write and not replay:
            take_write_lock()
            # Written in a savepoint: if another writer took a national ID or phone in
            # the meantime (unique constraint), the batch is checked again and retried once.
            for attempt in (1, 2):
                self._added = []
                self._classify(rows)
                savepoint = db.session.begin_nested()
                try:
                    self._write(rows)
                    savepoint.commit()
                    break
                except Exception as exc:
                    savepoint.rollback()
                    if not isinstance(exc, IntegrityError) or attempt == 2:
                        if isinstance(exc, IntegrityError):
                            raise ServiceError(
                                f"Lines {rows[0].line}-{rows[-1].line} clash with changes made while the import "
                                "ran. Rows before them are imported; run the import again to finish.") from None
                        raise
                    self._forget_batch()
                    rows = [self._normalise(line, cells) for line, cells in items]
        else:
            self._classify(rows)
        for row in rows:
            if row.kind in ("duplicate", "error"):
                reason = " ".join(row.problems)
                if len(bad_rows) < BAD_ROWS_KEPT:
                    bad_rows.append((row.line, reason))
                if report:
                    report.write(row.line, reason, row.cells)
            elif row.unit_id is not None and not replay:
                self.touched_units.add(row.unit_id)
            if not replay:
                progress.counts[row.kind] += 1
        progress.done = max(progress.done, rows_seen)
        if on_batch is not None and (not replay or rows_seen == skip_until):
            on_batch(progress)
        return rows_seen

    def _in(self, column, values: list):
        """``column IN (values)``; on PostgreSQL ``= ANY(array)``: one parameter instead of a thousand."""
        if self.sqlite or self.dialect != "postgresql":
            return column.in_(values)
        return column == any_(bindparam(None, value=list(values), type_=ARRAY(column.type)))

    def _audit_unit(self) -> int | None:
        unit_id = self.units.common_ancestor(self.touched_units) if self.touched_units else None
        return unit_id if unit_id is not None else self.settings.default_unit_id

    # -- one row, on its own --------------------------------------------------------

    def _normalise(self, line: int, cells: list[Any]) -> _Row:
        row = _Row(line, cells)
        problems = row.problems
        if len(cells) > self.width and any(_cell_text(c) for c in cells[self.width:]):
            if self.info.format == "csv":
                problems.append(f"This row has {len(_trimmed(cells)):,} cells but the header names only "
                                f"{self.width:,} columns.")
            else:
                problems.append(f"This row has values beyond the {self.width:,} columns the header names.")
        data: dict[str, Any] = {}
        refused: set[str] = set()
        for idx, key, header in self.columns:
            raw = cells[idx] if idx < len(cells) else None
            if raw is None:
                continue
            if isinstance(raw, str):
                raw = raw.strip()
                if not raw:
                    continue
                if raw[0] == "'":
                    raw = NEUTRALISED_RE.sub("", raw)
                if looks_like_formula(raw, key):
                    shown = raw if len(raw) <= 30 else raw[:27] + "…"
                    problems.append(f"{header}: “{shown}” is a spreadsheet formula; only plain values are imported.")
                    refused.add(key)
                    continue
            elif not isinstance(raw, (int, float, datetime, date, time)):
                problems.append(f"{header}: a spreadsheet formula; only plain values are imported.")
                refused.add(key)
                continue
            try:
                self._convert(row, key, raw, data)
            except ServiceError as exc:
                problems.append(f"{header}: {exc.message}")
        for key in ("first_name", "last_name"):
            if key not in data and not refused & {key, "full_name"}:
                label = "First name" if key == "first_name" else "Last name"
                header = self.headers_of.get(key, label)
                problems.append(f"{label} is required." if header == label else f"{header}: {label} is required.")
        if data:
            row.values = self._clean(data, problems, self.headers_of)
        if row.unit_id is None and row.unit_text is None:
            if self.settings.default_unit_id is not None:
                row.unit_id = self.settings.default_unit_id
            else:
                problems.append("No ward given.")
        if row.values.get("national_id"):
            row.keys.append(("national_id", row.values["national_id"]))
        if row.number:
            row.keys.append(("membership_number", row.number))
        if row.values.get("phone"):
            row.keys.append(("phone", row.values["phone"]))
        if row.values.get("email"):
            row.keys.append(("email", row.values["email"]))
        return row

    def _convert(self, row: _Row, key: str, raw: Any, data: dict[str, Any]) -> None:
        if key in ("date_of_birth", "joined_on"):
            data[key] = parse_date(raw, self.settings.date_order)
        elif key == "unit":
            text = _text_of(raw)
            row.unit_text = text
            unit_id, problem = self.units.resolve(text)
            if unit_id is None:
                if self.create_ids is not None:
                    raise ServiceError(f"“{text}” is not a ward you can import into.")
                if problem == "ambiguous":
                    raise ServiceError(f"“{text}” matches several units; give its path, e.g. "
                                       "Province / District / Constituency / Ward.")
                raise ServiceError(f"Unknown ward “{text}”.")
            row.unit_id = unit_id
        elif key == "status":
            status = _text_of(raw).lower()
            if status not in MEMBER_STATUSES:
                raise ServiceError(f"Unknown status “{raw}” (use one of: {', '.join(MEMBER_STATUSES)}).")
            row.status = status
        elif key == "membership_number":
            number = re.sub(r"\s+", "", _text_of(raw)).upper()
            if len(number) > 32:
                raise ServiceError("A membership number is 32 characters at most.")
            row.number = number or None
        elif key == "gender":
            text = _text_of(raw).lower()
            gender = GENDER_WORDS.get(text, GENDER_WORDS.get(text.replace(" ", ""), text))
            data["gender"] = gender
        elif key == "full_name":
            first, last = split_full_name(_text_of(raw))
            if first:
                data["first_name"] = first
            if last:
                data["last_name"] = last
        elif key == "tags":
            row.tags = [t for t in re.split(r"[,;]", _text_of(raw)) if t.strip()]
            data["tags"] = row.tags
        else:
            data[key] = _text_of(raw)

    @staticmethod
    def _clean(data: dict[str, Any], problems: list[str], headers: dict[str, str]) -> dict[str, Any]:
        """The registry's own rules (members.clean); on a problem, field by field so every one is reported."""
        try:
            return member_service.clean(data, partial=True)
        except ServiceError:
            pass
        out: dict[str, Any] = {}
        for key, value in data.items():
            try:
                out.update(member_service.clean({key: value}, partial=True))
            except ServiceError as exc:
                problems.append(f"{headers.get(key, FIELD_LABELS.get(key, key))}: {exc.message}")
        return out

    # -- a batch against the file and the registry ----------------------------------

    def _lookup(self, rows: list[_Row]):
        wanted: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            if not row.problems:
                for key, value in row.keys:
                    wanted[key].add(value)
        found: dict[int, Any] = {}
        index: dict[str, dict[str, list[int]]] = {key: defaultdict(list) for key in KEY_LABELS}
        for key, values in wanted.items():
            if not values:
                continue
            column = MEMBERS.c[key]
            for member in db.session.execute(select(*LOOKUP_COLUMNS).where(self._in(column, sorted(values)))):
                found[member.id] = member
        for member in found.values():
            for key in KEY_LABELS:
                value = getattr(member, key)
                if value is not None:
                    index[key][value].append(member.id)
        return found, index

    def _keyless_matches(self, rows: list[_Row]) -> dict[tuple, Any]:
        """Members identical to rows that carry no ID, number, phone or email (to stay idempotent)."""
        keyless = [r for r in rows if not r.problems and not r.keys and r.values.get("last_name")]
        if not keyless:
            return {}
        surnames = {member_service.fold(r.values["last_name"]) for r in keyless}
        units = {r.unit_id for r in keyless if r.unit_id is not None}
        matches: dict[tuple, Any] = {}
        if not units:
            return matches
        stmt = select(*LOOKUP_COLUMNS).where(self._in(MEMBERS.c.surname_key, sorted(surnames)),
                                             self._in(MEMBERS.c.unit_id, sorted(units)),
                                             MEMBERS.c.deleted_at.is_(None))
        for m in db.session.execute(stmt):
            matches.setdefault((member_service.fold(m.first_name), member_service.fold(m.last_name), m.unit_id,
                                m.date_of_birth), m)
        return matches

    def _who(self, member) -> str:
        return f"{member.first_name} {member.last_name} ({member.membership_number})"

    def _visible(self, member) -> bool:
        return self.read_ids is None or member.unit_id in self.read_ids

    def _classify(self, rows: list[_Row]) -> None:
        found, index = self._lookup(rows)
        keyless = self._keyless_matches(rows)
        tags_of = self._existing_tags(list(found) + [m.id for m in keyless.values()]) if "tags" in self.mapped else {}
        for row in rows:
            row.kind, row.member_id, row.changes = "error", None, {}
            if row.problems:
                continue
            if self._duplicate_in_file(row):
                continue
            values = row.values
            by_id = index["national_id"].get(values.get("national_id") or "", [])
            by_number = index["membership_number"].get(row.number or "", [])
            match_id = (by_id or by_number or [None])[0]
            if by_id and by_number and by_id[0] != by_number[0]:
                row.fail("error", "The national ID and the membership number belong to different members.")
                continue
            if match_id is None and row.number and self.own_number_re.match(row.number):
                row.fail("error", f"No member has membership number {row.number} (leave it empty for new "
                                  "members: Muster numbers them).")
                continue
            if match_id is not None:
                self._as_update(row, found[match_id], index, found, tags_of)
            else:
                self._as_new(row, index, found, keyless, tags_of)
            if row.kind in ("new", "update", "unchanged"):
                self._remember(row)

    def _hash(self, key: str, value: str) -> int:
        return hash((key, value))

    def _duplicate_in_file(self, row: _Row) -> bool:
        for key, value in row.keys:
            line = self._seen.get(self._hash(key, value))
            if line is not None:
                row.fail("duplicate", f"Same {KEY_LABELS[key]} as line {line}.")
                return True
        return False

    def _remember(self, row: _Row) -> None:
        for key, value in row.keys:
            digest = self._hash(key, value)
            if digest not in self._seen:
                self._seen[digest] = row.line
                self._added.append(("seen", digest))
        if row.member_id is not None and row.member_id not in self._claimed:
            self._claimed[row.member_id] = row.line
            self._added.append(("claimed", row.member_id))

    def _forget_batch(self) -> None:
        """Undo what the last classified batch added to the in-file state (before a retry)."""
        for kind, key in self._added:
            (self._seen if kind == "seen" else self._claimed).pop(key, None)
        self._added = []

    def _taken_by_other(self, row: _Row, index, found, exclude_id: int | None):
        for key in ("national_id", "phone", "email"):
            value = row.values.get(key)
            for other in index[key].get(value or "", []):
                if other != exclude_id:
                    return key, found[other]
        return None

    def _duplicate_message(self, key: str, member) -> str:
        label = KEY_LABELS[key]
        if self._visible(member):
            deleted = " (deleted; it can be restored)" if member.deleted_at is not None else ""
            return f"A member with this {label} already exists: {self._who(member)}{deleted}."
        return f"A member with this {label} already exists."

    def _as_new(self, row: _Row, index, found, keyless, tags_of) -> None:
        clash = self._taken_by_other(row, index, found, None)
        if clash is not None:
            key, member = clash
            if member.deleted_at is None and self._visible(member) and not self._differences(row, member, tags_of):
                row.kind, row.member_id = "unchanged", member.id  # this very member, imported before
                return
            row.fail("duplicate", self._duplicate_message(key, member))
            return
        if not row.keys and keyless:
            v = row.values
            member = keyless.get((member_service.fold(v.get("first_name", "")), member_service.fold(v["last_name"]),
                                  row.unit_id, v.get("date_of_birth")))
            if member is not None and self._visible(member) and not self._differences(row, member, tags_of):
                row.kind, row.member_id = "unchanged", member.id
                return
        if row.unit_id is None or not self._may(self.create_ids, row.unit_id):
            row.fail("error", f"{self.headers_of.get('unit', 'Ward')}: “{row.unit_text}” is not a ward you can "
                              "import into.")
            return
        row.kind = "new"

    def _as_update(self, row: _Row, member, index, found, tags_of) -> None:
        key = "national_id" if row.values.get("national_id") == member.national_id and member.national_id \
            else "membership_number"
        if not self._visible(member):
            row.fail("duplicate", f"A member with this {KEY_LABELS[key]} already exists.")
            return
        if member.deleted_at is not None:
            row.fail("error", f"This is {self._who(member)}, who was deleted; restore them first.")
            return
        if row.number and row.number != member.membership_number:
            row.fail("error", f"The national ID belongs to {self._who(member)}, not to membership number "
                              f"{row.number}.")
            return
        claimed = self._claimed.get(member.id)
        if claimed is not None:
            row.fail("duplicate", f"Line {claimed} already updates {self._who(member)}.")
            return
        clash = self._taken_by_other(row, index, found, member.id)
        if clash is not None:
            row.fail("duplicate", self._duplicate_message(*clash))
            return
        row.member_id = member.id
        changes = self._differences(row, member, tags_of)
        if not changes:
            row.kind = "unchanged"
            row.unit_id = member.unit_id
            return
        if not self._may(self.update_ids, member.unit_id):
            row.fail("error", f"You may not change {self._who(member)}: outside your area.")
            return
        if "unit_id" in changes and not self._may(self.update_ids, row.unit_id):
            row.fail("error", f"{self.headers_of.get('unit', 'Ward')}: “{row.unit_text}” is not a ward you can "
                              "move members into.")
            return
        if "status" in changes:
            allowed = member_service.TRANSITIONS.get(member.status, frozenset())
            if row.status not in allowed:
                options = ", ".join(sorted(allowed)) or "none (final)"
                row.fail("error", f"Status: a {member.status} member cannot become {row.status} "
                                  f"(allowed: {options}).")
                return
        row.kind, row.changes = "update", changes
        if row.unit_id is None or "unit_id" not in changes:
            row.unit_id = member.unit_id

    def _differences(self, row: _Row, member, tags_of) -> dict[str, tuple[Any, Any]]:
        """Fields the row would change on ``member`` (empty cells never clear anything)."""
        changes = {}
        for key in COMPARED:
            value = row.values.get(key)
            if value is not None and value != getattr(member, key):
                changes[key] = (getattr(member, key), value)
        if row.unit_text is not None and row.unit_id is not None and row.unit_id != member.unit_id:
            changes["unit_id"] = (member.unit_id, row.unit_id)
        if row.status is not None and row.status != member.status:
            changes["status"] = (member.status, row.status)
        if row.tags is not None and "tags" in row.values:
            before = tags_of.get(member.id, [])
            if sorted(row.values["tags"]) != before:
                changes["tags"] = (before, sorted(row.values["tags"]))
        return changes

    def _existing_tags(self, ids: list[int]) -> dict[int, list[str]]:
        """The tag names of the members a batch matched, for comparing with the rows."""
        if not ids:
            return {}
        out: dict[int, list[str]] = defaultdict(list)
        stmt = (select(member_tags.c.member_id, TAGS.c.name).join(TAGS, TAGS.c.id == member_tags.c.tag_id)
                .where(self._in(member_tags.c.member_id, sorted(ids))).order_by(TAGS.c.name))
        for member_id, name in db.session.execute(stmt):
            out[member_id].append(name)
        return out

    # -- writing ----------------------------------------------------------------------

    def _write(self, rows: list[_Row]) -> None:
        new = [r for r in rows if r.kind == "new"]
        updates = [r for r in rows if r.kind == "update"]
        now = utcnow()
        if new:
            needed = sum(1 for r in new if not r.number)
            numbers = iter(member_service.next_membership_numbers(needed) if needed else [])
            params = []
            for r in new:
                v = r.values
                params.append({
                    "membership_number": r.number or next(numbers),
                    "first_name": v["first_name"], "last_name": v["last_name"],
                    "other_names": v.get("other_names"), "surname_key": member_service.fold(v["last_name"]),
                    "gender": v.get("gender"), "date_of_birth": v.get("date_of_birth"),
                    "national_id": v.get("national_id"), "phone": v.get("phone"), "email": v.get("email"),
                    "address": v.get("address"), "unit_id": r.unit_id,
                    "status": r.status or self.settings.default_status,
                    "joined_on": v.get("joined_on") or date.today(), "notes": v.get("notes"),
                    "created_at": now, "updated_at": now, "created_by_id": self.actor_id,
                    "updated_by_id": self.actor_id, "deleted_at": None, "deleted_by_id": None,
                })
            # Plain executemany (RETURNING through insertmanyvalues costs 5x on PostgreSQL);
            # the rows are found again by their unique membership numbers.
            db.session.execute(insert(MEMBERS), params)
            numbers = [p["membership_number"] for p in params]
            db.session.execute(insert(STATUS_CHANGES).from_select(
                ["member_id", "from_status", "to_status", "reason", "actor_id", "changed_at"],
                select(MEMBERS.c.id, null(), MEMBERS.c.status, literal(self.status_reason, Text()),
                       literal(self.actor_id, Integer()), literal(now, STATUS_CHANGES.c.changed_at.type))
                .where(self._in(MEMBERS.c.membership_number, numbers)),
            ))
            tagged_rows = [(p["membership_number"], r.values["tags"]) for r, p in zip(new, params)
                           if r.values.get("tags")]
            if tagged_rows:
                ids = dict(db.session.execute(select(MEMBERS.c.membership_number, MEMBERS.c.id).where(
                    self._in(MEMBERS.c.membership_number, [n for n, _t in tagged_rows]))).all())
                self._set_tags([(ids[n], tags) for n, tags in tagged_rows], replace=False)
        if updates:
            self._write_updates(updates, now)

    def _write_updates(self, rows: list[_Row], now: datetime) -> None:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        status_rows, audit_rows, tagged = [], [], []
        for r in rows:
            values = {k: after for k, (_before, after) in r.changes.items() if k != "tags"}
            if "last_name" in values:
                values["surname_key"] = member_service.fold(values["last_name"])
            values.update(updated_at=now, updated_by_id=self.actor_id)
            groups[tuple(sorted(values))].append({"_id": r.member_id, **values})
            if "status" in r.changes:
                status_rows.append({"member_id": r.member_id, "from_status": r.changes["status"][0],
                                    "to_status": r.changes["status"][1], "reason": self.status_reason,
                                    "actor_id": self.actor_id, "changed_at": now})
            if "tags" in r.changes:
                tagged.append((r.member_id, r.changes["tags"][1]))
            name = f"{r.values.get('first_name', '')} {r.values.get('last_name', '')}".strip()
            audit_rows.append({
                "at": now, "actor_id": self.actor_id, "action": "member.update", "object_type": "Member",
                "object_id": str(r.member_id), "unit_id": r.unit_id,
                "summary": f"Updated {name or 'member'} from {self.filename}"[:500],
                "changes": audit.diff({k: b for k, (b, _a) in r.changes.items()},
                                      {k: a for k, (_b, a) in r.changes.items()}),
                "ip": None, "user_agent": None,
            })
        for keys, params in groups.items():
            stmt = update(MEMBERS).where(MEMBERS.c.id == bindparam("_id")).values(
                {k: bindparam(k) for k in keys})
            db.session.execute(stmt, params)
        if status_rows:
            db.session.execute(insert(STATUS_CHANGES), status_rows)
        if tagged:
            self._set_tags(tagged, replace=True)
        db.session.execute(insert(AUDIT), audit_rows)

    def _set_tags(self, tagged: list[tuple[int, list[str]]], *, replace: bool) -> None:
        names = sorted({name for _id, tags in tagged for name in tags} - set(self._tag_ids))
        if names:
            existing = dict(db.session.execute(select(TAGS.c.name, TAGS.c.id).where(TAGS.c.name.in_(names))).all())
            missing = [n for n in names if n not in existing]
            if missing:
                db.session.execute(insert(TAGS), [{"name": n} for n in missing])
                existing.update(db.session.execute(select(TAGS.c.name, TAGS.c.id)
                                                   .where(TAGS.c.name.in_(missing))).all())
            self._tag_ids.update(existing)
        if replace:
            db.session.execute(delete(member_tags).where(member_tags.c.member_id.in_([m for m, _t in tagged])))
        links = [{"member_id": m, "tag_id": self._tag_ids[name]} for m, tags in tagged for name in set(tags)]
        if links:
            db.session.execute(insert(member_tags), links)


class _ReportWriter:
    """The error report: the bad rows as they were, with their line and the reason first."""

    def __init__(self, path, headers: list[str]) -> None:
        self.fh = open(path, "w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.fh)
        self.width = len(headers)
        self.writer.writerow(["Line", "Reason", *headers])

    def write(self, line: int, reason: str, cells: list[Any]) -> None:
        from app.services.exports import neutralise

        values = [neutralise(_cell_text(c)) for c in cells[: self.width]]
        self.writer.writerow([line, neutralise(reason), *values])

    def close(self) -> None:
        self.fh.close()


# --- one import, end to end (console jobs and the CLI) ----------------------------------


def take_write_lock() -> None:
    """On SQLite, open the coming transaction with the write lock (a no-op UPDATE); elsewhere nothing.

    SQLite (WAL) cannot turn a transaction that has already read into a writing
    one while another connection writes: it fails at once with "database is
    locked" instead of waiting. So a writing transaction of an import starts
    with this statement, which waits (busy_timeout) for the lock. Call it right
    after a commit; if the transaction had read anyway, it is rolled back (only
    that read) and started again.
    """
    if db.session.get_bind().dialect.name != "sqlite":
        return
    lock = update(COUNTERS).where(COUNTERS.c.name == "membership_number").values(value=COUNTERS.c.value)
    for attempt in range(3):
        try:
            db.session.execute(lock)
            return
        except OperationalError:
            if attempt == 2:
                raise
            db.session.rollback()


def import_file(actor, path, info: FileInfo, settings: ImportSettings, *, filename: str = "",
                dry_run: bool = False, on_batch: Callable[[Progress], None] | None = None,
                resume: dict[str, Any] | None = None, total: int | None = None,
                report_path=None) -> ImportResult:
    """Check (``dry_run``) or import a file and record the import in the audit log.

    When writing, ``on_batch`` must commit: it is called after every batch
    (and in all-or-nothing mode after every checked batch of the first pass).
    The audit entry of a write is flushed, for the caller's final commit.
    """
    importer = Importer(actor, path, info, settings, filename=filename, report_path=report_path)
    result = importer.run(write=not dry_run, on_batch=on_batch, resume=resume, total=total)
    if not dry_run:
        take_write_lock()  # the last batch was committed: this transaction only writes the audit entry
        record_import(_ActorRef(importer.actor_id), importer.filename, settings, result)
    return result


@dataclass(frozen=True)
class _ActorRef:
    """The actor by id only (the user object may be expired after a batch commit; loading it would read)."""

    id: int | None


def record_import(actor, filename: str, settings: ImportSettings, result: ImportResult) -> AuditEntry:
    counts = result.summary()
    if result.refused:
        summary = (f"Import of {filename} refused (all or nothing): {result.bad:,} of {result.rows:,} rows "
                   "have problems; nothing was written")
    else:
        summary = (f"Imported {filename}: {counts['new']:,} new, {counts['updated']:,} updated, "
                   f"{counts['unchanged']:,} unchanged, {result.bad:,} rows not imported")
    return audit.record(actor, "members.import", None, summary=summary, unit_id=result.unit_id,
                        changes={**counts, "file": filename, "mode": settings.mode, "written": not result.refused})


# --- uploads (the console flow) ---------------------------------------------------------


def uploads_dir() -> Path:
    """Where uploads wait for their import: IMPORT_UPLOAD_DIR, by default instance/imports/."""
    path = Path(current_app.config.get("IMPORT_UPLOAD_DIR") or Path(current_app.instance_path) / "imports")
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_path(upload: ImportUpload) -> Path:
    return uploads_dir() / upload.stored_name


def save_upload(actor, stream, filename: str) -> ImportUpload:
    """Store an uploaded file under the instance folder and inspect it.

    The file is copied in chunks (never held in memory) and refused when it
    exceeds IMPORT_MAX_BYTES or cannot be imported; then nothing is kept.
    """
    filename = os.path.basename((filename or "").replace("\\", "/")).strip() or "upload"
    suffix = ".xlsx" if filename.lower().endswith(".xlsx") else ".csv"
    stored = f"{uuid.uuid4().hex}{suffix}"
    target = uploads_dir() / stored
    limit, size = max_bytes(), 0
    try:
        with open(target, "wb") as out:
            for chunk in iter(lambda: stream.read(1024 * 1024), b""):
                size += len(chunk)
                if size > limit:
                    raise ImportFileError(f"The file is too large (more than {_size_text(limit)}). "
                                          "Split it into smaller files.")
                out.write(chunk)
        info = inspect_file(target, filename)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    upload = ImportUpload(filename=filename[:255], stored_name=stored, size=size, format=info.format,
                          encoding=info.encoding, delimiter=info.delimiter, sheet=info.sheet,
                          header_line=info.header_line, headers=info.headers, options={},
                          created_by_id=getattr(actor, "id", None))
    db.session.add(upload)
    db.session.flush()
    return upload


def upload_info(upload: ImportUpload) -> FileInfo:
    return FileInfo(format=upload.format, encoding=upload.encoding, delimiter=upload.delimiter, sheet=upload.sheet,
                     header_line=upload.header_line, headers=list(upload.headers or []), size=upload.size)


def visible_uploads(user):
    """Uploads a user may continue: their own, or all of them for global importers."""
    stmt = select(ImportUpload).order_by(ImportUpload.id.desc())
    if user is not None and scope_paths(user, "members.create") is None:
        return stmt
    return stmt.where(ImportUpload.created_by_id == getattr(user, "id", None))


def delete_upload_file(upload: ImportUpload) -> None:
    if upload.stored_name:
        upload_path(upload).unlink(missing_ok=True)
        upload.stored_name = ""


def cleanup_uploads() -> int:
    """Delete the files of uploads left unfinished for longer than IMPORT_UPLOAD_TTL_HOURS."""
    cutoff = utcnow() - timedelta(hours=int(current_app.config.get("IMPORT_UPLOAD_TTL_HOURS", 48)))
    busy = select(Job.id).where(Job.state.in_(("queued", "running")))
    stale = db.session.scalars(
        select(ImportUpload).where(ImportUpload.stored_name != "", ImportUpload.created_at < cutoff)
        .where(or_(ImportUpload.import_job_id.is_(None), ImportUpload.import_job_id.not_in(busy)))
    ).all()
    for upload in stale:
        delete_upload_file(upload)
    db.session.flush()
    return len(stale)


def settings_for(upload: ImportUpload, mode: str = "valid") -> ImportSettings:
    options = dict(upload.options or {})
    return ImportSettings(
        mapping=list(upload.mapping or []),
        default_unit_id=options.get("default_unit_id"),
        date_order=options.get("date_order") or current_app.config.get("IMPORT_DATE_ORDER", "DMY"),
        default_status=options.get("default_status") or "pending",
        mode=mode,
        batch_size=int(current_app.config.get("IMPORT_BATCH_SIZE", 1000)),
    )


def set_mapping(actor, upload: ImportUpload, mapping: list[str], options: dict[str, Any]) -> None:
    """Record the chosen mapping and options on an upload (checked, with the default ward's scope)."""
    mapping = [m if m in FIELD_BY_KEY else "" for m in mapping][: len(upload.headers)]
    mapping += [""] * (len(upload.headers) - len(mapping))
    default_unit_id = options.get("default_unit_id")
    check_mapping(mapping, default_unit_id)
    if default_unit_id is not None and actor is not None and not can(actor, "members.create", default_unit_id):
        raise ServiceError("That ward does not exist or is outside your area.", field="default_unit")
    if options.get("date_order") not in DATE_ORDERS:
        raise ServiceError("Choose how dates are written.", field="date_order")
    if options.get("default_status") not in ("pending", "active"):
        raise ServiceError("New members start as pending or active.", field="default_status")
    upload.mapping = mapping
    upload.options = {k: options.get(k) for k in ("default_unit_id", "date_order", "default_status")}
    db.session.flush()


def start_preview(actor, upload: ImportUpload) -> Job:
    """A background job checking every row (nothing is written); the caller commits, then submits it."""
    job = jobs.create_job(actor, "members.import_preview", {"upload_id": upload.id},
                          title=f"Check {upload.filename}"[:200], unit_id=upload.options.get("default_unit_id"))
    upload.preview_job_id = job.id
    db.session.flush()
    return job


def start_import(actor, upload: ImportUpload, mode: str) -> Job:
    """A background job importing the file; the caller commits, then submits it."""
    if mode not in MODES:
        raise ServiceError("Choose how to import: the valid rows, or all or nothing.", field="mode")
    if not upload.mapping:
        raise ServiceError("Choose the columns first.", field="mapping")
    if not upload.stored_name or not upload_path(upload).exists():
        raise ServiceError("The uploaded file is gone (it was imported or expired); upload it again.")
    if upload.import_job_id is not None:
        job = db.session.get(Job, upload.import_job_id)
        if job is not None and job.state in ("queued", "running", "succeeded"):
            raise ServiceError("This file is already being imported.", status=409)
    job = jobs.create_job(actor, "members.import", {"upload_id": upload.id, "mode": mode},
                          title=f"Import {upload.filename}"[:200], unit_id=upload.options.get("default_unit_id"))
    upload.import_job_id = job.id
    db.session.flush()
    return job


def _job_actor(ctx: jobs.JobContext):
    return db.session.get(User, ctx.job.created_by_id) if ctx.job.created_by_id else None


def _job_upload(ctx: jobs.JobContext) -> ImportUpload:
    upload = db.session.get(ImportUpload, ctx.params.get("upload_id"))
    if upload is None or not upload.stored_name or not upload_path(upload).exists():
        raise ServiceError("The uploaded file is gone (it was imported or expired); upload it again.")
    return upload


def _report_file(ctx: jobs.JobContext, result: ImportResult, filename: str) -> None:
    if result.report_path and os.path.exists(result.report_path):
        if result.bad:
            stem = os.path.splitext(filename)[0][:80] or "import"
            ctx.add_file(f"{stem}-errors.csv", "text/csv", source=result.report_path)
        else:
            os.unlink(result.report_path)


@jobs.handler("members.import_preview")
def run_preview_job(ctx: jobs.JobContext) -> dict:
    """Check every row of an upload and count what an import would do; keep an error report."""
    upload = _job_upload(ctx)
    actor = _job_actor(ctx)
    settings = settings_for(upload)
    path, info, filename = upload_path(upload), upload_info(upload), upload.filename
    total = count_rows(path, info)
    report = uploads_dir() / f"preview-{ctx.job.id}-{uuid.uuid4().hex[:8]}.csv"

    def progress(done: int, total: int | None, errors: int, message: str | None = None) -> None:
        db.session.commit()  # end the read transaction: the progress write then waits for SQLite's lock
        take_write_lock()
        ctx.progress(done, total, errors=errors, message=message)

    progress(0, total, 0, "Checking the rows…")
    result = import_file(actor, path, info, settings, filename=filename, dry_run=True, total=total,
                         report_path=report, on_batch=lambda p: progress(p.done, p.total, p.bad))
    db.session.commit()
    take_write_lock()
    upload.row_count = result.rows
    _report_file(ctx, result, filename)
    ctx.progress(result.rows, result.rows, errors=result.bad, message="")
    return {**result.summary(), "bad_rows": [list(r) for r in result.bad_rows]}


@jobs.handler("members.import")
def run_import_job(ctx: jobs.JobContext) -> dict:
    """Import an upload batch by batch; resumes after an interruption where it stopped."""
    upload = _job_upload(ctx)
    actor = _job_actor(ctx)
    settings = settings_for(upload, ctx.params.get("mode", "valid"))
    resume = (ctx.job.result or {}).get("_resume")
    path, info = upload_path(upload), upload_info(upload)
    total = upload.row_count if upload.row_count is not None else count_rows(path, info)
    report = uploads_dir() / f"import-{ctx.job.id}-{uuid.uuid4().hex[:8]}.csv"

    def on_batch(progress: Progress) -> None:
        if progress.phase == "write":
            # Saved in the batch's own transaction: a resumed run skips exactly what is committed.
            ctx.job.result = {"_resume": progress.resume_state()}
        else:
            db.session.commit()  # the all-or-nothing check only read: end that transaction first
            take_write_lock()
        ctx.progress(progress.done, progress.total, errors=progress.bad, message=progress.message)

    db.session.commit()  # each batch then starts a transaction of its own
    result = import_file(actor, path, info, settings, filename=upload.filename, on_batch=on_batch,
                         resume=resume, total=total, report_path=report)
    # Still in the transaction of the audit entry, which holds the write lock.
    _report_file(ctx, result, upload.filename)
    delete_upload_file(upload)
    if result.refused:
        ctx.job.result = result.summary()
        db.session.commit()  # keep the audit entry and the error report with the failed job
        raise ServiceError(f"Nothing was imported: {result.bad:,} of {result.rows:,} rows have problems "
                           "(see the error report). Fix them and import the file again.")
    ctx.progress(result.rows, result.rows, errors=result.bad, message="")
    return result.summary()

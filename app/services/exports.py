"""Exporting members as CSV or XLSX: exactly a scoped, filtered list, streamed in constant memory.

One pipeline for every caller: ``export_members(actor, clauses, ...)``. The
console list, the API and ``flask members export`` each pass the WHERE
clauses of their own list (the console its list query's, the other two
``member_search.list_clauses``) with the format and columns asked for; it
checks the actor may export, adds live members only and the actor's
members.read and members.export scope, records the export in the audit log
with the filter used, and returns the body: the rows streamed with one
server-side cursor (``yield_per``: one consistent snapshot, rows fetched in
chunks, never the whole list in memory). Each caller is a few lines.

An export is a reading request that writes one row, its audit entry. That
entry is committed before the first byte goes out, in a short transaction of
its own (``app.database.write_aside``: it waits for the write lock like any
other writer), and the rows then stream from a fresh reading transaction that
holds nothing writers wait for, and that their commits do not disturb.

Spreadsheet safety (CSV injection): a CSV cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is written with a leading single
quote (``'+260977123456``) so that Excel or LibreOffice shows it as text and
never runs it as a formula. Phone numbers in E.164 start with '+', so they
appear with that quote in CSV files; Muster's import removes it again, so an
exported file can be imported as it is. XLSX files need no quote: every text
value is written as a text cell (never a formula), so values stay exact.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from flask import Response, stream_with_context
from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from app.database import write_aside
from app.extensions import db
from app.models import Member, Tag, Unit
from app.models.people import member_tags
from app.security import has_permission, scope_filter, scope_paths
from app.services import audit
from app.services.errors import Forbidden, ServiceError

# Column key -> header. Headers are the ones the import recognises, so an export imports back.
EXPORT_COLUMNS: dict[str, str] = {
    "membership_number": "Membership number",
    "first_name": "First name",
    "last_name": "Last name",
    "other_names": "Other names",
    "gender": "Gender",
    "date_of_birth": "Date of birth",
    "national_id": "National ID",
    "phone": "Phone",
    "email": "Email",
    "address": "Address",
    "unit": "Ward",
    "unit_code": "Ward code",
    "status": "Status",
    "joined_on": "Joined on",
    "tags": "Tags",
    "notes": "Notes",
    "created_at": "Created at",
}
DEFAULT_COLUMNS = tuple(k for k in EXPORT_COLUMNS if k not in ("notes", "created_at"))
FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
DANGEROUS_FIRST = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 5000
XLSX_MAX_ROWS = 1_048_575  # one sheet, after the header row


def neutralise(text: str) -> str:
    """A cell a spreadsheet will show as text: a leading single quote before =, +, -, @, tab or CR."""
    return "'" + text if text and text.startswith(DANGEROUS_FIRST) else text


def parse_columns(values: Iterable[str] | None) -> list[str]:
    """Known column keys, in the export's order; none chosen means the default set."""
    wanted: set[str] = set()
    for value in values or []:
        wanted.update(v.strip() for v in str(value).split(",") if v.strip())
    unknown = sorted(wanted - set(EXPORT_COLUMNS))
    if unknown:
        raise ServiceError(f"Unknown column '{unknown[0]}'. Choose from: {', '.join(EXPORT_COLUMNS)}.",
                           field="columns", details={"allowed": list(EXPORT_COLUMNS)})
    return [key for key in EXPORT_COLUMNS if key in wanted] or list(DEFAULT_COLUMNS)


def export_clauses(actor, clauses: list[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    """The list's clauses, restricted to live members the actor may both read and export (None: everyone)."""
    out = [c for c in clauses if c is not None]
    out.append(Member.deleted_at.is_(None))
    for permission in ("members.read", "members.export"):
        scope = scope_filter(actor, permission, Member) if actor is not None else None
        if scope is not None:
            out.append(scope)
    return out


def count(clauses: list[ColumnElement[bool]]) -> int:
    return db.session.scalar(select(func.count()).select_from(Member).where(*clauses)) or 0


class _Units:
    """Unit codes and full name paths ("Northern / Kasama / Lukashya / Lukashya Ward 1"), loaded once."""

    def __init__(self) -> None:
        rows = db.session.execute(select(Unit.id, Unit.name, Unit.code, Unit.path)).all()
        names = {uid: name for uid, name, _code, _path in rows}
        self.code = {uid: code for uid, _name, code, _path in rows}
        self.path = {
            uid: " / ".join(names.get(int(p), "?") for p in path.strip("/").split("/") if p)
            for uid, _name, _code, path in rows
        }


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def iter_rows(clauses: list[ColumnElement[bool]], columns: list[str], *, text: bool = True,
              chunk: int = CHUNK) -> Iterator[list[Any]]:
    """The export's rows (values per column), oldest member first, streamed in chunks.

    One SELECT of just the chosen columns, read through a server-side cursor
    (``yield_per``); the unit columns come from a small in-memory map and the
    tags from one id-range query per chunk (the rows arrive in id order).
    """
    plain = [c for c in columns if c not in ("unit", "unit_code", "tags")]
    select_cols = [Member.id, Member.unit_id] + [getattr(Member, c) for c in plain]
    units = _Units() if {"unit", "unit_code"} & set(columns) else None
    stmt = select(*select_cols).where(*clauses).order_by(Member.id)
    # Core rather than ORM execution: plain tuples, no per-row ORM loading work.
    result = db.session.connection().execute(stmt.execution_options(yield_per=chunk))
    # One getter per output column: (kind, position in the selected row).
    getters = []
    for c in columns:
        if c in ("unit", "unit_code", "tags"):
            getters.append((c, 0))
        else:
            kind = "date" if c in ("date_of_birth", "joined_on", "created_at") else "text"
            getters.append((kind if text else "raw", plain.index(c) + 2))
    unit_path = units.path if units else {}
    unit_code = units.code if units else {}
    for rows in result.partitions():
        tags: dict[int, list[str]] = {}
        if "tags" in columns and rows:
            tag_stmt = (select(member_tags.c.member_id, Tag.name).join(Tag, Tag.id == member_tags.c.tag_id)
                        .where(member_tags.c.member_id.between(rows[0][0], rows[-1][0])).order_by(Tag.name))
            for member_id, name in db.session.connection().execute(tag_stmt):
                tags.setdefault(member_id, []).append(name)
        for r in rows:
            out = []
            for kind, i in getters:
                if kind == "text":
                    v = r[i]
                    out.append("" if v is None else v)
                elif kind == "date":
                    v = r[i]
                    out.append("" if v is None else _text(v))
                elif kind == "raw":
                    out.append(r[i])
                elif kind == "unit":
                    out.append(unit_path.get(r[1], ""))
                elif kind == "unit_code":
                    out.append(unit_code.get(r[1], ""))
                else:
                    out.append(", ".join(tags.get(r[0], ())))
            yield out


def csv_chunks(clauses: list[ColumnElement[bool]], columns: list[str], *, bom: bool = True) -> Iterator[bytes]:
    """The members' CSV file, in pieces (``table_csv``)."""
    return table_csv([EXPORT_COLUMNS[c] for c in columns], iter_rows(clauses, columns), bom=bom)


def table_csv(headers: list[str], rows: Iterable[list[Any]], *, bom: bool = True) -> Iterator[bytes]:
    """Any export's CSV file, in pieces of about 256 KB (UTF-8 with a BOM so Excel reads accents right).

    Text cells are ``neutralise``d (no formulas); other values written as ``_text`` gives them.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    first = True
    n = 0
    for row in rows:
        writer.writerow([neutralise(v) if isinstance(v, str) else _text(v) for v in row])
        n += 1
        if n % 2000 == 0:
            data = buffer.getvalue().encode("utf-8")
            yield (b"\xef\xbb\xbf" + data) if first and bom else data
            first = False
            buffer.seek(0)
            buffer.truncate()
    data = buffer.getvalue().encode("utf-8")
    yield (b"\xef\xbb\xbf" + data) if first and bom else data


def write_xlsx(clauses: list[ColumnElement[bool]], columns: list[str], target) -> int:
    """Write the members' export as an XLSX workbook (``write_table_xlsx``)."""
    return write_table_xlsx([EXPORT_COLUMNS[c] for c in columns], iter_rows(clauses, columns, text=False),
                            target, sheet="Members")


def write_table_xlsx(headers: list[str], rows: Iterable[list[Any]], target, *, sheet: str) -> int:
    """Write any export as an XLSX workbook (openpyxl write-only: rows go straight to disk); the row count."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.append(headers)
    n = 0
    for row in rows:
        values = []
        for value in row:
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)  # Excel has no time zones
            elif isinstance(value, str):
                if ILLEGAL_CHARACTERS_RE.search(value):
                    value = ILLEGAL_CHARACTERS_RE.sub("", value)
                if value.startswith("="):
                    cell = WriteOnlyCell(ws, value=value)
                    cell.data_type = "s"  # text, never a formula
                    value = cell
            values.append(value)
        ws.append(values)
        n += 1
    wb.save(target)
    return n


def xlsx_chunks(clauses: list[ColumnElement[bool]], columns: list[str]) -> Iterator[bytes]:
    """The members' XLSX file, streamed (``table_xlsx``)."""
    return table_xlsx(lambda target: write_xlsx(clauses, columns, target))


def table_xlsx(write: Callable[[str], int]) -> Iterator[bytes]:
    """An XLSX file built by ``write(path)`` in a temporary file (a zip is only complete at the end), then streamed."""
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        write(path)
        with open(path, "rb") as fh:
            for piece in iter(lambda: fh.read(256 * 1024), b""):
                yield piece
    finally:
        os.unlink(path)


def check_format(fmt: str) -> str:
    """The format asked for ("CSV " counts as csv); a ``ServiceError`` on ``format`` for any other."""
    fmt = (fmt or "csv").strip().lower()
    if fmt not in FORMATS:
        raise ServiceError("Export as csv or xlsx.", field="format", details={"allowed": sorted(FORMATS)})
    return fmt


def check_size(fmt: str, rows: int, *, noun: str = "members") -> None:
    """An XLSX file is one sheet: more rows than it holds is a ``ServiceError`` on ``format``."""
    if fmt == "xlsx" and rows > XLSX_MAX_ROWS:
        raise ServiceError(f"{rows:,} {noun} do not fit in one Excel sheet ({XLSX_MAX_ROWS:,} at most): "
                           "export CSV, or narrow the list.", field="format")


def chunks(fmt: str, clauses: list[ColumnElement[bool]], columns: list[str]) -> Iterator[bytes]:
    return csv_chunks(clauses, columns) if fmt == "csv" else xlsx_chunks(clauses, columns)


def record_export(actor, fmt: str, columns: list[str], filters: dict[str, Any], rows: int,
                  unit_id: int | None = None, source: str = "console") -> None:
    """Audit the export (who, which filter, which columns, how many rows), committed at once.

    Call it before streaming: the entry is written through ``write_aside`` (a
    short write transaction, never an upgrade of the reading one), so the
    caller has nothing to commit.
    """
    if unit_id is None and actor is not None:
        paths = scope_paths(actor, "members.export")
        if paths and len(paths) == 1:
            unit_id = int(paths[0].strip("/").split("/")[-1])
    shown = ", ".join(f"{k}={v}" for k, v in filters.items() if v not in (None, "", [], {})) or "no filter"
    with write_aside():
        audit.record(actor, "members.export", None, unit_id=unit_id,
                     summary=f"Exported {rows:,} members as {fmt.upper()} ({shown})",
                     changes={"format": fmt, "rows": rows, "columns": columns, "filter": filters,
                              "source": source})


@dataclass
class Export:
    """An export under way: already audited; its rows are read as ``body`` is consumed.

    ``stem`` names the file ("members" gives members-2026-12-04.csv).
    """

    fmt: str
    rows: int
    body: Iterator[bytes]
    stem: str = "members"

    @property
    def mimetype(self) -> str:
        return FORMATS[self.fmt]

    @property
    def filename(self) -> str:
        return f"{self.stem}-{date.today().isoformat()}.{self.fmt}"

    def response(self) -> Response:
        """The export as a download for a web request (console or API), streamed in the request's context."""
        response = Response(stream_with_context(self.body), mimetype=self.mimetype)
        response.headers["Content-Disposition"] = f'attachment; filename="{self.filename}"'
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@dataclass
class MemberExport(Export):
    """A members export, with the columns chosen."""

    columns: list[str] = field(default_factory=list)


def export_members(actor, clauses: list[ColumnElement[bool]], *, fmt: str = "csv",
                   columns: Iterable[str] | None = None, filters: dict[str, Any] | None = None,
                   unit_id: int | None = None, source: str = "console") -> MemberExport:
    """Export the members of a caller's list as CSV or XLSX: the one pipeline of console, API and CLI.

    ``clauses`` is the caller's list WHERE; only live members the actor may
    read and export are added to it, so nobody exports more than they see.
    Refused before anything is written: an actor without members.export
    anywhere (``Forbidden``), an unknown format or column, an XLSX beyond one
    sheet (``ServiceError`` on ``format`` / ``columns``, naming what is
    allowed). Then the export is audited (``filters`` as the caller describes
    its filter, ``unit_id`` the unit it was narrowed to, ``source`` the face:
    console, api, cli), committed at once through ``write_aside``, and the
    body returned unstarted: its rows stream from a fresh reading transaction.
    ``actor=None`` is the system (an operator command without ``--user``).
    """
    if actor is not None and not has_permission(actor, "members.export"):
        raise Forbidden("You do not have permission to do this with members.", permission="members.export")
    fmt = check_format(fmt)
    chosen = parse_columns(columns)
    where = export_clauses(actor, list(clauses))
    rows = count(where)
    check_size(fmt, rows)
    record_export(actor, fmt, chosen, filters or {}, rows, unit_id=unit_id, source=source)
    return MemberExport(fmt, rows, chunks(fmt, where, chosen), columns=chosen)

"""Attendance exports for one event: CSV and Excel (XLSX, written with openpyxl).

Rows are the event's registrations within the exporting user's members.read
scope (the same rule as the console list and the API), streamed from the
database in batches. Text cells that a spreadsheet would run as a formula
(starting with = + - @) are prefixed with an apostrophe; E.164 phone numbers are left alone.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Iterator

from openpyxl import Workbook
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Event, EventRegistration, Member
from app.services.events import attendee_query, local

HEADERS = [
    "Membership no.", "First name", "Last name", "Phone", "Unit", "Status", "Source",
    "Registered at", "Checked in at", "Gate", "Notes",
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


PHONE_RE = re.compile(r"^\+\d{6,15}$")  # E.164 phone numbers are data, not formulas


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PHONE_RE.match(value):
        return "'" + value
    return value


def _time(value) -> str:
    return local(value).strftime("%Y-%m-%d %H:%M") if value is not None else ""


def rows(event: Event, user: Any) -> Iterator[list[Any]]:
    """One list of cells per registration, ordered by surname."""
    stmt = (
        attendee_query(event, user)
        .options(selectinload(EventRegistration.member).selectinload(Member.unit))
        .order_by(Member.surname_key, Member.first_name, Member.id)
        .execution_options(yield_per=500)
    )
    for reg in db.session.scalars(stmt):
        m = reg.member
        yield [_safe(v) for v in (
            m.membership_number, m.first_name, m.last_name, m.phone or "", m.unit.name if m.unit else "",
            reg.status, reg.source, _time(reg.registered_at), _time(reg.checked_in_at), reg.checkin_gate or "",
            reg.notes or "",
        )]


def to_csv(event: Event, user: Any) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    for row in rows(event, user):
        writer.writerow(row)
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: Excel opens UTF-8 CSV correctly


def to_xlsx(event: Event, user: Any) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Attendance")
    ws.append([_safe(event.title)])
    ws.append([f"{_time(event.start_at)} – {_time(event.end_at)}", _safe(event.venue or event.location or "")])
    ws.append([])
    ws.append(HEADERS)
    for row in rows(event, user):
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()

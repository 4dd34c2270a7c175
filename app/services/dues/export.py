"""Exporting the payments list as CSV or XLSX (issue 14): exactly the list a user sees, with its filters.

The rows come from the payments list's own WHERE (``payments.list_clauses``:
the actor's ``payments.read`` scope, then the filters parsed by
``payments.parse_filters``), in the list's order (newest first), so the file
holds what the pages show and nothing more. The file itself is made by the
one export pipeline (``app.services.exports``: ``table_csv`` /
``write_table_xlsx``, text cells neutralised against formula injection, the
XLSX size check, ``Export`` for the download), and the export is audited
before the first byte goes out, in a short transaction of its own
(``write_aside``), as the member and referral exports are.

Reading payments is enough to export them (treasurers reconcile their
ward's takings in a spreadsheet); the file holds names and membership
numbers but no contact details.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any, Iterator

from sqlalchemy import ColumnElement, func, select

from app.database import write_aside
from app.extensions import db
from app.models import Member, MembershipTier, Payment, Unit
from app.security import has_permission, scope_paths
from app.services import audit, dues, exports
from app.services.dues.payments import Filters, list_clauses
from app.services.errors import Forbidden

HEADERS = ["Receipt number", "Date recorded (UTC)", "Member", "Membership number", "Unit", "Tier", "Method",
           "Status", "Amount", "Currency", "Reference", "Extended to", "Hold reason"]
LIFETIME = "Lifetime"


def described(filters: Filters) -> dict[str, Any]:
    """The filter as the audit log records it (dates as text, empty fields dropped)."""
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(filters).items() if v is not None}


def amount(amount_minor: int) -> Decimal:
    """Minor units as the decimal amount (12050 -> 120.50): a number in XLSX, "120.50" in CSV."""
    return Decimal(int(amount_minor)).scaleb(-2)


def export_rows(clauses: list[ColumnElement[bool]]) -> Iterator[list[Any]]:
    """The export's rows, one per payment, in the list's order (newest first), streamed in chunks.

    One SELECT of just the columns written, joined to the member, tier and
    the unit the payment was made in; values stay typed (datetimes, dates,
    decimals) so XLSX cells are real dates and numbers, and ``table_csv``
    writes them as text. "Extended to" reads "Lifetime" for a fulfilled
    payment that made the membership lifelong and is empty until a payment
    has renewed anything.
    """
    stmt = (select(Payment.receipt_number, Payment.created_at, Member.first_name, Member.last_name,
                   Member.membership_number, Unit.name, MembershipTier.name, Payment.method, Payment.status,
                   Payment.amount_minor, Payment.currency, Payment.reference, Payment.fulfilled_at,
                   Payment.extended_to, Payment.hold_reason)
            .join(Member, Member.id == Payment.member_id).join(MembershipTier, MembershipTier.id == Payment.tier_id)
            .join(Unit, Unit.id == Payment.unit_id)
            .where(*clauses).order_by(Payment.created_at.desc(), Payment.id.desc()))
    for r in db.session.execute(stmt.execution_options(yield_per=exports.CHUNK)):
        extended = r[13] if r[13] is not None else (LIFETIME if r[12] is not None else "")
        yield [r[0] or "", r[1], f"{r[2]} {r[3]}".strip(), r[4], r[5], r[6], dues.METHOD_LABELS.get(r[7], r[7]),
               dues.STATUS_LABELS.get(r[8], r[8]), amount(r[9]), r[10], r[11] or "", extended, r[14] or ""]


def _audit_unit(actor: Any, filters: Filters) -> int | None:
    """The unit the audit entry belongs to: the filter's, else the actor's one area (so its readers see it)."""
    if filters.unit_id is not None or actor is None:
        return filters.unit_id
    paths = scope_paths(actor, dues.READ)
    return int(paths[0].strip("/").split("/")[-1]) if paths and len(paths) == 1 else None


def export(actor: Any, filters: Filters, fmt: str = "csv", *, source: str = "console") -> exports.Export:
    """The actor's filtered payments list as CSV or XLSX, audited before the first byte goes out.

    Refused before anything is written: an actor without ``payments.read``
    anywhere (``Forbidden``), a format other than csv or xlsx, an XLSX
    beyond one sheet (``ServiceError`` on ``format``). ``filters`` come from
    ``payments.parse_filters``, which has already checked the unit is in the
    actor's area.
    """
    if actor is not None and not has_permission(actor, dues.READ):
        raise Forbidden("You may not export payments.", permission=dues.READ)
    fmt = exports.check_format(fmt)
    clauses = list_clauses(actor, filters)
    rows = db.session.scalar(select(func.count(Payment.id)).where(*clauses)) or 0
    exports.check_size(fmt, rows, noun="payments")
    shown = ", ".join(f"{k}={v}" for k, v in described(filters).items()) or "no filter"
    with write_aside():
        audit.record(actor, "payments.export", None, unit_id=_audit_unit(actor, filters),
                     summary=f"Exported {rows:,} payments as {fmt.upper()} ({shown})",
                     changes={"format": fmt, "rows": rows, "filter": described(filters), "source": source})
    if fmt == "csv":
        body = exports.table_csv(HEADERS, export_rows(clauses))
    else:
        body = exports.table_xlsx(lambda target: exports.write_table_xlsx(
            HEADERS, export_rows(clauses), target, sheet="Payments"))
    return exports.Export(fmt, int(rows), body, stem="payments")

"""GET /api/v1/members/export: the member list (same filters as GET /members) as CSV or XLSX, streamed.

Needs members.export; the rows are the caller's members.read list narrowed to
where they may export, so a coordinator's export holds their wards only.
Recorded in the audit log with the filter used. The work is
``services.exports.export_members``, the pipeline the console and the CLI use.
"""

from __future__ import annotations

from pydantic import Field

from app.api.context import actor, bp
from app.api.members import MemberFilters
from app.api.schema import QueryChoice, QueryList
from app.api.spec import BINARY, Content, operation
from app.extensions import db
from app.models import Unit
from app.services import exports, member_search


class MemberExportQuery(MemberFilters):
    format: QueryChoice(tuple(exports.FORMATS)) = Field("csv", description="File format.")
    columns: QueryList(exports.EXPORT_COLUMNS) = Field([], description=(
        "Columns (repeat or separate with commas; default: all but notes and created_at). The file keeps "
        "its own column order."))


@bp.get("/members/export")
@operation("members", permission="members.export", errors=(400,), responses={200: (Content({
    "text/csv": {"type": "string"},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": BINARY,
}), "Every live member matching the filters (no paging), streamed.")})
def export_members(query: MemberExportQuery):
    """Export members (CSV or XLSX)

    The members.read list narrowed to where you may export; the same filters as GET /members. CSV cells
    starting with =, +, -, @ get a leading ' so spreadsheets never run them (phone numbers read
    '+260...). Recorded in the audit log.
    """
    filters = query.filters()
    unit = db.session.get(Unit, filters["unit_id"]) if filters["unit_id"] else None
    export = exports.export_members(
        actor(), member_search.list_clauses(**filters), fmt=query.format, columns=query.columns, filters=filters,
        unit_id=unit.id if unit else None, source="api",
    )
    return export.response()

"""GET /api/v1/members/export: the member list (same filters as GET /members) as CSV or XLSX, streamed.

Needs members.export; the rows are the caller's members.read list narrowed to
where they may export, so a coordinator's export holds their wards only.
Recorded in the audit log with the filter used. The work is
``services.exports.export_members``, the pipeline the console and the CLI use.
"""

from __future__ import annotations

from flask import request

from app.api.context import actor, bp
from app.api.members import list_filters, require_permission
from app.extensions import db
from app.models import Unit
from app.services import exports, member_search


@bp.get("/members/export")
def export_members():
    """Every live member matching the filters (no paging), streamed; ``format`` csv (default) or xlsx."""
    require_permission("members.export")
    filters = list_filters()
    unit = db.session.get(Unit, filters["unit_id"]) if filters["unit_id"] else None
    export = exports.export_members(
        actor(), member_search.list_clauses(**filters), fmt=request.args.get("format") or "csv",
        columns=request.args.getlist("columns"), filters=filters, unit_id=unit.id if unit else None, source="api",
    )
    return export.response()

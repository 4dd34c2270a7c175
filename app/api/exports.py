"""GET /api/v1/members/export: the member list (same filters as GET /members) as CSV or XLSX, streamed.

Needs members.export; the rows are the caller's members.read list narrowed to
where they may export, so a coordinator's export holds their wards only.
Recorded in the audit log with the filter used.
"""

from __future__ import annotations

from flask import Response, request, stream_with_context

from app.api import bp
from app.api.auth import actor
from app.api.errors import ApiError
from app.api.members import _filter_clauses, _list_filters, _require_permission
from app.extensions import db
from app.models import Member, Unit
from app.security import scope_filter
from app.services import exports
from app.services.errors import ServiceError


@bp.get("/members/export")
def export_members():
    """Every live member matching the filters (no paging), streamed; ``format`` csv (default) or xlsx."""
    _require_permission("members.export")
    filters = _list_filters()
    fmt = (request.args.get("format") or "csv").strip().lower()
    if fmt not in exports.FORMATS:
        raise ApiError(422, "format must be csv or xlsx.", {"field": "format", "allowed": sorted(exports.FORMATS)})
    me = actor()
    try:
        columns = exports.parse_columns(request.args.getlist("columns"))
    except ServiceError as exc:
        raise ApiError(422, exc.message, {"field": "columns", "allowed": list(exports.EXPORT_COLUMNS)}) from None
    clauses = _filter_clauses(filters)
    read_scope = scope_filter(me, "members.read", Member)
    if read_scope is not None:
        clauses.append(read_scope)
    clauses = exports.export_clauses(me, clauses)
    rows = exports.count(clauses)
    try:
        exports.check_size(fmt, rows)
    except ServiceError as exc:
        raise ApiError(422, exc.message, {"field": "format"}) from None
    unit = db.session.get(Unit, filters["unit_id"]) if filters["unit_id"] else None
    exports.record_export(me, fmt, columns, filters, rows, unit_id=unit.id if unit else None, source="api")
    response = Response(stream_with_context(exports.chunks(fmt, clauses, columns)), mimetype=exports.FORMATS[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.filename(fmt)}"'
    response.headers["Cache-Control"] = "no-store"
    return response

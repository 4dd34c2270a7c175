"""The member list as CSV or XLSX, from the list page's export box.

Exactly the list as it stands (search, filters, ``?unit=``; every page): the
WHERE comes from ``list_queries``, the code path of the list itself, and
``services.exports.export_members`` does the rest (scope, checks, audit,
streaming), as it does for the API and the CLI.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import expose

from app.admin.base import current_actor, staff_can
from app.services import exports
from app.services.errors import ServiceError


class MemberExportMixin:
    """The export box and ``/export/`` for ``MemberView``."""

    def can_export_members(self) -> bool:
        return staff_can("members.export")

    def export_columns(self) -> list[tuple[str, str, bool]]:
        """(key, header, ticked by default) for the export's column checkboxes."""
        return [(key, label, key in exports.DEFAULT_COLUMNS) for key, label in exports.EXPORT_COLUMNS.items()]

    @expose("/export/")
    def export_view(self):
        """Stream the list; a refused export (format, columns, size) goes back to the list with the reason."""
        if not self.can_export_members():  # before the list's arguments are read, as for any page without the right
            abort(403)
        view_args = self._get_list_extra_args()
        query, _count, _joins = self.list_queries(view_args.search, view_args.filters, with_count=False)
        described = {
            "search": view_args.search or None,
            "unit": request.args.get("unit") or None,
            "filters": [
                {"filter": f"{self._filters[idx].name} {self._filters[idx].operation()}", "value": value}
                for idx, _name, value in (view_args.filters or [])
            ],
        }
        shortcut = self.shortcut_unit()
        try:
            export = exports.export_members(
                current_actor(), [query.whereclause], fmt=request.args.get("format", "csv"),
                columns=request.args.getlist("col"), filters=described, unit_id=shortcut.id if shortcut else None,
            )
        except ServiceError as exc:  # a reading request: nothing to roll back
            flash(exc.message, "error")
            back_args = {k: v for k, v in request.args.items(multi=True) if k not in ("col", "format", "page")}
            return redirect(self.get_url(".index_view", **back_args))
        return export.response()

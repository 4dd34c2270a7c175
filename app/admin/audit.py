"""Console: the audit log, read-only (reports.read).

Entries are scoped like everything else: a user sees the entries whose unit
lies in their reports.read scope; entries without a unit (logins, role
edits, global assignments) only reach global holders. Newest first, paged,
filtered by action, actor, date and object type; the detail page shows the
recorded changes as a before/after table with the IP address and user agent.

The list stays fast on a large log: ordering uses the index on ``at``,
scoping an ``unit_id IN (...)`` probe on its index, and the actor is joined
in the same query rather than loaded row by row.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.model import filters as base_filters
from flask_login import current_user
from markupsafe import Markup, escape

from app.admin.base import ScopedModelView
from app.admin.geo import format_utc
from app.extensions import db
from app.security import scope_unit_ids
from app.models import AuditEntry, Unit


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


class OnOrAfter(sqla_filters.BaseSQLAFilter, base_filters.BaseDateFilter):
    """From the start of a (UTC) day."""

    def apply(self, query, value, alias=None):
        return query.filter(self.get_column(alias) >= _day_start(value))

    def operation(self):
        return "on or after"


class OnOrBefore(sqla_filters.BaseSQLAFilter, base_filters.BaseDateFilter):
    """Up to the end of a (UTC) day: the whole day counts."""

    def apply(self, query, value, alias=None):
        return query.filter(self.get_column(alias) < _day_start(value + timedelta(days=1)))

    def operation(self):
        return "on or before"


class BetweenDays(sqla_filters.DateBetweenFilter):
    """Both days included, on a timestamp column (a plain BETWEEN would drop the last day)."""

    def apply(self, query, value, alias=None):
        start, end = value
        column = self.get_column(alias)
        return query.filter(column >= _day_start(start), column < _day_start(end + timedelta(days=1)))


class StartsWith(sqla_filters.BaseSQLAFilter):
    """'member.' finds member.create, member.update, ... (an index-friendly prefix match)."""

    def apply(self, query, value, alias=None):
        return query.filter(self.get_column(alias).startswith(value.strip(), autoescape=True))

    def operation(self):
        return "starts with"


def _object_types() -> list[tuple[str, str]]:
    names = sorted({mapper.class_.__name__ for mapper in db.Model.registry.mappers})
    return [(name, name) for name in names]


def _changes_table(view, context, model, name):
    """The recorded changes as rows of field / before / after."""
    changes = model.changes
    if not changes:
        return Markup('<span class="text-muted">No field changes recorded.</span>')
    rows = []
    for field, value in changes.items():
        if isinstance(value, dict) and ("before" in value or "after" in value):
            before, after = value.get("before"), value.get("after")
        else:
            before, after = None, value
        rows.append(
            Markup("<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>").format(
                field, _value(before), _value(after)
            )
        )
    return Markup(
        '<table class="table table-sm table-bordered mb-0 audit-changes">'
        '<thead class="thead-light"><tr><th>Field</th><th>Before</th><th>After</th></tr></thead>'
        "<tbody>{}</tbody></table>"
    ).format(Markup("").join(rows))


def _value(value) -> Markup:
    if value is None or value == "" or value == []:
        return Markup('<span class="text-muted">—</span>')
    if isinstance(value, list):
        return Markup(", ").join(escape(v) for v in value)
    if isinstance(value, dict):
        return Markup("<code>{}</code>").format(value)
    return escape(value)


def _unit(view, context, model, name):
    if model.unit_id is None:
        return Markup('<span class="text-muted">none (global)</span>')
    unit = db.session.get(Unit, model.unit_id)
    return f"{unit.name} ({unit.code}) · {unit.level_name}" if unit else f"unit #{model.unit_id} (deleted)"


class AuditLogView(ScopedModelView):
    resource = "reports"
    scope_model = AuditEntry

    # Read-only: the log is only ever appended to, by the services.
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    can_view_details = True
    can_set_page_size = True
    page_size = 50

    list_template = "admin/audit/list.html"
    details_template = "admin/audit/details.html"

    column_list = ["at", "actor", "action", "object_type", "object_id", "summary"]
    column_details_list = ["at", "actor", "action", "object_type", "object_id", "unit_id", "summary",
                           "changes", "ip", "user_agent"]
    column_labels = {"at": "When", "actor": "Who", "object_type": "Object", "object_id": "Id",
                     "unit_id": "Unit", "ip": "IP address", "user_agent": "User agent"}
    column_sortable_list = ["at"]
    column_default_sort = [("at", True), ("id", True)]
    column_formatters = {
        "at": lambda v, c, m, n: format_utc(m.at, seconds=True),
        "actor": lambda v, c, m, n: m.actor.email if m.actor else Markup('<span class="text-muted">system</span>'),
    }
    column_formatters_detail = {
        **column_formatters,
        "changes": _changes_table,
        "unit_id": _unit,
    }
    named_filter_urls = True
    column_filters = [
        sqla_filters.FilterEqual(AuditEntry.action, "Action"),
        StartsWith(AuditEntry.action, "Action"),
        sqla_filters.FilterEqual("actor.email", "Actor email"),
        sqla_filters.FilterLike("actor.email", "Actor email"),
        OnOrAfter(AuditEntry.at, "Date"),
        OnOrBefore(AuditEntry.at, "Date"),
        BetweenDays(AuditEntry.at, "Date"),
        sqla_filters.FilterEqual(AuditEntry.object_type, "Object type", options=_object_types),
        sqla_filters.FilterEqual(AuditEntry.object_id, "Object id"),
    ]

    def is_global(self) -> bool:
        """Does the current user read the whole log (entries without a unit included)?"""
        return scope_unit_ids(current_user, "reports.read") is None


def register(admin) -> None:
    admin.add_view(AuditLogView(AuditEntry, db, name="Audit log", endpoint="audit", url="/admin/audit"))

"""Console pieces shared by several areas: units offered to the user, the unit field, the subtree filter.

They live here rather than in the area that needed them first, so console
modules (members, cards, imports, jobs) import this module and ``base`` and
never each other. Everything is per request: units in scope depend on who is
logged in, so choices and labels are computed (and cached in ``g``) for the
request, never at start-up.
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.contrib.sqla.fields import QuerySelectField
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import false, select
from sqlalchemy.sql.elements import ColumnElement
from wtforms import widgets
from wtforms.fields.choices import Choice
from wtforms.validators import ValidationError

from app.extensions import db
from app.models import Member, Unit
from app.security import can, scope_unit_ids, subtree_unit_ids
from app.services.inputs import parse_id


class ConsoleForm(FlaskForm):
    """Flask-WTF form: renders the session's ``csrf_token`` (CSRFProtect checks every POST)."""


# --- units offered to the user --------------------------------------------------------


def unit_labels(units: list[Unit]) -> dict[int, str]:
    """Full names ("Northern › Kasama › Lukashya Ward 1"), with one query for all ancestors."""
    ancestor_ids = {a for unit in units for a in unit.ancestor_ids}
    names: dict[int, str] = {}
    if ancestor_ids:
        names = dict(db.session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(ancestor_ids))).all())
    return {
        unit.id: " › ".join(names.get(a, unit.name) for a in unit.ancestor_ids) or unit.name
        for unit in units
    }


def units_in_scope(permission: str) -> list[Unit]:
    """Units where the current user holds ``permission``, sorted by full name (cached per request)."""
    cache = g.setdefault("_console_units", {})
    if permission not in cache:
        ids = scope_unit_ids(current_user, permission)
        stmt = select(Unit)
        if ids is not None:
            stmt = stmt.where(Unit.id.in_(ids) if ids else false())
        units = list(db.session.scalars(stmt))
        labels = unit_labels(units)
        g.setdefault("_console_unit_labels", {}).update(labels)
        units.sort(key=lambda u: labels[u.id].casefold())
        cache[permission] = units
    return cache[permission]


def unit_label(unit: Unit) -> str:
    """A unit's full name (cached per request with those of ``units_in_scope``)."""
    labels = g.setdefault("_console_unit_labels", {})
    if unit.id not in labels:
        labels.update(unit_labels([unit]))
    return labels[unit.id]


def unit_subtree_clause(unit_id: Any, unit_column=Member.unit_id, permission: str = "members.read") -> ColumnElement[bool]:
    """Rows whose ``unit_column`` lies in a unit's subtree; an unknown or out-of-scope unit matches nothing."""
    pk = parse_id(unit_id)
    unit = db.session.get(Unit, pk) if pk is not None else None
    if unit is None or not can(current_user, permission, unit):
        return false()
    return unit_column.in_(subtree_unit_ids(unit))


class UnitField(QuerySelectField):
    """A unit chosen among those in the user's scope for one permission, shown by full name.

    A plain <select> (type-ahead works, no JavaScript needed) rather than select2.
    """

    widget = widgets.Select()

    def __init__(self, label: str, permission: str, **kwargs: Any) -> None:
        super().__init__(
            label,
            query_factory=lambda: units_in_scope(permission),
            get_label=unit_label,
            allow_blank=True,
            blank_text="Choose a unit…",
            **kwargs,
        )

    def iter_choices(self):
        if self.allow_blank:
            yield Choice("__None", self.blank_text, self.data is None, {})
        for pk, obj in self._get_object_list():
            yield Choice(pk, self.get_label(obj), obj == self.data, {})

    def pre_validate(self, form) -> None:
        raw = (self.raw_data or [""])[0]
        if raw not in ("", "__None") and self.data is None:
            raise ValidationError("That unit does not exist or is outside your area.")
        super().pre_validate(form)


# --- filters whose options depend on the user ------------------------------------------


class RequestOptionsMixin:
    """A list filter whose options depend on the user; the view asks for them per request."""

    def get_options(self, view):
        return None  # at start-up there is no user; see RequestFilterOptions

    def request_options(self) -> list[tuple[str, str]] | None:
        """The choices for the current user; None leaves the filter a free-text box."""
        return None


class RequestFilterOptions:
    """For a model view: fill the options of its ``RequestOptionsMixin`` filters for this request's user."""

    def _get_filter_groups(self):
        groups = super()._get_filter_groups()  # type: ignore[misc]
        for items in (groups or {}).values():
            for item in items:
                flt = self._filters[item["index"]]  # type: ignore[attr-defined]
                if isinstance(flt, RequestOptionsMixin):
                    item["options"] = flt.request_options() or None
        return groups


class UnitSubtreeFilter(RequestOptionsMixin, sqla_filters.BaseSQLAFilter):
    """Rows whose unit lies in the chosen unit's subtree (units offered: the user's scope).

    Members by default; other views pass their own unit column and permission.
    """

    def __init__(self, column=Member.unit_id, unit_column=Member.unit_id, permission: str = "members.read") -> None:
        super().__init__(column, "Unit")
        self.unit_column = unit_column
        self.permission = permission

    def request_options(self):
        return [(str(u.id), unit_label(u)) for u in units_in_scope(self.permission)]

    def validate(self, value):
        return parse_id(value) is not None

    def clean(self, value):
        return parse_id(value)

    def apply(self, query, value, alias=None):
        return query.filter(unit_subtree_clause(value, self.unit_column, self.permission))

    def operation(self):
        return "in"

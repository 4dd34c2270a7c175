"""Console: the geography tree (browse with members.read; change with units.*).

The tree shows the units in the user's members.read scope, with their
ancestors greyed out for context, and live member counts from one GROUP BY.
Adding, renaming, moving and deleting go through ``app.services.geo``, which
keeps the materialised paths right, refuses cycles and too-deep moves, and
writes the audit log. A refused change re-renders its form with the message
next to the field.
"""

from __future__ import annotations

from datetime import timezone

from flask import abort, current_app, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import SelectField, StringField

from app.admin.base import SecureView, committing, staff_can
from app.extensions import db
from app.models import Member, RoleAssignment, Unit
from app.security import forget_grants, load_for, scope_unit_ids
from app.services import geo
from app.services.errors import ServiceError
from app.services.inputs import parse_id

TOP_LEVEL = ""  # the select value meaning "no parent"


# --- helpers shared with the access pages ----------------------------------------------


def unit_choices(permission: str, *, exclude_path: str | None = None, max_level: int | None = None,
                 top_label: str | None = None) -> list[tuple[str, str]]:
    """Select options for the units where the current user holds ``permission``, in tree order.

    ``top_label`` adds a first option with an empty value (top level, or
    everywhere) when the user holds the permission globally. ``exclude_path``
    drops a subtree (a unit cannot move under itself); ``max_level`` drops
    deeper units (the lowest level cannot have children).
    """
    ids = scope_unit_ids(current_user, permission)
    units = db.session.scalars(select(Unit)).all()  # the geography is small next to the registry
    by_id = {u.id: u for u in units}

    def sort_key(unit: Unit) -> tuple:
        return tuple((by_id[i].name.casefold(), i) for i in unit.ancestor_ids if i in by_id)

    allowed = set(by_id) if ids is None else set(ids)
    choices = []
    if top_label and ids is None:
        choices.append((TOP_LEVEL, top_label))
    for unit in sorted(units, key=sort_key):
        if unit.id not in allowed:
            continue
        if exclude_path and unit.path.startswith(exclude_path):
            continue
        if max_level is not None and unit.level > max_level:
            continue
        indent = "\u00a0\u00a0\u00a0" * unit.level
        choices.append((str(unit.id), f"{indent}{unit.name} ({unit.code}) · {unit.level_name}"))
    return choices


def unit_from_choice(value: str | None, field: str, message: str = "Choose a unit from the list.") -> Unit | None:
    """The unit a select posted (None for the empty, top-level value); the service checks scope."""
    if value in (None, TOP_LEVEL):
        return None
    pk = parse_id(value)
    unit = db.session.get(Unit, pk) if pk is not None else None
    if unit is None:
        raise ServiceError(message, field=field)
    return unit


# --- forms -------------------------------------------------------------------------


class NewUnitForm(FlaskForm):
    parent = SelectField("Parent unit", choices=[], validate_choice=False)
    name = StringField("Name")
    code = StringField("Code")


class EditUnitForm(FlaskForm):
    name = StringField("Name")
    code = StringField("Code")


class MoveUnitForm(FlaskForm):
    parent = SelectField("New parent", choices=[], validate_choice=False)


class ConfirmForm(FlaskForm):
    """Nothing but the CSRF token: a POST that confirms a destructive action."""


# --- the view ----------------------------------------------------------------------


class GeographyView(SecureView):
    permission = "members.read"

    @property
    def levels(self) -> list[str]:
        return current_app.config["UNIT_LEVELS"]

    def _require(self, permission: str) -> None:
        if not staff_can(permission):
            abort(403)

    # Tree ---------------------------------------------------------------------------

    @expose("/")
    def index(self):
        ids = scope_unit_ids(current_user, "members.read")
        roots = geo.tree(ids)
        counts = geo.member_counts(ids)
        visible = None if ids is None else set(ids)
        may = {
            action: (None if (s := scope_unit_ids(current_user, f"units.{action}")) is None else set(s))
            for action in ("create", "update", "delete")
        }
        lowest = len(self.levels) - 1
        size = 0

        def annotate(node: dict, depth: int) -> int:
            nonlocal size
            size += 1
            node["depth"] = depth
            node["in_scope"] = visible is None or node["id"] in visible
            node["count"] = counts.get(node["id"], 0) if node["in_scope"] else None
            total = node["count"] or 0
            for child in node["children"]:
                total += annotate(child, depth + 1)
            node["total"] = total if node["in_scope"] else None
            node["can_add"] = depth < lowest and (may["create"] is None or node["id"] in may["create"])
            node["can_edit"] = may["update"] is None or node["id"] in may["update"]
            node["can_delete"] = may["delete"] is None or node["id"] in may["delete"]
            return total

        for root in roots:
            annotate(root, 0)
        return self.render(
            "admin/geo/tree.html",
            roots=roots,
            tree_size=size,
            levels=self.levels,
            can_add_top=may["create"] is None,
            can_add_any=staff_can("units.create"),
        )

    # Add ----------------------------------------------------------------------------

    @expose("/new", methods=("GET", "POST"))
    def create(self):
        self._require("units.create")
        form = NewUnitForm()
        form.parent.choices = unit_choices(
            "units.create", max_level=len(self.levels) - 2, top_label=f"(top level: new {self.levels[0]})"
        )
        if request.method == "GET":
            form.parent.data = request.args.get("parent", form.parent.choices[0][0] if form.parent.choices else "")
        if form.validate_on_submit():
            with committing(form, show="form") as outcome:
                parent = unit_from_choice(form.parent.data, "parent", "Choose a parent unit from the list.")
                unit = geo.create_unit(current_user, form.name.data, form.code.data, parent)
            if not outcome.ok:
                return self.render("admin/geo/new.html", form=form), outcome.status
            forget_grants()
            flash(f"Added {unit.level_name} {unit.name} ({unit.code}).", "success")
            return redirect(url_for(".index", _anchor=f"unit-{unit.id}"))
        return self.render("admin/geo/new.html", form=form), 400 if form.errors else 200

    # Rename / recode and move ---------------------------------------------------------

    def _edit_forms(self, unit: Unit, edit_form=None, move_form=None):
        edit_form = edit_form or EditUnitForm(formdata=None, obj=unit)
        move_form = move_form or MoveUnitForm(formdata=None)
        move_form.parent.choices = unit_choices(
            "units.update", exclude_path=unit.path, max_level=len(self.levels) - 2,
            top_label=f"(top level: {self.levels[0]})",
        )
        if move_form.parent.data is None:
            move_form.parent.data = str(unit.parent_id) if unit.parent_id else TOP_LEVEL
        return edit_form, move_form

    def _render_edit(self, unit: Unit, edit_form=None, move_form=None, status: int = 200):
        edit_form, move_form = self._edit_forms(unit, edit_form, move_form)
        return self.render("admin/geo/edit.html", unit=unit, edit_form=edit_form, move_form=move_form), status

    @expose("/<pk:unit_id>/edit", methods=("GET", "POST"))
    def edit(self, unit_id: int):
        unit = load_for(current_user, Unit, unit_id, "units.update")
        if request.method == "GET":
            return self._render_edit(unit)
        form = EditUnitForm()
        if not form.validate_on_submit():
            return self._render_edit(unit, edit_form=form, status=400)
        with committing(form, show="form") as outcome:
            geo.update_unit(current_user, unit, form.name.data, form.code.data)
        if not outcome.ok:
            return self._render_edit(db.session.get(Unit, unit_id), edit_form=form, status=outcome.status)
        flash(f"Saved {unit.name} ({unit.code}).", "success")
        return redirect(url_for(".index", _anchor=f"unit-{unit.id}"))

    @expose("/<pk:unit_id>/move", methods=("POST",))
    def move(self, unit_id: int):
        unit = load_for(current_user, Unit, unit_id, "units.update")
        form = MoveUnitForm()
        if not form.validate_on_submit():
            return self._render_edit(unit, move_form=form, status=400)
        with committing(form, show="form") as outcome:
            new_parent = unit_from_choice(form.parent.data, "parent", "Choose the new parent from the list.")
            geo.move_unit(current_user, unit, new_parent)
        if not outcome.ok:
            return self._render_edit(db.session.get(Unit, unit_id), move_form=form, status=outcome.status)
        forget_grants()
        unit = db.session.get(Unit, unit_id)
        where = unit.parent.name if unit.parent else "the top level"
        flash(f"Moved {unit.name} under {where}; it is now a {unit.level_name}.", "success")
        return redirect(url_for(".index", _anchor=f"unit-{unit.id}"))

    # Delete -------------------------------------------------------------------------

    def _usage(self, unit: Unit) -> dict[str, int]:
        count = lambda stmt: db.session.scalar(stmt) or 0  # noqa: E731
        return {
            "children": count(select(func.count()).select_from(Unit).where(Unit.parent_id == unit.id)),
            "members": count(select(func.count()).select_from(Member).where(Member.unit_id == unit.id)),
            "assignments": count(
                select(func.count()).select_from(RoleAssignment).where(RoleAssignment.unit_id == unit.id)
            ),
        }

    @expose("/<pk:unit_id>/delete", methods=("GET", "POST"))
    def delete(self, unit_id: int):
        unit = load_for(current_user, Unit, unit_id, "units.delete")
        form = ConfirmForm()
        error = None
        status = 200
        if form.validate_on_submit():
            name = f"{unit.level_name} {unit.name} ({unit.code})"
            with committing(show=None) as outcome:
                geo.delete_unit(current_user, unit)
            if outcome.ok:
                forget_grants()
                flash(f"Deleted {name}.", "success")
                return redirect(url_for(".index"))
            unit = db.session.get(Unit, unit_id)
            error, status = outcome.error.message, outcome.status
        return self.render(
            "admin/geo/delete.html", unit=unit, form=form, usage=self._usage(unit), error=error
        ), status


def format_utc(value, seconds: bool = False) -> str:
    """A stored timestamp shown in UTC, whatever time zone the database session uses."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " UTC"


def register(admin) -> None:
    admin.app.add_template_filter(format_utc, "muster_utc")
    admin.add_view(GeographyView(name="Geography", endpoint="geo", url="/admin/geography"))

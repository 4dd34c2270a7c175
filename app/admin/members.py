"""The member registry in the staff console: list, search, filters, forms, status, photos, soft delete.

Views stay thin. Every change goes through ``app.services.members`` (which
checks the rules, the actor's scope and writes the audit log) and every query
through the scoping helper, so a coordinator sees, counts and edits only the
members of their own wards; anything else answers 404.

The list is built for a large registry: it stays on the members table
(``unit_id IN (...)`` on the partial index ``ix_members_live_unit_id``,
newest first), the search box uses indexed exact/prefix lookups from
``services.member_search.search_clause`` and unit names are loaded for the rows
shown only.

URLs (endpoint ``member``, under /admin/member/):

- ``/`` list; ``?search=`` search box; ``?unit=<id>`` members of that unit's
  subtree (links from the dashboard); filters ``flt0_status_equals``,
  ``flt0_unit_in``, ``flt0_joined_on_between|after|before``, ``flt0_tag_is``.
- ``/new/``, ``/edit/?id=``, ``/details/?id=``, ``/delete/`` (POST),
  ``/status/<id>`` (POST), ``/photo/<id>``, ``/deleted/``, ``/restore/`` (POST).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, abort, flash, g, redirect, request, stream_with_context
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.contrib.sqla.fields import QuerySelectField
from flask_admin.helpers import flash_errors, get_form_data, get_redirect_target, is_form_submitted
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from markupsafe import Markup, escape
from sqlalchemy import false, func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement
from wtforms import widgets
from wtforms.fields.choices import Choice
from wtforms import DateField, HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from app.admin.base import ScopedModelView, page_arg, staff_can
from app.extensions import db
from app.models import GENDERS, MEMBER_STATUSES, AuditEntry, Member, MemberPhoto, MemberStatusChange, Tag, Unit
from app.models.people import member_tags
from app.security import can, load_for, permits, scope_filter, scope_unit_ids, scoped, subtree_unit_ids
from app.services import exports
from app.services import member_search
from app.services import members as member_service
from app.services.errors import ServiceError
from app.services.inputs import parse_id

STATUS_LABELS = {status: status.capitalize() for status in MEMBER_STATUSES}
STATUS_BADGES = {
    "pending": "warning",
    "active": "success",
    "suspended": "danger",
    "lapsed": "secondary",
    "resigned": "secondary",
    "deceased": "dark",
    "expelled": "danger",
}


def _actor():
    """The logged-in user object (not the proxy) for service calls."""
    return current_user._get_current_object()


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
    cache = g.setdefault("_member_console_units", {})
    if permission not in cache:
        ids = scope_unit_ids(current_user, permission)
        stmt = select(Unit)
        if ids is not None:
            stmt = stmt.where(Unit.id.in_(ids) if ids else false())
        units = list(db.session.scalars(stmt))
        labels = unit_labels(units)
        g.setdefault("_member_console_unit_labels", {}).update(labels)
        units.sort(key=lambda u: labels[u.id].casefold())
        cache[permission] = units
    return cache[permission]


def unit_label(unit: Unit) -> str:
    labels = g.setdefault("_member_console_unit_labels", {})
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


# --- forms ----------------------------------------------------------------------------


class ConsoleForm(FlaskForm):
    """Flask-WTF form: renders the session's ``csrf_token`` (CSRFProtect checks every POST)."""


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


class MemberForm(ConsoleForm):
    """Registration form (the edit form drops the initial status)."""

    first_name = StringField("First name", validators=[InputRequired("First name is required."), Length(max=80)])
    last_name = StringField("Last name", validators=[InputRequired("Last name is required."), Length(max=80)])
    other_names = StringField("Other names", validators=[Optional(), Length(max=120)])
    gender = SelectField(
        "Gender",
        choices=[SelectChoice("", "—")] + [SelectChoice(g, g.capitalize()) for g in GENDERS],
        validators=[Optional()],
    )
    date_of_birth = DateField("Date of birth", validators=[Optional()])
    national_id = StringField("National ID", validators=[Optional(), Length(max=40)])
    phone = StringField("Phone", validators=[Optional(), Length(max=40)], description="e.g. 0977 123456 or +260977123456")
    email = StringField("Email", validators=[Optional(), Length(max=254)])
    address = TextAreaField("Address", validators=[Optional(), Length(max=500)])
    unit = UnitField("Unit", "members.create", validators=[InputRequired("Choose the member's unit.")])
    joined_on = DateField("Joined on", validators=[Optional()], default=date.today)
    status = SelectField(
        "Initial status", choices=[SelectChoice("pending", "Pending"), SelectChoice("active", "Active")],
        default="pending",
    )
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=5000)])
    tags = StringField("Tags", validators=[Optional(), Length(max=1000)], description="Comma separated, e.g. youth, volunteer")
    photo = FileField("Photo", description="A JPEG or PNG picture; it is resized and stored as JPEG.")


class MemberEditForm(MemberForm):
    status = None  # changed through the status form, with a reason


class StatusForm(ConsoleForm):
    # Choices are the allowed transitions; any other value reaches the service,
    # which explains what is allowed instead of a bare "Not a valid choice".
    status = SelectField("New status", validate_choice=False)
    reason = TextAreaField(
        "Reason", validators=[InputRequired("Give a reason for the status change."), Length(max=1000)]
    )


class RestoreForm(ConsoleForm):
    id = HiddenField(validators=[InputRequired()])


# Form fields passed to the service as they are (the unit goes as ``unit_id``).
FORM_FIELDS = (
    "first_name", "last_name", "other_names", "gender", "date_of_birth", "national_id",
    "phone", "email", "address", "joined_on", "notes", "tags",
)
# Service error fields named differently in the form.
FORM_FIELD_FOR = {"unit_id": "unit"}


# --- filters --------------------------------------------------------------------------


class RequestOptionsMixin:
    """Filters whose options depend on the user; recomputed per request by the view."""

    def get_options(self, view):
        return None  # at start-up there is no user; see MemberView._get_filter_groups

    def request_options(self) -> list[tuple[str, str]] | None:
        """The choices for the current user; None leaves the filter a free-text box."""
        return None


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


class TagFilter(RequestOptionsMixin, sqla_filters.BaseSQLAFilter):
    """Members carrying a tag."""

    MAX_OPTIONS = 300

    def __init__(self) -> None:
        super().__init__(Member.id, "Tag")

    def request_options(self):
        """The tags of live members the user can see: a coordinator never learns another ward's tag names."""
        stmt = select(Tag.name)
        clause = scope_filter(current_user, "members.read", Member)
        if clause is not None:  # driven from the members in scope, so a small area stays a small query
            used = (select(member_tags.c.tag_id).join(Member, Member.id == member_tags.c.member_id)
                    .where(Member.deleted_at.is_(None), clause))
            stmt = stmt.where(Tag.id.in_(used))
        names = db.session.scalars(stmt.order_by(Tag.name).limit(self.MAX_OPTIONS + 1)).all()
        if len(names) > self.MAX_OPTIONS:
            return None  # too many for a drop-down: type the tag instead
        return [(name, name) for name in names]

    def clean(self, value):
        return value.strip().lower()

    def apply(self, query, value, alias=None):
        tagged = (
            select(member_tags.c.member_id)
            .join(Tag, Tag.id == member_tags.c.tag_id)
            .where(Tag.name == value)
        )
        return query.filter(Member.id.in_(tagged))

    def operation(self):
        return "is"


class JoinedBetween(sqla_filters.DateBetweenFilter):
    def operation(self):
        return "between"


class JoinedAfter(sqla_filters.DateGreaterFilter):
    def apply(self, query, value, alias=None):
        return query.filter(Member.joined_on >= value)

    def operation(self):
        return "after"


class JoinedBefore(sqla_filters.DateSmallerFilter):
    def apply(self, query, value, alias=None):
        return query.filter(Member.joined_on <= value)

    def operation(self):
        return "before"


class StatusFilter(sqla_filters.FilterEqual):
    def operation(self):
        return "equals"


# --- the view -------------------------------------------------------------------------


def _name_link(view, context, model, name):
    url = view.get_url(".details_view", id=model.id)
    return Markup(f'<a href="{escape(url)}">{escape(model.full_name)}</a>')


def _status_badge(view, context, model, name):
    status = model.status
    return Markup(
        f'<span class="badge badge-{STATUS_BADGES.get(status, "secondary")}">'
        f"{escape(STATUS_LABELS.get(status, status))}</span>"
    )


def _unit_name(view, context, model, name):
    return model.unit.name if model.unit is not None else ""


class MemberView(ScopedModelView):
    resource = "members"
    scope_model = Member

    list_template = "admin/members/list.html"
    details_template = "admin/members/details.html"
    create_template = "admin/members/create.html"
    edit_template = "admin/members/edit.html"

    form_base_class = ConsoleForm
    form = MemberEditForm

    page_size = 20
    can_set_page_size = False
    can_export = False
    named_filter_urls = True

    column_list = ["membership_number", "last_name", "phone", "unit", "status", "joined_on"]
    column_labels = {
        "membership_number": "Membership no.",
        "last_name": "Name",
        "phone": "Phone",
        "unit": "Unit",
        "status": "Status",
        "joined_on": "Joined on",
    }
    column_formatters = {"last_name": _name_link, "status": _status_badge, "unit": _unit_name}
    # Name sorts on the folded surname then id (see _apply_sorting): the index (surname_key, id).
    column_sortable_list = [
        ("last_name", ("surname_key",)),
        "membership_number",
        "joined_on",
        "status",
    ]
    column_default_sort = ("id", True)
    # Present so Flask-Admin shows the search box; _apply_search replaces its ILIKE scan.
    column_searchable_list = ["last_name", "membership_number", "phone", "national_id", "email"]
    column_select_related_list: list = []  # no eager joins; unit names load for the shown rows only
    column_details_list = ["membership_number", "first_name", "last_name", "status", "unit", "joined_on"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Fresh filter instances per view (one console per create_app()).
        self.column_filters = [
            StatusFilter(Member.status, "Status", options=list(STATUS_LABELS.items())),
            UnitSubtreeFilter(),
            JoinedBetween(Member.joined_on, "Joined on"),
            JoinedAfter(Member.joined_on, "Joined on"),
            JoinedBefore(Member.joined_on, "Joined on"),
            TagFilter(),
        ]
        super().__init__(*args, **kwargs)

    # -- queries --------------------------------------------------------------------

    def get_query(self):
        return super().get_query().filter(Member.deleted_at.is_(None))

    def get_count_query(self):
        return super().get_count_query().filter(Member.deleted_at.is_(None))

    def member_or_404(self, member_id: Any, action: str = "read") -> Member:
        """A live member the user may use ``members.<action>`` on: 404 out of reach, 403 without the right."""
        return load_for(current_user, Member, member_id, f"members.{action}")

    def deleted_member_or_404(self, member_id: Any) -> Member:
        """A soft-deleted member the user may restore (members.delete); 404 for a live one."""
        member = load_for(current_user, Member, member_id, "members.delete", deleted=True)
        if member.deleted_at is None:
            abort(404)
        return member

    def get_one(self, id):
        action = "update" if request.endpoint == f"{self.endpoint}.edit_view" else "read"
        return self.member_or_404(id, action)

    def search_placeholder(self) -> str:
        return "Name, membership no., phone, ID or email"

    def _apply_search(self, query, count_query, joins, count_joins, search):
        # Indexed exact/prefix lookups only; never ILIKE '%x%' over the registry.
        clause = member_search.search_clause(search, live_only=True)
        if clause is not None:
            query = query.filter(clause)
            if count_query is not None:
                count_query = count_query.filter(clause)
        return query, count_query, joins, count_joins

    def _apply_sorting(self, query, joins, sort_column, sort_desc):
        query, joins = super()._apply_sorting(query, joins, sort_column, sort_desc)
        if sort_column is not None:
            # A unique tie-breaker keeps pages stable when sorting on a shared value.
            query = query.order_by(Member.id.desc() if sort_desc else Member.id.asc())
        return query, joins

    def shortcut_unit(self) -> Unit | None:
        """The unit of a ``?unit=<id>`` link, when it is one the user can see."""
        pk = parse_id(request.args.get("unit", ""))
        unit = db.session.get(Unit, pk) if pk is not None else None
        return unit if unit is not None and can(current_user, "members.read", unit) else None

    def _list_unit_ids(self) -> list[int] | None:
        """Units the list covers: the user's scope, narrowed by ``?unit=``; None means everywhere."""
        scope = scope_unit_ids(current_user, "members.read")
        raw = request.args.get("unit", "").strip()
        if not raw:
            return scope
        unit = self.shortcut_unit()
        if unit is None:
            return []
        subtree = subtree_unit_ids(unit)
        return subtree if scope is None else sorted(set(subtree) & set(scope))

    def list_queries(self, search, filters, with_count: bool = True):
        """The list's rows and count queries: scope, live members, ``?unit=``, search and filters.

        The one place the list's WHERE is built; the page and the exports both
        use it, so an export holds exactly the members the list shows.
        Returns (query, count_query, joins).
        """
        query = self.get_query()
        count_query = self.get_count_query() if with_count and not self.simple_list_pager else None
        joins: dict = {}
        count_joins: dict = {}

        unit_arg = request.args.get("unit", "").strip()
        if unit_arg:
            clause = unit_subtree_clause(unit_arg)
            query = query.filter(clause)
            if count_query is not None:
                count_query = count_query.filter(clause)

        if self._search_supported and search:
            query, count_query, joins, count_joins = self._apply_search(query, count_query, joins, count_joins, search)
        if filters and self._filters:
            query, count_query, joins, count_joins = self._apply_filters(
                query, count_query, joins, count_joins, filters
            )
        return query, count_query, joins

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        """Flask-Admin's list query, kept on the members table (no joins) for speed at scale."""
        query, count_query, joins = self.list_queries(search, filters)
        searching = bool(self._search_supported and search)
        plain_page = not searching and not filters and sort_column is None
        page_size = page_size or self.page_size

        if searching and not filters and sort_column is None and execute:
            # A names-only search: the count and the page's ids come from the name indexes alone.
            found = member_search.name_search_page(search, self._list_unit_ids(), (page or 0) * page_size,
                                                   page_size)
            if found is not None:
                return found[0], self._newest_first(found[1])

        count = count_query.scalar() if count_query is not None else None

        if plain_page and execute:
            # The default page (newest first in a subtree): merge per-unit index scans
            # where the database does that well, then load just those rows.
            unit_ids = self._list_unit_ids()
            ids = None
            if unit_ids:
                ids = member_service.live_member_page_ids(unit_ids, (page or 0) * page_size, page_size)
            if ids is not None:
                return count, self._newest_first(ids)

        query, joins = self._apply_sorting(query, joins, sort_column, sort_desc)
        query = self._apply_pagination(query, page, page_size)
        query = query.options(selectinload(Member.unit))  # one IN query for the shown rows
        if execute:
            query = query.all()
        return count, query

    @staticmethod
    def _newest_first(ids: list[int]) -> list[Member]:
        """The members with ``ids`` (a page's worth) and their units, newest first."""
        if not ids:
            return []
        rows = db.session.scalars(select(Member).where(Member.id.in_(ids)).options(selectinload(Member.unit))).all()
        return sorted(rows, key=lambda m: m.id, reverse=True)

    # -- export ---------------------------------------------------------------------

    def can_export_members(self) -> bool:
        return staff_can("members.export")

    def export_columns(self) -> list[tuple[str, str, bool]]:
        """(key, header, ticked by default) for the export's column checkboxes."""
        return [(key, label, key in exports.DEFAULT_COLUMNS) for key, label in exports.EXPORT_COLUMNS.items()]

    @expose("/export/")
    def export_view(self):
        """The list as it stands (search, filters, ``?unit=``; every page) as CSV or XLSX, streamed.

        Built by ``list_queries``, the code path of the list itself, then
        narrowed to where the user may export (members.export). Audited with
        the filter used before the first byte is sent.
        """
        if not self.can_export_members():
            abort(403)
        actor = _actor()
        fmt = request.args.get("format", "csv").strip().lower()
        view_args = self._get_list_extra_args()
        back_args = {k: v for k, v in request.args.items(multi=True) if k not in ("col", "format", "page")}
        try:
            columns = exports.parse_columns(request.args.getlist("col"))
            query, _count, _joins = self.list_queries(view_args.search, view_args.filters, with_count=False)
            clauses = exports.export_clauses(actor, [query.whereclause])
            rows = exports.count(clauses)
            exports.check_size(fmt, rows)
        except ServiceError as exc:
            flash(exc.message, "error")
            return redirect(self.get_url(".index_view", **back_args))
        described = {
            "search": view_args.search or None,
            "unit": request.args.get("unit") or None,
            "filters": [
                {"filter": f"{self._filters[idx].name} {self._filters[idx].operation()}", "value": value}
                for idx, _name, value in (view_args.filters or [])
            ],
        }
        shortcut = self.shortcut_unit()
        exports.record_export(actor, fmt, columns, described, rows, unit_id=shortcut.id if shortcut else None)
        response = Response(stream_with_context(exports.chunks(fmt, clauses, columns)), mimetype=exports.FORMATS[fmt])
        response.headers["Content-Disposition"] = f'attachment; filename="{exports.filename(fmt)}"'
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def _get_filter_groups(self):
        groups = super()._get_filter_groups()
        for items in (groups or {}).values():
            for item in items:
                flt = self._filters[item["index"]]
                if isinstance(flt, RequestOptionsMixin):
                    item["options"] = flt.request_options() or None
        return groups

    # -- forms ----------------------------------------------------------------------

    def get_create_form(self):
        return MemberForm

    def get_edit_form(self):
        return MemberEditForm

    def create_form(self, obj=None):
        form = self._create_form_class(get_form_data())
        if not is_form_submitted():
            units = units_in_scope("members.create")
            if len(units) == 1:
                form.unit.data = units[0]
        return form

    def edit_form(self, obj=None):
        if is_form_submitted():
            form = self._edit_form_class(get_form_data())
        else:
            data = {name: getattr(obj, name) for name in FORM_FIELDS if name != "tags"}
            data["unit"] = obj.unit
            data["tags"] = ", ".join(tag.name for tag in obj.tags)
            data["gender"] = obj.gender or ""
            form = self._edit_form_class(None, data=data)
        # Moving a member needs members.update over the new unit.
        form.unit.query_factory = lambda: units_in_scope("members.update")
        return form

    @staticmethod
    def _form_values(form) -> dict[str, Any]:
        values = {name: form[name].data for name in FORM_FIELDS}
        values["unit_id"] = form.unit.data
        if "status" in form:
            values["status"] = form.status.data
        return values

    @staticmethod
    def _upload(form) -> bytes | None:
        upload = form.photo.data
        return upload.read() if upload else None

    def _failed(self, exc: ServiceError, form) -> None:
        self.handle_service_error(exc, form, FORM_FIELD_FOR)
        if form.errors:
            flash("Nothing was saved: please correct the marked fields.", "error")

    def validate_form(self, form) -> bool:
        """The form's own checks (dates, the unit, CSRF) and, when they fail, the registry's rules too.

        Without the second step a form with a missing name and a bad phone
        number would need two submits to show both.
        """
        valid = super().validate_form(form)
        if not valid and isinstance(form, MemberForm) and is_form_submitted():
            try:
                member_service.clean(self._form_values(form))
            except ServiceError as exc:
                self.handle_service_error(exc, form, FORM_FIELD_FOR)
        return valid

    def create_model(self, form):
        actor = _actor()
        try:
            member = member_service.create_member(actor, self._form_values(form))
            raw = self._upload(form)
            if raw is not None:
                member_service.set_photo(actor, member, raw)
            db.session.commit()
        except ServiceError as exc:
            self._failed(exc, form)
            return False
        return member

    def update_model(self, form, model):
        actor = _actor()
        try:
            member_service.update_member(actor, model, self._form_values(form))
            raw = self._upload(form)
            if raw is not None:
                member_service.set_photo(actor, model, raw)
            db.session.commit()
        except ServiceError as exc:
            self._failed(exc, form)
            return False
        return True

    def get_save_return_url(self, model, is_created=False):
        return self.get_url(".details_view", id=model.id)

    # -- delete and restore ------------------------------------------------------------

    def delete_model(self, model):
        member_service.delete_member(_actor(), model)
        db.session.commit()
        return True

    @expose("/delete/", methods=("POST",))
    def delete_view(self):
        """Soft delete. Unknown or unseen ids answer 404; seen but not deletable, 403."""
        return_url = get_redirect_target() or self.get_url(".index_view")
        form = self.delete_form()
        if not self.validate_form(form):
            flash_errors(form, message="Failed to delete record. %(error)s")
            return redirect(return_url)
        member = self.member_or_404(form.id.data, "delete")
        self.delete_model(member)
        flash(f"{member.full_name} ({member.membership_number}) was deleted. It can be restored "
              "from Deleted members.", "success")
        if return_url.startswith(self.get_url(".details_view")):
            return_url = self.get_url(".index_view")
        return redirect(return_url)

    @action("delete", "Delete", "Delete the selected members? They can be restored later.")
    def action_delete(self, ids):
        if not self.can_delete:
            abort(403)
        actor = _actor()
        wanted = [int(i) for i in ids if str(i).isdigit()]
        stmt = scoped(
            select(Member).where(Member.id.in_(wanted), Member.deleted_at.is_(None)),
            actor, "members.delete", Member,
        )
        count = 0
        for member in db.session.scalars(stmt).all():
            member_service.delete_member(actor, member)
            count += 1
        db.session.commit()
        flash(f"{count} member(s) deleted.", "success")

    @action("cards", "Cards: issue, renew or print")
    def action_cards(self, ids):
        """On to the card batch page with the selected members (issue #4, app/admin/cards.py)."""
        from app.admin.cards import batch_for_members

        return batch_for_members(ids)

    def is_action_allowed(self, name):
        from app.admin.base import staff_can

        if name == "cards":
            return staff_can("cards.create")
        return super().is_action_allowed(name)

    @expose("/deleted/")
    def deleted_view(self):
        """Soft-deleted members in the user's delete scope, with a Restore button each."""
        if not self.can_delete:
            abort(403)
        page = page_arg()
        search = request.args.get("search", "").strip()
        where = [Member.deleted_at.is_not(None)]
        clause = member_search.search_clause(search)
        if clause is not None:
            where.append(clause)
        count = db.session.scalar(
            scoped(select(func.count()).select_from(Member).where(*where), current_user, "members.delete", Member)
        )
        rows = db.session.scalars(
            scoped(select(Member).where(*where), current_user, "members.delete", Member)
            .options(selectinload(Member.unit))
            .order_by(Member.deleted_at.desc(), Member.id.desc())
            .limit(self.page_size)
            .offset(page * self.page_size)
        ).all()
        num_pages = max((count + self.page_size - 1) // self.page_size, 1)

        def pager_url(p):
            return self.get_url(".deleted_view", page=p or None, search=search or None)

        return self.render(
            "admin/members/deleted.html",
            rows=rows,
            count=count,
            page=page,
            num_pages=num_pages,
            pager_url=pager_url,
            search=search,
            restore_form=RestoreForm(formdata=None),
        )

    @expose("/restore/", methods=("POST",))
    def restore_view(self):
        if not self.can_delete:
            abort(403)
        form = RestoreForm()
        if not form.validate():
            flash_errors(form, message="Could not restore. %(error)s")
            return redirect(self.get_url(".deleted_view"))
        member = self.deleted_member_or_404(form.id.data)
        member_service.restore_member(_actor(), member)
        db.session.commit()
        flash(f"{member.full_name} ({member.membership_number}) was restored.", "success")
        return redirect(get_redirect_target() or self.get_url(".details_view", id=member.id))

    # -- details, status, photo --------------------------------------------------------

    def _status_form(self, member: Member, formdata=None) -> StatusForm:
        form = StatusForm(formdata=formdata)
        allowed = member_service.TRANSITIONS.get(member.status, frozenset())
        form.status.choices = [SelectChoice(s, STATUS_LABELS[s]) for s in MEMBER_STATUSES if s in allowed]
        return form

    def _render_details(self, member: Member, status_form: StatusForm | None = None):
        history = db.session.scalars(
            select(MemberStatusChange)
            .where(MemberStatusChange.member_id == member.id)
            .options(selectinload(MemberStatusChange.actor))
            .order_by(MemberStatusChange.id.desc())
        ).all()
        audit_entries = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == "Member", AuditEntry.object_id == str(member.id))
            .options(selectinload(AuditEntry.actor))
            .order_by(AuditEntry.id.desc())
            .limit(50)
        ).all()
        photo_at = db.session.scalar(select(MemberPhoto.updated_at).where(MemberPhoto.member_id == member.id))
        can_update = permits(current_user, "members.update", member)
        return self.render(
            self.details_template,
            model=member,
            unit_full_name=unit_label(member.unit),
            history=history,
            audit_entries=audit_entries,
            photo_version=int(photo_at.timestamp()) if photo_at else None,
            can_update=can_update,
            can_delete_member=permits(current_user, "members.delete", member),
            status_form=status_form or (self._status_form(member) if can_update else None),
            delete_form=self.delete_form(),
            status_labels=STATUS_LABELS,
            status_badges=STATUS_BADGES,
            return_url=get_redirect_target() or self.get_url(".index_view"),
        )

    @expose("/details/")
    def details_view(self):
        return self._render_details(self.member_or_404(request.args.get("id"), "read"))

    @expose("/status/<pk:member_id>", methods=("GET", "POST"))
    def status_view(self, member_id: int):
        """Change a member's status (allowed transitions only, with a reason)."""
        member = self.member_or_404(member_id, "update")
        if request.method == "GET":
            return redirect(self.get_url(".details_view", id=member.id))
        form = self._status_form(member, request.form)
        if form.validate():
            try:
                change = member_service.change_status(_actor(), member, form.status.data, form.reason.data)
                db.session.commit()
            except ServiceError as exc:
                self.handle_service_error(exc, form)
            else:
                flash(f"{member.full_name} is now {STATUS_LABELS[change.to_status].lower()}.", "success")
                return redirect(self.get_url(".details_view", id=member.id))
        flash("The status was not changed: please correct the marked field.", "error")
        member = self.member_or_404(member_id, "read")  # reloaded after a rollback
        return self._render_details(member, status_form=form)

    @expose("/photo/<pk:member_id>")
    def photo_view(self, member_id: int):
        """The member's photo, for logged-in staff who can see the member (never a public URL)."""
        member = self.member_or_404(member_id, "read")
        content, content_type = db.session.execute(
            select(MemberPhoto.content, MemberPhoto.content_type).where(MemberPhoto.member_id == member.id)
        ).one_or_none() or (None, None)
        if content is None:
            abort(404)
        response = Response(content, mimetype=content_type or "image/jpeg")
        response.headers["Cache-Control"] = "private, max-age=300"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def register(admin) -> None:
    admin.add_view(MemberView(Member, db, name="Members", endpoint="member"))

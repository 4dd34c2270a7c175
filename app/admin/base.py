"""Base classes for console views: access control and scoping in one place.

Every console view derives from ``SecureView`` or ``ScopedModelView``. Access
needs a logged-in staff user holding the view's permission; model views
filter their list, count, detail, edit and delete through the scoping helper,
so an out-of-scope id answers 404 like a missing one.

POST handlers change things inside ``with committing(form) as outcome:``:
the services flush, the block commits once, and a broken rule
(``ServiceError``) rolls back and becomes field messages or flashes.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal

from flask import abort, flash, has_request_context, redirect, request, url_for
from flask_admin import BaseView
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from wtforms import IntegerField

from app.extensions import db
from app.security import has_console_access, has_permission, scope_filter
from app.services.errors import ServiceError, ValidationErrors
from app.services.inputs import parse_id, parse_int, parse_page


def staff_can(permission: str | None) -> bool:
    """Is the current user staff holding ``permission`` somewhere (None: any staff)?"""
    if not has_request_context() or not current_user.is_authenticated:
        return False
    if not has_console_access(current_user):
        return False
    return permission is None or has_permission(current_user, permission)


def current_actor():
    """The logged-in user object (not the proxy), for service calls and audit entries."""
    return current_user._get_current_object()


def page_arg(first: int = 0, name: str = "page") -> int:
    """``?page=`` (or ``?<name>=``, a second list on the page) counted from ``first``: ``first`` when
    absent or empty, 400 when it is no page number.

    Negative, fractional or enormous values would otherwise reach the
    database as an OFFSET it refuses (or an integer the driver cannot bind).
    """
    raw = request.args.get(name, "")
    if not raw.strip():
        return first
    page = parse_page(raw, first)
    if page is None:
        abort(400)
    return page


class WholeNumberField(IntegerField):
    """An integer form field read with ``parse_int``, for every whole number a console form asks for.

    WTForms' own ``int()`` takes Arabic-Indic digits, "1_0" and 400-digit numbers, and its
    NumberRange then fails on them with an OverflowError (a 500) instead of a message.
    """

    def process_formdata(self, valuelist):
        if valuelist:
            self.data = parse_int(valuelist[0])
            if self.data is None:
                raise ValueError("Enter a whole number, such as 25.")


class AccessMixin:
    """Anonymous users go to the login page; logged-in users without the right get 403."""

    permission: str | None = None

    def is_accessible(self) -> bool:
        return staff_can(self.permission)

    def inaccessible_callback(self, name, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        abort(403)


class SecureView(AccessMixin, BaseView):
    """A custom (non-model) console page."""


class ScopedModelView(AccessMixin, ModelView):
    """A Flask-Admin model view whose every query goes through the scoping helper.

    Subclasses set ``resource`` (e.g. "members"); the view then needs
    ``<resource>.read`` to open and ``.create``/``.update``/``.delete`` for the
    matching buttons. ``scope_model`` names the model the scope rule applies to.
    """

    resource: str = ""
    scope_model: type | None = None
    can_view_details = True
    page_size = 20
    # A view's own list template extends this one too: it says when a page is past the last.
    list_template = "admin/muster_list.html"

    @property
    def permission(self) -> str:  # type: ignore[override]
        return f"{self.resource}.read"

    def _perm(self, action: str) -> str:
        return f"{self.resource}.{action}"

    @property
    def can_create(self) -> bool:  # type: ignore[override]
        return staff_can(self._perm("create"))

    @property
    def can_edit(self) -> bool:  # type: ignore[override]
        return staff_can(self._perm("update"))

    @property
    def can_delete(self) -> bool:  # type: ignore[override]
        return staff_can(self._perm("delete"))

    def _scope(self, action: str = "read"):
        return scope_filter(current_user, self._perm(action), self.scope_model or self.model)

    def get_query(self):
        query = super().get_query()
        clause = self._scope()
        return query if clause is None else query.filter(clause)

    def get_count_query(self):
        query = super().get_count_query()
        clause = self._scope()
        return query if clause is None else query.filter(clause)

    def get_one(self, id):
        pk = parse_id(id)
        obj = self.get_query().filter(self.model.id == pk).one_or_none() if pk is not None else None
        if obj is None:
            abort(404)
        return obj

    def _get_list_extra_args(self):
        """Flask-Admin's list arguments, with the page number parsed by ``page_arg`` (its own takes any int)."""
        args = super()._get_list_extra_args()
        args.page = page_arg()
        return args


class Outcome:
    """How a ``committing`` block ended: ``ok`` (committed), or the ``error`` that rolled it back."""

    def __init__(self) -> None:
        self.error: ServiceError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> int:
        """The HTTP status to render the page again with: the error's (422, 409...), else 200."""
        return self.error.status if self.error is not None else 200


@contextmanager
def committing(form=None, rename: dict[str, str] | None = None, *,
               show: Literal["flash", "form"] | None = "flash", prefix: str = "") -> Iterator[Outcome]:
    """The one way a console POST handler changes things: service calls in the block, then one commit.

    Indico's pattern: services flush, the handler commits once. When a service
    refuses (``ServiceError``) the block stops there, the session is rolled
    back and the refusal shown: each message under its field of ``form`` when
    it has one (``rename`` maps service field names to form ones, ``unit_id``
    -> ``unit``), the others flashed after ``prefix`` (``show="flash"``), added
    to the form's own errors (``show="form"``), or left to the caller
    (``show=None``: ``outcome.error``). The handler then reads ``outcome.ok``
    to redirect or render again::

        with committing(form) as outcome:
            event = event_service.create_event(actor, values)
        if outcome.ok:
            return redirect(...)

    ``NotFound``, ``Forbidden`` and anything unexpected pass through untouched
    (they are no broken rule: the error page answers them).
    """
    outcome = Outcome()
    try:
        yield outcome
    except ServiceError as exc:
        db.session.rollback()
        outcome.error = exc
        unplaced = show_service_error(form, exc, rename)
        if show == "form":
            form.form_errors.extend(unplaced)
        elif show == "flash":
            for message in unplaced:
                flash(prefix + message, "error")
        return
    db.session.commit()


def show_service_error(form, exc: ServiceError, rename: dict[str, str] | None = None) -> list[str]:
    """Put each of a service error's messages under its form field; return those the form has no field for.

    A ``ValidationErrors`` carries a message per field, so one submit shows
    them all. ``rename`` maps service field names to form ones (``unit_id`` ->
    ``unit``). A field already marked (by the form's own checks) keeps its
    first message only, so nothing is said twice.
    """
    errors = exc.errors if isinstance(exc, ValidationErrors) else {exc.field: exc.message}
    unplaced = []
    for name, message in errors.items():
        name = (rename or {}).get(name, name) if name else None
        field = form[name] if form is not None and name and name in form else None
        if field is None:
            unplaced.append(message)
        elif not field.errors:
            field.errors = [message]
    return unplaced


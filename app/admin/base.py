"""Base classes for console views: access control and scoping in one place.

Every console view derives from ``SecureView`` or ``ScopedModelView``. Access
needs a logged-in staff user holding the view's permission; model views
filter their list, count, detail, edit and delete through the scoping helper,
so an out-of-scope id answers 404 like a missing one.
"""

from __future__ import annotations

from flask import abort, flash, has_request_context, redirect, request, url_for
from flask_admin import BaseView
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user

from app.extensions import db
from app.security import has_console_access, has_permission, scope_filter
from app.services.errors import ServiceError


def staff_can(permission: str | None) -> bool:
    """Is the current user staff holding ``permission`` somewhere (None: any staff)?"""
    if not has_request_context() or not current_user.is_authenticated:
        return False
    if not has_console_access(current_user):
        return False
    return permission is None or has_permission(current_user, permission)


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
        try:
            id = int(id)
        except (TypeError, ValueError):
            abort(404)
        obj = self.get_query().filter(self.model.id == id).one_or_none()
        if obj is None:
            abort(404)
        return obj

    def handle_service_error(self, exc: ServiceError, form=None) -> None:
        """Show a broken rule next to its field when the form has it, else as a flash."""
        db.session.rollback()
        field = getattr(form, exc.field, None) if form is not None and exc.field else None
        if field is not None:
            field.errors = list(field.errors or []) + [exc.message]
        else:
            flash(exc.message, "error")

"""Login, identity, permissions and scope: the one place that decides who may see what.

A role is assigned to a user either globally or at a unit; at a unit it covers
that unit's whole subtree. Every staff-facing query goes through ``scoped()``
so that console lists, detail pages, exports, counts, charts and the API all
apply the same rule. Objects outside a user's scope answer 404, as if they did
not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, g, has_request_context
from flask_login import current_user
from flask_principal import ActionNeed, Identity, RoleNeed, UserNeed, identity_loaded
from sqlalchemy import Select, bindparam, false, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db, login_manager, principal
from app.models import AuditEntry, Member, RoleAssignment, Unit, User
from app.models.base import utcnow
from app.models.rbac import Permission, Role, role_permissions

# Permissions a member needs for self-service; holding only these gives no console access.
PORTAL_PERMISSIONS = frozenset(
    {
        "events.read",
        "events.register",
        "referrals.create",
        "referrals.read_own",
        "cards.read_own",
        "profile.read_own",
        "profile.update_own",
    }
)


@dataclass(frozen=True)
class Grant:
    """One permission a user holds, everywhere (unit_path None) or in a subtree."""

    permission: str
    unit_path: str | None


# Every request of a logged-in user runs this; built once.
_GRANTS = (
    select(RoleAssignment.expires_at, Unit.path, Role.name, Permission.resource, Permission.action)
    .join(Role, Role.id == RoleAssignment.role_id)
    .outerjoin(Unit, Unit.id == RoleAssignment.unit_id)
    .outerjoin(role_permissions, role_permissions.c.role_id == Role.id)
    .outerjoin(Permission, Permission.id == role_permissions.c.permission_id)
    .where(RoleAssignment.user_id == bindparam("user_id"))
)


def grants_for(user: Any) -> list[Grant]:
    """All live grants of a user, computed once per request (one query, with the role names)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return []
    cache = g.setdefault("_muster_grants", {}) if has_request_context() else {}
    if user.id in cache:
        return cache[user.id]
    now = utcnow()
    rows = db.session.execute(_GRANTS, {"user_id": user.id}).all()
    live = [row for row in rows if row.expires_at is None or row.expires_at > now]
    grants = {
        Grant("*" if row.resource == "*" else f"{row.resource}.{row.action}", row.path)
        for row in live
        if row.resource is not None
    }
    result = sorted(grants, key=lambda gr: (gr.permission, gr.unit_path or ""))
    cache[user.id] = result
    if has_request_context():
        g.setdefault("_muster_roles", {})[user.id] = sorted({row.name for row in live})
    return result


def role_names_for(user: Any) -> list[str]:
    """Names of the user's live roles (for Flask-Principal's RoleNeeds), from the grants query."""
    grants_for(user)
    roles = g.get("_muster_roles", {}) if has_request_context() else {}
    if user is not None and user.id in roles:
        return roles[user.id]
    now = utcnow()
    return sorted({a.role.name for a in getattr(user, "assignments", []) if a.expires_at is None or a.expires_at > now})


def forget_grants() -> None:
    """Drop the per-request cache after roles or assignments change."""
    if has_request_context():
        g.pop("_muster_grants", None)
        g.pop("_muster_roles", None)
        g.pop("_muster_scope", None)


def _matches(granted: str, wanted: str) -> bool:
    if granted == "*" or granted == wanted:
        return True
    resource, _, action = granted.partition(".")
    return action == "*" and wanted.startswith(resource + ".")


def has_permission(user: Any, permission: str) -> bool:
    """True when the user holds the permission somewhere (for menus and buttons)."""
    return any(_matches(gr.permission, permission) for gr in grants_for(user))


def has_console_access(user: Any) -> bool:
    """Staff are users holding any permission beyond member self-service."""
    return any(gr.permission not in PORTAL_PERMISSIONS for gr in grants_for(user))


def scope_paths(user: Any, permission: str) -> list[str] | None:
    """Unit paths where the user holds the permission; None means everywhere."""
    paths: list[str] = []
    for gr in grants_for(user):
        if _matches(gr.permission, permission):
            if gr.unit_path is None:
                return None
            paths.append(gr.unit_path)
    # Drop paths already covered by an ancestor path.
    paths.sort(key=len)
    kept: list[str] = []
    for path in paths:
        if not any(path.startswith(k) for k in kept):
            kept.append(path)
    return kept


def scope_unit_ids(user: Any, permission: str) -> list[int] | None:
    """Ids of every unit in the user's scope for a permission; None means everywhere.

    The geography is small next to the member registry, so resolving the
    subtree to ids once per request lets the database use plain
    ``unit_id IN (...)`` index probes on the large tables.
    """
    paths = scope_paths(user, permission)
    if paths is None:
        return None
    if not paths:
        return []
    cache = g.setdefault("_muster_scope", {}) if has_request_context() else {}
    key = tuple(paths)
    if key not in cache:
        cache[key] = list(
            db.session.scalars(select(Unit.id).where(or_(*[Unit.path.startswith(p) for p in paths])))
        )
    return cache[key]


def subtree_unit_ids(unit: Unit) -> list[int]:
    """Ids of a unit and all its descendants."""
    return list(db.session.scalars(select(Unit.id).where(Unit.path.startswith(unit.path))))


def _scope_clause(model: type, unit_ids: list[int]) -> ColumnElement[bool]:
    if model is Unit:
        return Unit.id.in_(unit_ids)
    if model is User:
        in_scope_assignment = (
            select(RoleAssignment.id)
            .where(RoleAssignment.user_id == User.id, RoleAssignment.unit_id.in_(unit_ids))
            .exists()
        )
        in_scope_member = (
            select(Member.id).where(Member.id == User.member_id, Member.unit_id.in_(unit_ids)).exists()
        )
        return or_(in_scope_assignment, in_scope_member)
    if model in (Member, AuditEntry, RoleAssignment) or hasattr(model, "unit_id"):
        return model.unit_id.in_(unit_ids)
    raise TypeError(f"{model.__name__} has no scope rule")


def scope_filter(user: Any, permission: str, model: type) -> ColumnElement[bool] | None:
    """The WHERE clause confining ``model`` rows to the user's scope; None when unrestricted.

    Users without the permission get a clause that matches nothing, never an
    error, so lists are empty and counts read zero.
    """
    unit_ids = scope_unit_ids(user, permission)
    if unit_ids is None:
        return None
    if not unit_ids:
        return false()
    return _scope_clause(model, unit_ids)


def scoped(stmt: Select, user: Any, permission: str, model: type | None = None) -> Select:
    """Restrict a SELECT to what ``user`` may reach with ``permission``.

    ``model`` defaults to the statement's first entity.
    """
    if model is None:
        model = stmt.column_descriptions[0]["entity"]
    clause = scope_filter(user, permission, model)
    return stmt if clause is None else stmt.where(clause)


def can(user: Any, permission: str, unit: Unit | int | None = None) -> bool:
    """May ``user`` use ``permission`` on something in ``unit`` (or anywhere, if None)?"""
    if unit is None:
        return scope_paths(user, permission) is None
    if isinstance(unit, int):
        unit = db.session.get(Unit, unit)
        if unit is None:
            return False
    paths = scope_paths(user, permission)
    return paths is None or any(unit.path.startswith(p) for p in paths)


def get_scoped_or_404(model: type, object_id: Any, user: Any, permission: str) -> Any:
    """Load one object through the scope filter; out of scope looks like missing."""
    pk = getattr(model, "id")
    stmt = scoped(select(model).where(pk == object_id), user, permission, model)
    if model is Member:
        stmt = stmt.where(Member.deleted_at.is_(None))
    obj = db.session.scalar(stmt)
    if obj is None:
        abort(404)
    return obj


# --- Flask-Login and Flask-Principal wiring ------------------------------------------


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


def _identity_loader() -> Identity | None:
    if current_user.is_authenticated:
        return Identity(current_user.id, "session")
    return None


def init_security(app) -> None:
    """Bind Flask-Login and Flask-Principal; identity needs mirror the user's grants."""
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.session_protection = "strong"
    principal.init_app(app)
    principal.identity_loader(_identity_loader)

    @identity_loaded.connect_via(app)
    def on_identity_loaded(sender, identity):  # noqa: ARG001
        user = db.session.get(User, identity.id) if identity.id is not None else None
        if user is None:
            return
        identity.provides.add(UserNeed(user.id))
        for name in role_names_for(user):
            identity.provides.add(RoleNeed(name))
        for gr in grants_for(user):
            identity.provides.add(ActionNeed(gr.permission))

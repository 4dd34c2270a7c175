"""Roles, permissions, and the roles assigned to users.

Roles are global objects, so reading or changing them needs the roles.*
permission globally (the same rule ``app.services.rbac`` applies to writes).
Users are scoped like everything else: another user is visible through
``scoped(select(User), me, "users.read")``; anyone may read their own roles
and permissions.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, url_for
from sqlalchemy import select

from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.inputs import check_types, json_object, parse_datetime, reject_unknown, require
from app.api.serialize import assignment_json, permission_json, role_json
from app.extensions import db
from app.models import Permission, Role, RoleAssignment, Unit, User
from app.security import can, load_for
from app.services import rbac as rbac_service


def _require_global(permission: str) -> None:
    if not can(actor(), permission):
        raise ApiError(403, "You do not have permission to manage roles.", {"permission": permission})


def _role_or_404(role_id: int) -> Role:
    role = db.session.get(Role, role_id)
    if role is None:
        raise ApiError(404, "No role with this id.")
    return role


def _created(payload: dict[str, Any], location: str):
    response = jsonify(payload)
    response.status_code = 201
    response.headers["Location"] = location
    return response


# --- permissions and roles ------------------------------------------------------------


@bp.get("/permissions")
def list_permissions():
    """The permission catalogue, for building role editors."""
    _require_global("roles.read")
    perms = db.session.scalars(select(Permission).order_by(Permission.resource, Permission.action))
    return jsonify({"items": [permission_json(p) for p in perms]})


@bp.get("/roles")
def list_roles():
    _require_global("roles.read")
    roles = db.session.scalars(select(Role).order_by(Role.name))
    return jsonify({"items": [role_json(r) for r in roles]})


@bp.post("/roles")
def create_role():
    _require_global("roles.create")
    data = json_object()
    reject_unknown(data, {"name", "description", "permissions"})
    check_types(data, {"name": "string", "description": "string", "permissions": "string_list"},
                nullable={"description", "permissions"})
    name = require(data, "name", "Give the role a name.")
    role = rbac_service.create_role(actor(), name, data.get("description") or "", data.get("permissions") or [])
    db.session.commit()
    return _created(role_json(role), url_for("api.get_role", role_id=role.id))


@bp.get("/roles/<pk:role_id>")
def get_role(role_id: int):
    _require_global("roles.read")
    return jsonify(role_json(_role_or_404(role_id)))


@bp.put("/roles/<pk:role_id>")
def update_role(role_id: int):
    """Change the description and/or the permission set; a role keeps its name (it is referenced by name)."""
    _require_global("roles.update")
    role = _role_or_404(role_id)
    data = json_object()
    reject_unknown(data, {"name", "description", "permissions"})
    check_types(data, {"name": "string", "description": "string", "permissions": "string_list"},
                nullable={"description"})
    if "name" in data and data["name"] != role.name:
        raise ApiError(422, "A role cannot be renamed; create a new role instead.", {"field": "name"})
    role = rbac_service.update_role(actor(), role, description=data.get("description"),
                                    permissions=data.get("permissions"))
    db.session.commit()
    return jsonify(role_json(role))


@bp.delete("/roles/<pk:role_id>")
def delete_role(role_id: int):
    """Delete a custom role; system roles and roles still assigned answer 409."""
    _require_global("roles.delete")
    rbac_service.delete_role(actor(), _role_or_404(role_id))
    db.session.commit()
    return "", 204


def _role_permissions_json(role: Role) -> dict[str, Any]:
    return {"role_id": role.id, "role": role.name, "permissions": [p.name for p in role.permissions]}


@bp.get("/roles/<pk:role_id>/permissions")
def get_role_permissions(role_id: int):
    _require_global("roles.read")
    return jsonify(_role_permissions_json(_role_or_404(role_id)))


@bp.put("/roles/<pk:role_id>/permissions")
def set_role_permissions(role_id: int):
    """Replace the role's whole permission set (send the complete list)."""
    _require_global("roles.update")
    role = _role_or_404(role_id)
    data = json_object()
    reject_unknown(data, {"permissions"})
    check_types(data, {"permissions": "string_list"})
    if "permissions" not in data:
        raise ApiError(422, "Send the complete list of permissions.", {"field": "permissions"})
    role = rbac_service.update_role(actor(), role, permissions=data["permissions"])
    db.session.commit()
    return jsonify(_role_permissions_json(role))


# --- users' roles and permissions -----------------------------------------------------


def _visible_user(user_id: int) -> User:
    """The user, if the caller may see them: themselves, or within their users.read scope (else 404)."""
    me = actor()
    if user_id == me.id:
        return me
    return load_for(me, User, user_id, "users.read")


@bp.get("/users/<pk:user_id>/roles")
def list_user_roles(user_id: int):
    user = _visible_user(user_id)
    shown, hidden = rbac_service.visible_assignments(actor(), user)
    return jsonify({"user_id": user.id, "items": [assignment_json(a) for a in shown], "hidden": hidden})


@bp.post("/users/<pk:user_id>/roles")
def assign_user_role(user_id: int):
    """Give the user a role at a unit (or globally with ``unit_id`` null).

    The service refuses assignments outside the caller's users.update scope
    and roles carrying permissions the caller does not hold there (403).
    """
    user = load_for(actor(), User, user_id, "users.update")
    data = json_object()
    reject_unknown(data, {"role", "role_id", "unit_id", "expires_at"})
    check_types(data, {"role": "string", "role_id": "id", "unit_id": "id", "expires_at": "string"},
                nullable={"role", "role_id", "unit_id", "expires_at"})
    if data.get("role_id") is not None:
        role = db.session.get(Role, data["role_id"])
        if role is None:
            raise ApiError(422, "There is no role with this id.", {"field": "role_id"})
    elif data.get("role"):
        role = rbac_service.role_by_name(data["role"])
    else:
        raise ApiError(422, "Say which role to give: 'role' (its name) or 'role_id'.", {"field": "role"})
    unit = None
    if data.get("unit_id") is not None:
        unit = db.session.get(Unit, data["unit_id"])
        if unit is None or not can(actor(), "users.update", unit):
            raise ApiError(422, "That unit does not exist or is outside your area.", {"field": "unit_id"})
    expires_at = parse_datetime(data.get("expires_at"), "expires_at")
    assignment = rbac_service.assign_role(actor(), user, role, unit, expires_at)
    db.session.commit()
    return _created(assignment_json(assignment), url_for("api.list_user_roles", user_id=user.id))


@bp.delete("/users/<pk:user_id>/roles/<pk:assignment_id>")
def remove_user_role(user_id: int, assignment_id: int):
    user = _visible_user(user_id)
    assignment = load_for(actor(), RoleAssignment, assignment_id, "users.update")
    if assignment.user_id != user.id:
        raise ApiError(404, "This user has no such role assignment.")
    rbac_service.unassign_role(actor(), assignment)
    db.session.commit()
    return "", 204


@bp.get("/users/<pk:user_id>/permissions")
def user_permissions(user_id: int):
    """What the user may do and where (one row per permission, with the units it covers)."""
    user = _visible_user(user_id)
    return jsonify({"user_id": user.id, "items": rbac_service.effective_permissions(user, viewer=actor())})

"""Roles, permissions, and the roles assigned to users.

Roles are global objects, so reading or changing them needs the roles.*
permission globally (the same rule ``app.services.rbac`` applies to writes).
Users are scoped like everything else: another user is visible through
``scoped(select(User), me, "users.read")``; anyone may read their own roles
and permissions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import url_for
from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import select

from app import models
from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.schema import Body, Choice, Count, DateTimeIn, Id, Out, OutId, Text, Timestamp, UnitRef, UserRef
from app.api.spec import operation
from app.extensions import db
from app.security import can, load_for
from app.services import rbac as rbac_service

# --- schemas -----------------------------------------------------------------------------


def _names(items: Any) -> Any:
    """Permissions (or a role) by name, as the API shows them."""
    if isinstance(items, list):
        return [getattr(item, "name", item) for item in items]
    return getattr(items, "name", items)


class Permission(Out):
    name: str = Field(examples=["members.read", "*"])
    resource: str
    action: str
    description: str


class PermissionList(Out):
    items: list[Permission]


class Role(Out):
    id: OutId
    name: str
    description: str
    is_system: bool = Field(description="System roles cannot be deleted.")
    permissions: list[str]
    created_at: Timestamp

    _permission_names = field_validator("permissions", mode="before")(_names)


class RoleList(Out):
    items: list[Role]


# The catalogue is the code's: the permissions the database holds are made from it (rbac.ensure_catalogue).
PERMISSION_NAMES = ("*", *(f"{resource}.{action}" for resource, actions in rbac_service.CATALOGUE.items()
                           for action in actions))
PermissionNames = Annotated[list[Choice(PERMISSION_NAMES, exact=True)], Field(
    description="Permission names, e.g. members.read (see /permissions).")]
Description = Text(200)


class RoleCreate(Body):
    messages = {"name": "A role name is 2-60 lower-case letters, digits or '_', starting with a letter."}

    name: Text(60, pattern=rbac_service.ROLE_NAME_RE.pattern, lower=True)
    description: Description | None = None
    permissions: PermissionNames | None = None


class RoleUpdate(Body):
    name: str = Field(None, description="Accepted only unchanged: roles cannot be renamed.")
    description: Description | None = None
    permissions: PermissionNames = Field(None, description="Replaces the whole set.")


class RolePermissions(Out):
    role_id: OutId
    role: str
    permissions: list[str]


class RolePermissionsUpdate(Body):
    messages = {"permissions": "Send the complete list of permission names (see GET /permissions)."}

    permissions: PermissionNames


class RoleAssignment(Out):
    id: OutId
    user_id: OutId
    role: str
    role_id: OutId
    unit_id: OutId | None = Field(description="null: the role applies everywhere.")
    assigned_by: UserRef | None
    assigned_at: Timestamp
    expires_at: Timestamp | None

    _role_name = field_validator("role", mode="before")(_names)


class RoleAssignmentList(Out):
    user_id: OutId
    items: list[RoleAssignment]
    hidden: Count = Field(description="Assignments outside your users.read scope, not listed.")


class RoleAssignmentCreate(Body):
    """Say which role: its name (role) or its id (role_id)."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["role"], "properties": {"role": {"type": "string", "minLength": 1}}},
        {"required": ["role_id"], "properties": {"role_id": {"type": "integer"}}},
    ]})

    role: str | None = Field(None, description="The role's name (or give role_id).")
    role_id: Id | None = None
    unit_id: Id | None = Field(None, description=(
        "Where the role applies (its whole subtree), within your users.update area; null for everywhere."))
    expires_at: DateTimeIn | None = None


class EffectivePermission(Out):
    permission: str
    scope: Literal["global", "units"]
    units: list[UnitRef]
    hidden: Count = Field(description="Units outside your users.read scope, not listed.")


class EffectivePermissionList(Out):
    user_id: OutId
    items: list[EffectivePermission]


# --- permissions and roles ------------------------------------------------------------


def _role_or_404(role_id: int) -> models.Role:
    role = db.session.get(models.Role, role_id)
    if role is None:
        raise ApiError(404, "No role with this id.")
    return role


@bp.get("/permissions")
@operation("roles", permission="roles.read", everywhere=True,
           responses={200: (PermissionList, "Every permission.")})
def list_permissions():
    """The permission catalogue

    For building role editors.
    """
    perms = db.session.scalars(select(models.Permission).order_by(models.Permission.resource,
                                                                  models.Permission.action))
    return PermissionList(items=list(perms))


@bp.get("/roles")
@operation("roles", permission="roles.read", everywhere=True, responses={200: (RoleList, "Every role.")})
def list_roles():
    """List roles"""
    return RoleList(items=list(db.session.scalars(select(models.Role).order_by(models.Role.name))))


@bp.post("/roles")
@operation("roles", permission="roles.create", everywhere=True, responses={201: (Role, "The new role.")},
           errors=(400, 409), location=True)
def create_role(json: RoleCreate):
    """Create a role"""
    role = rbac_service.create_role(actor(), json.name, json.description or "", json.permissions or [])
    db.session.commit()
    return Role.model_validate(role), 201, {"Location": url_for("api.get_role", role_id=role.id)}


@bp.get("/roles/<pk:role_id>")
@operation("roles", permission="roles.read", everywhere=True, responses={200: (Role, "The role.")},
           errors=(404,))
def get_role(role_id: int):
    """Read a role"""
    return Role.model_validate(_role_or_404(role_id))


@bp.put("/roles/<pk:role_id>")
@operation("roles", permission="roles.update", everywhere=True,
           responses={200: (Role, "The role after the change.")}, errors=(400, 404, 409))
def update_role(role_id: int, json: RoleUpdate):
    """Change a role's description or permissions

    A role keeps its name (it is referenced by name): send it unchanged or not at all.
    """
    role = _role_or_404(role_id)
    if json.name is not None and json.name != role.name:
        raise ApiError(422, "A role cannot be renamed; create a new role instead.", {"field": "name"})
    role = rbac_service.update_role(actor(), role, description=json.description, permissions=json.permissions)
    db.session.commit()
    return Role.model_validate(role)


@bp.delete("/roles/<pk:role_id>")
@operation("roles", permission="roles.delete", everywhere=True, responses={204: (None, "Deleted.")},
           errors=(404, 409))
def delete_role(role_id: int):
    """Delete a role

    System roles, and roles still assigned to someone, cannot be deleted (409).
    """
    rbac_service.delete_role(actor(), _role_or_404(role_id))
    db.session.commit()
    return "", 204


def _role_permissions(role: models.Role) -> RolePermissions:
    return RolePermissions(role_id=role.id, role=role.name, permissions=[p.name for p in role.permissions])


@bp.get("/roles/<pk:role_id>/permissions")
@operation("roles", permission="roles.read", everywhere=True,
           responses={200: (RolePermissions, "The permission names.")}, errors=(404,))
def get_role_permissions(role_id: int):
    """A role's permissions"""
    return _role_permissions(_role_or_404(role_id))


@bp.put("/roles/<pk:role_id>/permissions")
@operation("roles", permission="roles.update", everywhere=True,
           responses={200: (RolePermissions, "The new permission set.")}, errors=(400, 404, 409))
def set_role_permissions(role_id: int, json: RolePermissionsUpdate):
    """Replace a role's permissions

    Send the complete list.
    """
    role = rbac_service.update_role(actor(), _role_or_404(role_id), permissions=json.permissions)
    db.session.commit()
    return _role_permissions(role)


# --- users' roles and permissions -----------------------------------------------------


def _visible_user(user_id: int) -> models.User:
    """The user, if the caller may see them: themselves, or within their users.read scope (else 404)."""
    me = actor()
    if user_id == me.id:
        return me
    return load_for(me, models.User, user_id, "users.read")


@bp.get("/users/<pk:user_id>/roles")
@operation("users", responses={200: (RoleAssignmentList, "The assignments.")}, errors=(403, 404))
def list_user_roles(user_id: int):
    """A user's role assignments

    Your own always; others within your users.read scope.
    """
    user = _visible_user(user_id)
    shown, hidden = rbac_service.visible_assignments(actor(), user)
    return RoleAssignmentList(user_id=user.id, items=shown, hidden=hidden)


@bp.post("/users/<pk:user_id>/roles")
@operation("users", responses={201: (RoleAssignment, "The new assignment.")}, errors=(400, 403, 404, 409),
           location=True)
def assign_user_role(user_id: int, json: RoleAssignmentCreate):
    """Give a user a role

    At a unit, or globally with unit_id null. Needs users.update where the role applies, and every
    permission the role carries (you cannot hand out more than you hold: 403).
    """
    user = load_for(actor(), models.User, user_id, "users.update")
    if json.role_id is not None:
        role = db.session.get(models.Role, json.role_id)
        if role is None:
            raise ApiError(422, "There is no role with this id.", {"field": "role_id"})
    elif json.role:
        role = rbac_service.role_by_name(json.role)
    else:
        raise ApiError(422, "Say which role to give: 'role' (its name) or 'role_id'.", {"field": "role"})
    unit = None
    if json.unit_id is not None:
        unit = db.session.get(models.Unit, json.unit_id)
        if unit is None or not can(actor(), "users.update", unit):
            raise ApiError(422, "That unit does not exist or is outside your area.", {"field": "unit_id"})
    assignment = rbac_service.assign_role(actor(), user, role, unit, json.expires_at)
    db.session.commit()
    return (RoleAssignment.model_validate(assignment), 201,
            {"Location": url_for("api.list_user_roles", user_id=user.id)})


@bp.delete("/users/<pk:user_id>/roles/<pk:assignment_id>")
@operation("users", responses={204: (None, "Removed.")}, errors=(403, 404, 409))
def remove_user_role(user_id: int, assignment_id: int):
    """Take a role away

    Needs what giving it needs: users.update there and every permission the role carries. The last
    global super_admin cannot be removed (409).
    """
    user = _visible_user(user_id)
    assignment = load_for(actor(), models.RoleAssignment, assignment_id, "users.update")
    if assignment.user_id != user.id:
        raise ApiError(404, "This user has no such role assignment.")
    rbac_service.unassign_role(actor(), assignment)
    db.session.commit()
    return "", 204


@bp.get("/users/<pk:user_id>/permissions")
@operation("users", responses={200: (EffectivePermissionList, "Each permission with where it applies.")},
           errors=(403, 404))
def user_permissions(user_id: int):
    """A user's effective permissions

    What the user may do and where (one row per permission, with the units it covers). Your own
    always; others within your users.read scope.
    """
    user = _visible_user(user_id)
    return EffectivePermissionList(user_id=user.id,
                                   items=rbac_service.effective_permissions(user, viewer=actor()))

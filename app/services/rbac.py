"""Roles, permissions and role assignments.

The permission catalogue and the system roles live here; ``ensure_catalogue``
creates whatever is missing and is safe to run any number of times (the
initial migration's data step and ``flask seed-demo`` both call it). System
roles keep their names but their permissions stay editable.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable

from sqlalchemy import func, select

from app.extensions import db
from app.models import Permission, Role, RoleAssignment, Unit, User
from app.models.base import utcnow
from app.security import (
    PORTAL_PERMISSIONS, authorize, authorize_everywhere, can, check_unit_choice, forget_grants, grants_for, permits,
)
from app.services import audit
from app.services.errors import Forbidden, ServiceError

CATALOGUE: dict[str, tuple[str, ...]] = {
    "members": ("create", "read", "update", "delete", "export"),
    "events": ("create", "read", "update", "delete", "register"),
    "referrals": ("create", "read", "update", "read_own"),
    "cards": ("create", "read", "update", "read_own"),
    "payments": ("read", "create", "refund"),
    "reports": ("read",),
    "profile": ("read_own", "update_own"),
    "units": ("create", "update", "delete"),
    "roles": ("read", "create", "update", "delete"),
    "users": ("read", "create", "update"),
}

SYSTEM_ROLES: dict[str, tuple[str, list[str]]] = {
    "super_admin": ("Everything, everywhere.", ["*"]),
    "admin": (
        "Runs the registry, events, referrals and cards within their area.",
        [
            "members.create", "members.read", "members.update", "members.delete", "members.export",
            "events.create", "events.read", "events.update", "events.delete",
            "referrals.read", "referrals.update", "cards.create", "cards.read", "cards.update",
            "payments.read", "payments.create", "payments.refund", "reports.read",
        ],
    ),
    "ward_coordinator": (
        "Looks after the members and events of their ward(s).",
        [
            "members.create", "members.read", "members.update", "members.export", "events.create",
            "events.read", "events.update", "referrals.read", "cards.read", "payments.read", "payments.create",
        ],
    ),
    "member": (
        "A member using the portal.",
        [
            "events.read", "events.register", "referrals.create", "referrals.read_own",
            "cards.read_own", "profile.read_own", "profile.update_own",
        ],
    ),
}
ROLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,59}$")


def ensure_catalogue() -> None:
    """Create missing permissions and system roles (never removes or overrides edits)."""
    existing = {p.name: p for p in db.session.scalars(select(Permission))}
    for resource, actions in CATALOGUE.items():
        for action in actions:
            name = f"{resource}.{action}"
            if name not in existing:
                existing[name] = Permission(resource=resource, action=action)
                db.session.add(existing[name])
    if "*" not in existing:
        existing["*"] = Permission(resource="*", action="*", description="Every permission")
        db.session.add(existing["*"])
    db.session.flush()
    for name, (description, perms) in SYSTEM_ROLES.items():
        role = db.session.scalar(select(Role).where(Role.name == name))
        if role is None:
            role = Role(name=name, description=description, is_system=True)
            role.permissions = [existing[p] for p in perms]
            db.session.add(role)
    db.session.flush()


def permission_by_name(name: str) -> Permission:
    resource, _, action = name.partition(".")
    if name == "*":
        resource, action = "*", "*"
    perm = db.session.scalar(select(Permission).where(Permission.resource == resource, Permission.action == action))
    if perm is None:
        raise ServiceError(f"Unknown permission '{name}'.", field="permissions")
    return perm


def role_by_name(name: str) -> Role:
    role = db.session.scalar(select(Role).where(Role.name == name))
    if role is None:
        raise ServiceError(f"Unknown role '{name}'.", field="role")
    return role


def _require(actor, permission: str) -> None:
    """Roles are global: managing them needs the permission everywhere."""
    authorize_everywhere(actor, permission, message="You may not manage roles.")


def create_role(actor, name: str, description: str = "", permissions: Iterable[str] = ()) -> Role:
    _require(actor, "roles.create")
    name = (name or "").strip().lower()
    if not ROLE_NAME_RE.match(name):
        raise ServiceError("A role name is 2-60 lower-case letters, digits or '_', starting with a letter.",
                           field="name")
    if db.session.scalar(select(Role).where(Role.name == name)) is not None:
        raise ServiceError(f"A role called {name} already exists.", field="name", status=409)
    role = Role(name=name, description=(description or "").strip()[:200], is_system=False)
    role.permissions = [permission_by_name(p) for p in dict.fromkeys(permissions)]
    db.session.add(role)
    db.session.flush()
    audit.record(actor, "role.create", role, summary=f"Created role {name}",
                 changes={"permissions": {"before": [], "after": [p.name for p in role.permissions]}})
    return role


def update_role(actor, role: Role, *, description: str | None = None,
                permissions: Iterable[str] | None = None) -> Role:
    _require(actor, "roles.update")
    before = {"description": role.description, "permissions": [p.name for p in role.permissions]}
    if description is not None:
        role.description = description.strip()[:200]
    if permissions is not None:
        permissions = list(dict.fromkeys(permissions))
        if role.name == "super_admin" and "*" not in permissions:
            # Otherwise one click could leave nobody able to manage access.
            raise ServiceError("super_admin always keeps every permission (*).", field="permissions", status=409)
        role.permissions = [permission_by_name(p) for p in permissions]
    db.session.flush()
    forget_grants()
    changes = audit.diff(before, {"description": role.description, "permissions": [p.name for p in role.permissions]})
    if changes:
        audit.record(actor, "role.update", role, summary=f"Updated role {role.name}", changes=changes)
    return role


def delete_role(actor, role: Role) -> None:
    _require(actor, "roles.delete")
    if role.is_system:
        raise ServiceError(f"{role.name} is a system role and cannot be deleted.", status=409)
    in_use = db.session.scalar(select(func.count()).select_from(RoleAssignment).where(RoleAssignment.role_id == role.id))
    if in_use:
        raise ServiceError(f"{role.name} is assigned to {in_use} user(s); remove those assignments first.", status=409)
    audit.record(actor, "role.delete", role, summary=f"Deleted role {role.name}")
    db.session.delete(role)
    db.session.flush()


def assign_role(actor, user: User, role: Role, unit: Unit | None = None,
                expires_at: datetime | None = None) -> RoleAssignment:
    """Give ``user`` a role at ``unit`` (global when None).

    Staff may only hand out roles inside their own scope, and never
    permissions they do not hold themselves there: a coordinator cannot make
    someone an admin.
    """
    if actor is not None:
        check_unit_choice(actor, unit, "users.update", refusal="You may not assign roles there.")
        missing = _not_held(actor, role, unit)
        if missing:
            raise ServiceError(f"You cannot grant {missing}, which you do not hold there.", field="role_id",
                               status=403)
    if expires_at is not None and expires_at <= utcnow():
        raise ServiceError("The expiry must be in the future.", field="expires_at")
    duplicate = db.session.scalar(
        select(RoleAssignment).where(
            RoleAssignment.user_id == user.id,
            RoleAssignment.role_id == role.id,
            RoleAssignment.unit_id.is_(None) if unit is None else RoleAssignment.unit_id == unit.id,
        )
    )
    if duplicate is not None:
        raise ServiceError(f"{user.email} already has {role.name} there.", field="role_id", status=409)
    assignment = RoleAssignment(user=user, role=role, unit=unit, expires_at=expires_at,
                                assigned_by_id=getattr(actor, "id", None))
    db.session.add(assignment)
    db.session.flush()
    forget_grants()
    audit.record(actor, "role.assign", assignment, unit_id=unit.id if unit else None,
                 summary=f"Gave {user.email} {role.name} at {unit.name if unit else 'all units'}")
    return assignment


def _not_held(actor, role: Role, unit: Unit | None) -> str | None:
    """The first of ``role``'s permissions ``actor`` does not hold at ``unit``, if any.

    Staff may give or take away only powers they hold themselves there; a
    self-service role (the member role) carries no power over others.
    """
    if {p.name for p in role.permissions} <= PORTAL_PERMISSIONS:
        return None
    return next((p.name for p in role.permissions if not can(actor, p.name, unit)), None)


def unassign_role(actor, assignment: RoleAssignment) -> None:
    """Take a role away. Like giving it, this needs every permission it carries, there.

    The last global super_admin of an active account is never removed: nobody
    could manage access afterwards.
    """
    authorize(actor, "users.update", assignment, message="You may not change roles there.")
    if actor is not None:
        missing = _not_held(actor, assignment.role, assignment.unit)
        if missing:
            raise Forbidden(f"{assignment.role.name} carries {missing}, which you do not hold there; "
                            "only someone who holds it can take it away.", permission=missing)
    if assignment.role.name == "super_admin" and assignment.unit_id is None:
        others = db.session.scalar(
            select(func.count()).select_from(RoleAssignment).join(User, User.id == RoleAssignment.user_id)
            .where(RoleAssignment.role_id == assignment.role_id, RoleAssignment.unit_id.is_(None),
                   RoleAssignment.id != assignment.id, User.active.is_(True),
                   (RoleAssignment.expires_at.is_(None)) | (RoleAssignment.expires_at > utcnow()))
        )
        if not others:
            raise ServiceError("This is the last account holding super_admin everywhere: give the role to "
                               "someone else first, so that somebody can still manage access.", status=409)
    audit.record(actor, "role.unassign", assignment, unit_id=assignment.unit_id,
                 summary=f"Removed {assignment.role.name} from {assignment.user.email}")
    db.session.delete(assignment)
    db.session.flush()
    forget_grants()


def _sees_everything(viewer, user: User) -> bool:
    return viewer is None or viewer.id == user.id


def visible_assignments(viewer, user: User) -> tuple[list[RoleAssignment], int]:
    """The user's role assignments ``viewer`` may see (users.read over their unit), and how many are hidden.

    Console and API show the same: a coordinator never learns which roles a
    colleague holds elsewhere, nor the names of units outside their area.
    """
    everything = sorted(user.assignments, key=lambda a: a.id)
    if _sees_everything(viewer, user):
        return everything, 0
    shown = [a for a in everything if permits(viewer, "users.read", a)]
    return shown, len(everything) - len(shown)


def effective_permissions(user: User, viewer=None) -> list[dict]:
    """What a user may do and where: one row per permission with the units it covers.

    With a ``viewer``, units outside the viewer's users.read scope are left
    out of each row and counted in its ``hidden``.
    """
    by_perm: dict[str, list[str | None]] = {}
    for gr in grants_for(user):
        by_perm.setdefault(gr.permission, []).append(gr.unit_path)
    unit_ids = {int(p.strip("/").split("/")[-1]) for paths in by_perm.values() for p in paths if p}
    units = {u.id: u for u in db.session.scalars(select(Unit).where(Unit.id.in_(unit_ids)))} if unit_ids else {}
    rows = []
    for perm, paths in sorted(by_perm.items()):
        if None in paths:
            rows.append({"permission": perm, "scope": "global", "units": [], "hidden": 0})
            continue
        covered = [u for u in (units.get(int(p.strip("/").split("/")[-1])) for p in paths) if u]
        shown = covered if _sees_everything(viewer, user) else [u for u in covered if permits(viewer, "users.read", u)]
        rows.append({
            "permission": perm,
            "scope": "units",
            "units": [{"id": u.id, "name": u.name, "code": u.code} for u in shown],
            "hidden": len(covered) - len(shown),
        })
    return rows

"""Models as JSON: snake_case names as in the models, dates and times in ISO 8601.

Kept in one place so that every endpoint (and the OpenAPI schemas in
``openapi.py``) describes an object the same way.
"""

from __future__ import annotations

from datetime import date, datetime
from math import ceil
from typing import Any

from flask import url_for

from app.models import Member, Permission, Role, RoleAssignment, Unit, User

MEMBER_FIELDS = (
    "id", "membership_number", "first_name", "last_name", "other_names", "gender", "date_of_birth",
    "national_id", "phone", "email", "address", "unit_id", "status", "joined_on", "notes",
)


def iso(value: date | datetime | None) -> str | None:
    """ISO 8601; stored times are UTC and keep their offset (``+00:00``)."""
    return value.isoformat() if value is not None else None


def member_json(member: Member) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in MEMBER_FIELDS:
        value = getattr(member, field)
        data[field] = iso(value) if isinstance(value, (date, datetime)) else value
    data["tags"] = [tag.name for tag in member.tags]
    data["created_at"] = iso(member.created_at)
    data["updated_at"] = iso(member.updated_at)
    return data


def permission_json(permission: Permission) -> dict[str, Any]:
    return {
        "name": permission.name,
        "resource": permission.resource,
        "action": permission.action,
        "description": permission.description,
    }


def role_json(role: Role) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "description": role.description,
        "is_system": role.is_system,
        "permissions": [p.name for p in role.permissions],
        "created_at": iso(role.created_at),
    }


def user_ref(user: User | None) -> dict[str, Any] | None:
    return {"id": user.id, "email": user.email} if user is not None else None


def assignment_json(assignment: RoleAssignment) -> dict[str, Any]:
    return {
        "id": assignment.id,
        "user_id": assignment.user_id,
        "role": assignment.role.name,
        "role_id": assignment.role_id,
        "unit_id": assignment.unit_id,
        "assigned_by": user_ref(assignment.assigned_by),
        "assigned_at": iso(assignment.assigned_at),
        "expires_at": iso(assignment.expires_at),
    }


def unit_ref(unit: Unit) -> dict[str, Any]:
    return {"id": unit.id, "name": unit.name, "code": unit.code}


def unit_json(unit: Unit, ancestors: list[Unit]) -> dict[str, Any]:
    return {
        "id": unit.id,
        "name": unit.name,
        "code": unit.code,
        "level": unit.level_name,
        "depth": unit.level,
        "parent_id": unit.parent_id,
        "ancestors": [unit_ref(a) for a in ancestors],
        "children": [unit_ref(c) for c in unit.children],
        "created_at": iso(unit.created_at),
    }


def page_of(items: list[Any], page: int, per_page: int, total: int, endpoint: str, **filters: Any) -> dict[str, Any]:
    """A list answer: ``{"items", "page", "per_page", "total", "links"}``, links keeping the filters.

    Empty filters are left out of the links; lists are joined with commas and
    dates written ISO, the way list endpoints read them back.
    """
    last_page = max(1, ceil(total / per_page))
    args: dict[str, Any] = {}
    for key, value in filters.items():
        if value in (None, "", []):
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, (date, datetime)):
            value = value.isoformat()
        args[key] = value

    def link(p: int) -> str:
        return url_for(endpoint, page=p, per_page=per_page, **args)

    return {
        "items": items,
        "page": page,
        "per_page": per_page,
        "total": total,
        "links": {
            "self": link(page),
            "next": link(page + 1) if page < last_page else None,
            "prev": link(min(page - 1, last_page)) if page > 1 else None,
        },
    }

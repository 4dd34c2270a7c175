"""Members: list with filters and paging, read, create, update, soft delete.

Thin views over ``app.services.members``. Every query goes through the scope
helper with the permission the action needs, so a ward coordinator's list,
total and links only ever cover their wards, and a member outside their area
answers 404 exactly like an id that does not exist.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.api.context import MAX_ID, actor, bp
from app.api.errors import ApiError
from app.api.inputs import check_types, int_arg, json_object, text_arg
from app.api.serialize import member_json, page_of
from app.extensions import db
from app.models import MEMBER_STATUSES, Member
from app.security import has_permission, load_for, scoped
from app.services import member_search
from app.services import members as member_service

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200

# JSON type of every field a client may send; the service decides what values are valid.
FIELD_KINDS: dict[str, str] = {
    "first_name": "string", "last_name": "string", "other_names": "string", "gender": "string",
    "date_of_birth": "string", "national_id": "string", "phone": "string", "email": "string",
    "address": "string", "unit_id": "id", "joined_on": "string", "notes": "string",
    "tags": "string_list", "status": "string", "status_reason": "string",
}
# Everything but the names and the unit may be cleared by sending null.
NULLABLE = frozenset(FIELD_KINDS) - {"first_name", "last_name", "unit_id"}

VERBS = {"members.read": "see", "members.update": "change", "members.delete": "delete"}


def _member_body() -> dict[str, Any]:
    data = json_object()
    check_types(data, FIELD_KINDS, nullable=NULLABLE)
    return data


def require_permission(permission: str) -> None:
    """403 for callers who hold the permission nowhere: there is nothing they could see or do."""
    if not has_permission(actor(), permission):
        raise ApiError(403, "You do not have permission to do this with members.",
                       {"permission": permission})


def _member_for(member_id: int, permission: str) -> Member:
    """A live member the caller may act on with ``permission``: 404 out of reach, 403 without the right."""
    verb = VERBS.get(permission, "do this to")
    return load_for(actor(), Member, member_id, permission, message=f"You may not {verb} this member.")


def list_filters() -> dict[str, Any]:
    """The member list's filters from the query string (q, status, unit_id), for GET /members and its export."""
    statuses = [s.strip().lower() for value in request.args.getlist("status")
                for s in value.split(",") if s.strip()]
    for status in statuses:
        if status not in MEMBER_STATUSES:
            raise ApiError(422, f"Unknown status '{status}'. Use one of: {', '.join(MEMBER_STATUSES)}.",
                           {"field": "status", "allowed": list(MEMBER_STATUSES)})
    return {
        "q": text_arg("q", 200),
        "status": statuses,
        "unit_id": int_arg("unit_id", None, minimum=1, maximum=MAX_ID),
    }


@bp.get("/members")
def list_members():
    """Live members in the caller's scope, filtered and paged; the total counts the same set."""
    require_permission("members.read")
    filters = list_filters()
    page = int_arg("page", 1, minimum=1)
    per_page = int_arg("per_page", DEFAULT_PER_PAGE, minimum=1, maximum=MAX_PER_PAGE)
    assert page is not None and per_page is not None  # both have defaults; this is for the type checker

    clauses = member_search.list_clauses(**filters)  # built once for both the page and the total
    me = actor()
    count = scoped(select(func.count(Member.id)).where(*clauses), me, "members.read", Member)
    total = db.session.scalar(count) or 0
    offset = (page - 1) * per_page
    items: list[Member] = []
    if offset < total:  # beyond the end there is nothing to fetch (and huge offsets overflow SQL)
        stmt = (
            scoped(select(Member).where(*clauses), me, "members.read")
            .options(selectinload(Member.tags))
            .order_by(Member.id)
            .offset(offset)
            .limit(per_page)
        )
        items = list(db.session.scalars(stmt))
    return jsonify(page_of([member_json(m) for m in items], page, per_page, total, "api.list_members", **filters))


@bp.post("/members")
def create_member():
    """Register a member; the service checks the unit is within the caller's area (else 422)."""
    require_permission("members.create")
    member = member_service.create_member(actor(), _member_body())
    db.session.commit()
    response = jsonify(member_json(member))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_member", member_id=member.id)
    return response


@bp.get("/members/<pk:member_id>")
def get_member(member_id: int):
    return jsonify(member_json(_member_for(member_id, "members.read")))


@bp.put("/members/<pk:member_id>")
def update_member(member_id: int):
    """Partial update: only the fields sent change; ``status`` (+ ``status_reason``) goes through the lifecycle."""
    member = _member_for(member_id, "members.update")
    member = member_service.update_member(actor(), member, _member_body())
    db.session.commit()
    return jsonify(member_json(member))


@bp.delete("/members/<pk:member_id>")
def delete_member(member_id: int):
    """Soft delete: the member leaves lists and the API but stays on record (restorable)."""
    member = _member_for(member_id, "members.delete")
    member_service.delete_member(actor(), member)
    db.session.commit()
    return "", 204

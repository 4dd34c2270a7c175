"""Members: list with filters and paging, read, create, update, soft delete.

Thin views over ``app.services.members``. Every query goes through the scope
helper with the permission the action needs, so a ward coordinator's list,
total and links only ever cover their wards, and a member outside their area
answers 404 exactly like an id that does not exist.

The models below are the members' one schema: they validate what clients
send, serialize what the API answers and are the OpenAPI document's
``Member*`` components. Their limits are the service's (``members.clean``
runs on every body too, and lists every field at fault at once).
"""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Annotated, Any

from flask import url_for
from pydantic import Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import models
from app.api.context import actor, bp
from app.api.schema import (
    Body, Choice, DateText, Id, OutId, Out, Page, PageQuery, Query, QueryId, QueryList, QueryText, Text, Timestamp,
)
from app.api.serialize import page_of
from app.api.spec import operation
from app.extensions import db
from app.models import GENDERS, MEMBER_STATUSES
from app.security import load_for, scoped
from app.services import member_search
from app.services import members as member_service

VERBS = {"members.read": "see", "members.update": "change", "members.delete": "delete"}


# --- schemas -----------------------------------------------------------------------------


class Member(Out):
    """A live member of the registry."""

    id: OutId
    membership_number: str
    first_name: str
    last_name: str
    other_names: str | None
    gender: Choice(GENDERS) | None
    date_of_birth: date | None
    national_id: str | None
    phone: str | None = Field(description="E.164, e.g. +260977123456.")
    email: str | None
    address: str | None
    unit_id: OutId
    status: Choice(MEMBER_STATUSES)
    joined_on: date
    notes: str | None
    tags: list[str]
    created_at: Timestamp
    updated_at: Timestamp

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_names(cls, tags: Any) -> Any:
        return [getattr(tag, "name", tag) for tag in tags]


class MemberPage(Page):
    items: list[Member]


Name = Text(80, min_length=1)
Email = Text(254, min_length=1)  # an address is 254 characters at most (RFC 5321); null clears it
Tags = Annotated[list[Text(60)], Field(max_length=member_service.MAX_TAGS,
                                       description="Tag names; replaces the member's tags.")]


class MemberCreate(Body):
    """A new member: first_name, last_name and unit_id are required."""

    service_check = staticmethod(member_service.clean)

    first_name: Name
    last_name: Name
    other_names: Text(120) | None = None
    gender: Choice(GENDERS) | None = None
    date_of_birth: DateText | None = None
    national_id: str | None = Field(None, description="4-40 letters, digits, '/' or '-'; unique.")
    phone: str | None = Field(None, description="Any common spelling; stored as E.164. Unique.")
    email: Email | None = Field(None, json_schema_extra={"format": "email"},
                                description="Unique (case-insensitive).")
    address: Text(500) | None = None
    unit_id: Id = Field(description="The member's unit (usually a ward); must be within your area.")
    joined_on: DateText | None = Field(None, description="Defaults to today.")
    notes: Text(5000) | None = None
    tags: Tags | None = None
    status: Choice(member_service.INITIAL_STATUSES) = "pending"
    status_reason: str | None = None


class MemberUpdate(Body):
    """A partial update: only the fields sent change."""

    service_check = staticmethod(partial(member_service.clean, partial=True))

    first_name: Name = None
    last_name: Name = None
    other_names: Text(120) | None = None
    gender: Choice(GENDERS) | None = None
    date_of_birth: DateText | None = None
    national_id: str | None = Field(None, description="4-40 letters, digits, '/' or '-'; unique.")
    phone: str | None = Field(None, description="Any common spelling; stored as E.164. Unique.")
    email: Email | None = Field(None, json_schema_extra={"format": "email"},
                                description="Unique (case-insensitive).")
    address: Text(500) | None = None
    unit_id: Id = Field(None, description="Moves the member; the new unit must be within your area.")
    joined_on: DateText | None = None
    notes: Text(5000) | None = None
    tags: Tags | None = None
    status: Choice(MEMBER_STATUSES) | None = Field(
        None, description="Changes status through the lifecycle (409 if not allowed).")
    status_reason: str | None = Field(None, description="Required with a status change.")


class MemberFilters(Query):
    q: QueryText(200) = Field("", description=(
        "Search: email, phone, membership or ID number exactly; words match surname prefixes "
        "('jo smi': first name Jo..., surname Smi...)."))
    status: QueryList(MEMBER_STATUSES) = Field(
        [], description="Only these statuses (repeat the parameter or separate with commas).")
    unit_id: QueryId | None = Field(None, description="Only members of this unit and the units below it.")

    def filters(self) -> dict[str, Any]:
        """The filters as ``member_search.list_clauses`` (and the links) take them."""
        return {"q": self.q, "status": self.status, "unit_id": self.unit_id}


class MemberListQuery(PageQuery, MemberFilters):
    """The filters, then the page."""


# --- access ------------------------------------------------------------------------------


def _member_for(member_id: int, permission: str) -> models.Member:
    """A live member the caller may act on with ``permission``: 404 out of reach, 403 without the right."""
    verb = VERBS.get(permission, "do this to")
    return load_for(actor(), models.Member, member_id, permission, message=f"You may not {verb} this member.")


# --- views -------------------------------------------------------------------------------


@bp.get("/members")
@operation("members", permission="members.read", responses={200: (MemberPage, "A page of members.")},
           errors=(400,))
def list_members(query: MemberListQuery):
    """List members

    Live (not deleted) members within your members.read scope, ordered by id; the total counts the
    same set.
    """
    filters = query.filters()
    clauses = member_search.list_clauses(**filters)  # built once for both the page and the total
    me = actor()
    count = scoped(select(func.count(models.Member.id)).where(*clauses), me, "members.read", models.Member)
    total = db.session.scalar(count) or 0
    items: list[models.Member] = []
    if query.offset < total:  # beyond the end there is nothing to fetch (and huge offsets overflow SQL)
        stmt = (
            scoped(select(models.Member).where(*clauses), me, "members.read")
            .options(selectinload(models.Member.tags))
            .order_by(models.Member.id)
            .offset(query.offset)
            .limit(query.per_page)
        )
        items = list(db.session.scalars(stmt))
    return page_of([Member.model_validate(m) for m in items], query.page, query.per_page, total,
                   "api.list_members", **filters)


@bp.post("/members")
@operation("members", permission="members.create", responses={201: (Member, "The new member.")},
           errors=(400, 409), location=True)
def create_member(json: MemberCreate):
    """Register a member

    In a unit where you hold members.create (a unit outside your area is a 422).
    """
    member = member_service.create_member(actor(), json.values())
    db.session.commit()
    return Member.model_validate(member), 201, {"Location": url_for("api.get_member", member_id=member.id)}


@bp.get("/members/<pk:member_id>")
@operation("members", responses={200: (Member, "The member.")}, errors=(403, 404))
def get_member(member_id: int):
    """Read a member"""
    return Member.model_validate(_member_for(member_id, "members.read"))


@bp.put("/members/<pk:member_id>")
@operation("members", responses={200: (Member, "The member after the change.")}, errors=(400, 403, 404, 409))
def update_member(member_id: int, json: MemberUpdate):
    """Change a member (partial)

    Only the fields sent change. Send status with status_reason to move the member through the status
    lifecycle.
    """
    member = _member_for(member_id, "members.update")
    member = member_service.update_member(actor(), member, json.values())
    db.session.commit()
    return Member.model_validate(member)


@bp.delete("/members/<pk:member_id>")
@operation("members", responses={204: (None, "Deleted: the member no longer appears in lists or here.")},
           errors=(403, 404))
def delete_member(member_id: int):
    """Delete a member (soft)

    Needs members.delete in the member's unit. The member stays on record (restorable in the console).
    """
    member = _member_for(member_id, "members.delete")
    member_service.delete_member(actor(), member)
    db.session.commit()
    return "", 204

"""Events, registrations, attendance and door check-in under /api/v1.

Thin views over ``app.services.events``. Visibility follows the service's
rule: staff see events through the scoping helper, members (portal users)
the published events of their own unit and the units above it. Out of sight
answers 404; visible but not the caller's to change, 403.

A member-role user with a linked member registers (and unregisters) only
themselves (``events.register``); staff with ``events.update`` over the
event register anyone in their area. ``POST /events/{id}/checkin`` answers
200 with ``result`` admitted / already_checked_in / rejected (and a reason)
for anything presented at the door; only a malformed request is an error.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from flask import url_for
from pydantic import ConfigDict, Field, model_validator
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from app import models
from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.schema import (
    Body, Choice, Count, DateTimeText, Id, Integer, Out, OutId, Page, PageQuery, QueryChoice, QueryDateTime, QueryId,
    QueryList, QueryText, Text, Timestamp,
)
from app.api.serialize import page_of
from app.api.spec import operation
from app.extensions import db
from app.models import CHECKIN_RULES, EVENT_STATUSES, EVENT_TYPES, REGISTRATION_STATUSES
from app.models.base import utcnow
from app.models.events import REGISTRATION_SOURCES, STORED_EVENT_STATUSES
from app.security import has_console_access, has_permission, load_for, permits, scope_filter, subtree_unit_ids
from app.services import events as event_service
from app.services import self_service
from app.services.checkin_input import parse_checkin
from app.services.events.checkin import NONCE_RE

RESULTS = ("admitted", "already_checked_in", "rejected")


# --- schemas: events -----------------------------------------------------------------------


class EventCounts(Out):
    registered: Count
    waitlisted: Count
    attended: Count


class Event(Out):
    id: OutId
    title: str
    description: str | None
    event_type: Choice(EVENT_TYPES)
    start_at: Timestamp
    end_at: Timestamp
    location: str | None
    venue: str | None
    unit_id: OutId
    capacity: int | None
    registration_required: bool
    registration_deadline: Timestamp | None
    status: Choice(EVENT_STATUSES)
    checkin_rule: Choice(CHECKIN_RULES)
    walk_ins_allowed: bool
    created_by_id: OutId | None
    created_at: Timestamp
    updated_at: Timestamp
    counts: EventCounts

    @classmethod
    def of(cls, event: models.Event, figures: dict[str, Any] | None = None) -> Event:
        """The event with its counts (``figures`` from ``counts_for`` when a list has them already)."""
        return cls.model_validate({
            **{key: getattr(event, key) for key in cls.model_fields if key not in ("status", "counts")},
            "status": event.current_status,
            "counts": figures if figures is not None else event_service.counts_for([event])[event.id],
        })


class EventPage(Page):
    items: list[Event]


Capacity = Annotated[Integer(ge=1, le=event_service.MAX_CAPACITY), Field(description=(
    "Empty: no limit. Registrations beyond it go on the waiting list."))]


class EventCreate(Body):
    """A new event: title, start_at, end_at and unit_id are required."""

    service_check = staticmethod(event_service.clean_event)

    title: Text(200, min_length=1)
    description: Text(10_000) | None = None
    event_type: Choice(EVENT_TYPES) = "meeting"
    start_at: DateTimeText
    end_at: DateTimeText = Field(description="After start_at; an event lasts 31 days at most.")
    location: Text(200) | None = None
    venue: Text(200) | None = None
    unit_id: Id = Field(description="The unit the event belongs to; must be within your events.create area.")
    capacity: Capacity | None = None
    registration_required: bool = Field(True, description=(
        "false: an open event; members in its area are admitted at the door without registering."))
    registration_deadline: DateTimeText | None = Field(
        None, description="Before start_at; applies to members registering themselves.")
    status: Choice(STORED_EVENT_STATUSES) = Field(
        "draft", description="upcoming publishes the event; ongoing and completed then follow the dates.")
    checkin_rule: Choice(CHECKIN_RULES) = Field(
        "once", description="once; once_per_day (days in MUSTER_TIMEZONE); multiple entries.")
    walk_ins_allowed: bool = Field(False, description="Admit unregistered members of the event's area at the door.")


class EventUpdate(Body):
    """A partial update: only the fields sent change. Raising the capacity moves waitlisted members up."""

    service_check = staticmethod(partial(event_service.clean_event, partial=True))

    title: Text(200, min_length=1) = None
    description: Text(10_000) | None = None
    event_type: Choice(EVENT_TYPES) = None
    start_at: DateTimeText = None
    end_at: DateTimeText = Field(None, description="After the start (the one sent, else the event's); 31 days at "
                                                   "most.")
    location: Text(200) | None = None
    venue: Text(200) | None = None
    unit_id: Id = Field(None, description="Moves the event; the new unit must be within your area.")
    capacity: Capacity | None = None
    registration_required: bool = None
    registration_deadline: DateTimeText | None = Field(None, description="Before the start.")
    status: Choice(EVENT_STATUSES) = Field(None, description=(
        "draft, upcoming (publish) or cancelled; ongoing and completed follow the dates (sending back the "
        "event's current one changes nothing)."))
    checkin_rule: Choice(CHECKIN_RULES) = None
    walk_ins_allowed: bool = None


class EventListQuery(PageQuery):
    status: QueryList(EVENT_STATUSES) = Field([], description="Only these statuses (repeat or separate with commas).")
    unit_id: QueryId | None = Field(None, description="Only events of this unit and the units below it.")
    from_: QueryDateTime | None = Field(None, alias="from", description="Only events ending after this time.")
    to: QueryDateTime | None = Field(None, description="Only events starting before this time.")
    q: QueryText(200) = Field("", description="Words in the title.")


# --- schemas: registrations and the door ---------------------------------------------------


class MemberSummary(Out):
    """Enough to recognise a person; no contact details."""

    id: OutId
    membership_number: str
    first_name: str
    last_name: str
    full_name: str
    status: str
    unit: str | None


class RegistrationFields(Out):
    id: OutId
    event_id: OutId
    member_id: OutId
    status: Choice(REGISTRATION_STATUSES)
    source: Choice(REGISTRATION_SOURCES)
    registered_at: Timestamp
    checked_in_at: Timestamp | None
    checkin_gate: str | None
    cancelled_at: Timestamp | None
    notes: str | None


class Registration(RegistrationFields):
    member: MemberSummary

    @classmethod
    def of(cls, reg: models.EventRegistration, **extra: Any) -> Any:
        return cls.model_validate({**{key: getattr(reg, key) for key in RegistrationFields.model_fields},
                                   "member": event_service.member_summary(reg.member), **extra})


class CancelledRegistration(Registration):
    promoted_member_ids: list[OutId] = Field(description="Who moved up from the waiting list.")


class MemberEvent(RegistrationFields):
    """One of a member's registrations, with its event."""

    event: Event


class MemberEventPage(Page):
    items: list[MemberEvent]


class AttendeeCounts(Out):
    registered: Count
    waitlisted: Count
    attended: Count
    cancelled: Count
    no_show: Count
    capacity: int | None
    places_left: Count | None


class AttendeePage(Page):
    items: list[Registration]
    counts: AttendeeCounts


class AttendeeQuery(PageQuery):
    status: QueryChoice(REGISTRATION_STATUSES) | None = Field(None, description="Only this registration status.")


class RegistrationCreate(Body):
    member_id: Id | None = Field(None, description="Omit (or give your own) to register yourself.")
    notes: Text(2000) | None = None


class AttendanceUpdate(Body):
    messages = {"status": "Give the attendance status: attended, registered or no_show."}

    status: Choice(event_service.ATTENDANCE_STATUSES)
    gate: Text(event_service.MAX_GATE_CHARS) | None = None


class CheckinRequest(Body):
    """Exactly one of token and member_id."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["token"], "properties": {"token": {"type": "string"}, "member_id": {"type": "null"}}},
        {"required": ["member_id"], "properties": {"member_id": {"type": "integer"}, "token": {"type": "null"}}},
    ]})

    token: str | None = Field(None, description=(
        "What the card's QR holds: the signed credential, or a verification URL ending in it."))
    member_id: Id | None = Field(None, description="Instead of a token: a member found by name or number.")
    gate: Text(event_service.MAX_GATE_CHARS) | None = Field(None, description="Which door, e.g. 'North gate'.")
    nonce: Text(64, pattern=NONCE_RE.pattern) | None = Field(None, description=(
        "A fresh id per scan (a UUID). Retrying with the same nonce returns the same answer and records "
        "nothing twice."))

    @model_validator(mode="before")
    @classmethod
    def _door_rules(cls, data: Any) -> Any:
        """The console's check-in reads the same body with the same parser: both answer alike."""
        return parse_checkin(data)


class CheckinResult(Out):
    result: Literal[RESULTS]  # type: ignore[valid-type]
    reason: Choice(sorted(event_service.REASONS)) | None = Field(description="Why a check-in was rejected.")
    message: str = Field(description="What to tell the person at the gate.")
    member: MemberSummary | None = Field(description="Null when unknown or outside the event's area.")
    first_checked_in_at: Timestamp | None
    first_gate: str | None
    checked_in_at: Timestamp | None = Field(description="This admission.")
    gate: str | None
    walk_in: bool
    registration_status: Choice(REGISTRATION_STATUSES) | None
    event_id: OutId
    replayed: bool = Field(False, exclude_if=lambda replayed: not replayed,
                           description="Present (true) when this answer was stored for the nonce.")


# --- access -----------------------------------------------------------------------------


def _event(event_id: int, permission: str = "events.read") -> models.Event:
    """The event, if the caller may use ``permission`` on it (the service answers 404 or 403)."""
    return event_service.load_event(actor(), event_id, permission)


def _own_member() -> models.Member | None:
    member = getattr(actor(), "member", None)
    return member if member is not None and member.deleted_at is None else None


def _body_member(member_id: int) -> models.Member:
    """The member named in a request body: 422 on that field when missing or out of reach."""
    member = db.session.get(models.Member, member_id)
    if member is None or member.deleted_at is not None or not permits(actor(), "members.read", member):
        raise ApiError(422, "No such member in your area.", {"field": "member_id"})
    return member


def _count(stmt) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


# --- events -----------------------------------------------------------------------------


@bp.get("/events")
@operation("events", permission="events.read", responses={200: (EventPage, "A page of events, soonest first.")},
           errors=(400,))
def list_events(query: EventListQuery):
    """List events

    Staff: events within their events.read scope (drafts included). Members: the published events of
    their unit and the units above it. Filter by status, unit (subtree), time and title.
    """
    stmt = event_service.visible_events(actor())
    if query.status:
        now = utcnow()
        stmt = stmt.where(or_(*[event_service.status_clause(s, now) for s in query.status]))
    if query.unit_id is not None:
        unit = db.session.get(models.Unit, query.unit_id)
        stmt = stmt.where(models.Event.unit_id.in_(subtree_unit_ids(unit) if unit is not None else []))
    if query.from_ is not None:
        stmt = stmt.where(models.Event.end_at > query.from_)
    if query.to is not None:
        stmt = stmt.where(models.Event.start_at < query.to)
    if query.q:
        stmt = stmt.where(func.lower(models.Event.title).contains(query.q.lower(), autoescape=True))
    total = _count(stmt)
    items: list[models.Event] = []
    if query.offset < total:
        items = list(db.session.scalars(stmt.order_by(models.Event.start_at, models.Event.id)
                                        .offset(query.offset).limit(query.per_page)))
    figures = event_service.counts_for(items)
    return page_of([Event.of(e, figures[e.id]) for e in items], query.page, query.per_page, total,
                   "api.list_events", status=query.status, unit_id=query.unit_id, q=query.q,
                   **{"from": query.from_, "to": query.to})


@bp.post("/events")
@operation("events", permission="events.create", responses={201: (Event, "The new event.")}, errors=(400,),
           location=True)
def create_event(json: EventCreate):
    """Create an event

    In a unit where you hold events.create (a unit outside your area is a 422). New events are drafts
    unless status is upcoming.
    """
    event = event_service.create_event(actor(), json.values())
    db.session.commit()
    return Event.of(event), 201, {"Location": url_for("api.get_event", event_id=event.id)}


@bp.get("/events/<pk:event_id>")
@operation("events", responses={200: (Event, "The event.")}, errors=(403, 404))
def get_event(event_id: int):
    """Read an event"""
    return Event.of(_event(event_id))


@bp.put("/events/<pk:event_id>")
@operation("events", responses={200: (Event, "The event after the change.")}, errors=(400, 403, 404, 409))
def update_event(event_id: int, json: EventUpdate):
    """Change an event (partial)

    Status draft, upcoming (publish) or cancelled; raising the capacity moves waitlisted members up.
    """
    event = event_service.update_event(actor(), _event(event_id), json.values())
    db.session.commit()
    return Event.of(event)


@bp.delete("/events/<pk:event_id>")
@operation("events", responses={204: (None, "Deleted.")}, errors=(403, 404, 409))
def delete_event(event_id: int):
    """Delete an event

    Needs events.delete. An event somebody attended cannot be deleted (409): cancel it instead.
    """
    event_service.delete_event(actor(), _event(event_id))
    db.session.commit()
    return "", 204


# --- registrations ----------------------------------------------------------------------


@bp.post("/events/<pk:event_id>/register")
@operation("events", optional_body=True, errors=(400, 403, 404, 409), responses={
    200: (Registration, "Already registered (or waitlisted or attended): unchanged."),
    201: (Registration, "Registered, or put on the waiting list when the event is full."),
})
def register_for_event(event_id: int, json: RegistrationCreate):
    """Register for an event

    Without member_id (or with your own): register yourself (events.register; your account must be
    linked to a member of the event's area; the deadline applies). With another member_id: staff with
    events.update over the event register a member of their area. Cancelled or finished events answer 409.
    """
    me = actor()
    own = _own_member()
    if own is not None and json.member_id in (None, own.id):
        # As a member: the events open to your area (events.register), whatever your staff scope.
        reg, created = self_service.register_self(me, event_id, notes=json.notes)
    else:
        event = _event(event_id)
        if json.member_id is None:
            raise ApiError(422, "Your account is not linked to a member, so you cannot register yourself.",
                           {"field": "member_id"})
        event_service.load_event(me, event_id, "events.update")  # 403 before saying anything of the member
        reg, created = event_service.register(me, event, _body_member(json.member_id), source="staff",
                                              notes=json.notes)
    db.session.commit()
    return Registration.of(reg), 201 if created else 200


@bp.delete("/events/<pk:event_id>/register/<pk:member_id>")
@operation("events", responses={200: (CancelledRegistration, "The cancelled registration.")},
           errors=(403, 404, 409))
def cancel_registration(event_id: int, member_id: int):
    """Cancel a registration

    Your own (events.register) or, as staff, anyone's in your area; the first waitlisted members move
    up (promoted_member_ids). An attended registration cannot be cancelled (409).
    """
    event = _event(event_id)
    me = actor()
    own = _own_member()
    if own is not None and own.id == member_id:
        member = own
    else:
        event_service.load_event(me, event_id, "events.update")
        member = load_for(me, models.Member, member_id, "members.read")
    reg = event_service.registration_for(event, member)
    if reg is None:
        raise ApiError(404, "This member is not registered for this event.")
    promoted = event_service.cancel_registration(me, reg)
    db.session.commit()
    return CancelledRegistration.of(reg, promoted_member_ids=[r.member_id for r in promoted])


@bp.get("/events/<pk:event_id>/attendees")
@operation("events", responses={200: (AttendeePage, "A page of registrations (by surname) and the counts.")},
           errors=(400, 403, 404))
def list_attendees(event_id: int, query: AttendeeQuery):
    """The event's registrations

    Staff with members.read; only members within that scope are listed.
    """
    event = _event(event_id)
    if not has_permission(actor(), "members.read") or not has_console_access(actor()):
        raise ApiError(403, "Only staff may list attendees.", {"permission": "members.read"})
    stmt = event_service.attendee_query(event, actor(), query.status)
    total = _count(stmt)
    items: list[models.EventRegistration] = []
    if query.offset < total:
        items = list(db.session.scalars(
            stmt.options(selectinload(models.EventRegistration.member).selectinload(models.Member.unit))
            .order_by(models.Member.surname_key, models.Member.first_name, models.Member.id)
            .offset(query.offset).limit(query.per_page)
        ))
    body = page_of([Registration.of(r) for r in items], query.page, query.per_page, total, "api.list_attendees",
                   event_id=event.id, status=query.status)
    return {**body, "counts": event_service.counts(event)}


@bp.put("/events/<pk:event_id>/attendance/<pk:member_id>")
@operation("events", responses={200: (Registration, "The registration after the change.")},
           errors=(400, 403, 404, 409))
def set_attendance(event_id: int, member_id: int, json: AttendanceUpdate):
    """Mark attendance by hand

    attended (registers the member if needed), registered (undo) or no_show. Needs events.update over
    the event.
    """
    event = _event(event_id, "events.update")
    member = load_for(actor(), models.Member, member_id, "members.read")
    reg = event_service.set_attendance(actor(), event, member, json.status, gate=json.gate)
    db.session.commit()
    return Registration.of(reg)


@bp.get("/members/<pk:member_id>/events")
@operation("events", responses={200: (MemberEventPage, "The member's registrations with their events, latest "
                                                       "first.")}, errors=(400, 403, 404))
def member_events(member_id: int, query: PageQuery):
    """A member's events

    Your own member always; others within your members.read scope (events you may see).
    """
    me = actor()
    own = _own_member()
    if own is None or own.id != member_id:
        load_for(me, models.Member, member_id, "members.read")
    stmt = (
        select(models.EventRegistration).join(models.Event, models.Event.id == models.EventRegistration.event_id)
        .where(models.EventRegistration.member_id == member_id)
    )
    clause = scope_filter(me, "events.read", models.Event)
    if clause is not None:
        stmt = stmt.where(clause)
    total = _count(stmt)
    regs: list[models.EventRegistration] = []
    if query.offset < total:
        regs = list(db.session.scalars(
            stmt.options(selectinload(models.EventRegistration.event))
            .order_by(models.Event.start_at.desc(), models.Event.id.desc()).offset(query.offset).limit(query.per_page)
        ))
    figures = event_service.counts_for([r.event for r in regs])
    items = [MemberEvent.model_validate({**{key: getattr(r, key) for key in RegistrationFields.model_fields},
                                         "event": Event.of(r.event, figures[r.event_id])}) for r in regs]
    return page_of(items, query.page, query.per_page, total, "api.member_events", member_id=member_id)


# --- check-in ---------------------------------------------------------------------------


@bp.post("/events/<pk:event_id>/checkin")
@operation("events", responses={200: (CheckinResult, (
    "The answer: admitted, already_checked_in (with the first time and gate) or rejected with a reason, for "
    "anything presented."))}, errors=(400, 403, 404))
def checkin(event_id: int, json: CheckinRequest):
    """Check a member in at the door

    Needs events.update over the event. Present the scanned token (or a member_id). Two gates scanning the
    same card at once record one attendance; a retry with the same nonce gets the same answer. Only a
    malformed request is an error: anything presented gets a 200 answer.
    """
    event = _event(event_id, "events.update")
    answer = event_service.check_in(actor(), event, **json.values())
    db.session.commit()
    return CheckinResult.model_validate(answer)

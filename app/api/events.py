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

from typing import Any

from flask import jsonify, request, url_for
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from app.api.context import MAX_ID, actor, bp
from app.api.errors import ApiError
from app.api.inputs import check_types, int_arg, json_object, parse_datetime, reject_unknown, text_arg
from app.api.serialize import iso, page_of
from app.extensions import db
from app.models import EVENT_STATUSES, REGISTRATION_STATUSES, Event, EventRegistration, Member, Unit
from app.models.base import utcnow
from app.security import has_console_access, has_permission, load_for, permits, scope_filter, subtree_unit_ids
from app.services import events as event_service
from app.services.checkin_input import parse_checkin

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200

EVENT_KINDS: dict[str, str] = {
    "title": "string", "description": "string", "event_type": "string", "start_at": "string", "end_at": "string",
    "location": "string", "venue": "string", "unit_id": "id", "capacity": "integer",
    "registration_required": "boolean", "registration_deadline": "string", "status": "string",
    "checkin_rule": "string", "walk_ins_allowed": "boolean",
}
EVENT_NULLABLE = frozenset({"description", "location", "venue", "capacity", "registration_deadline"})


# --- JSON -------------------------------------------------------------------------------


def event_json(event: Event, figures: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": event.id,
        "title": event.title,
        "description": event.description,
        "event_type": event.event_type,
        "start_at": iso(event.start_at),
        "end_at": iso(event.end_at),
        "location": event.location,
        "venue": event.venue,
        "unit_id": event.unit_id,
        "capacity": event.capacity,
        "registration_required": event.registration_required,
        "registration_deadline": iso(event.registration_deadline),
        "status": event.current_status,
        "checkin_rule": event.checkin_rule,
        "walk_ins_allowed": event.walk_ins_allowed,
        "created_by_id": event.created_by_id,
        "created_at": iso(event.created_at),
        "updated_at": iso(event.updated_at),
        "counts": figures if figures is not None else event_service.counts_for([event])[event.id],
    }


def registration_json(reg: EventRegistration, *, with_member: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": reg.id,
        "event_id": reg.event_id,
        "member_id": reg.member_id,
        "status": reg.status,
        "source": reg.source,
        "registered_at": iso(reg.registered_at),
        "checked_in_at": iso(reg.checked_in_at),
        "checkin_gate": reg.checkin_gate,
        "cancelled_at": iso(reg.cancelled_at),
        "notes": reg.notes,
    }
    if with_member:
        data["member"] = event_service.member_summary(reg.member)
    return data


def _paging() -> tuple[int, int]:
    page = int_arg("page", 1, minimum=1)
    per_page = int_arg("per_page", DEFAULT_PER_PAGE, minimum=1, maximum=MAX_PER_PAGE)
    assert page is not None and per_page is not None
    return page, per_page


# --- access -----------------------------------------------------------------------------


def _require(permission: str, what: str = "events") -> None:
    if not has_permission(actor(), permission):
        raise ApiError(403, f"You do not have permission to do this with {what}.", {"permission": permission})


def _event(event_id: int, permission: str = "events.read") -> Event:
    """The event, if the caller may use ``permission`` on it (the service answers 404 or 403)."""
    return event_service.load_event(actor(), event_id, permission)


def _own_member() -> Member | None:
    member = getattr(actor(), "member", None)
    return member if member is not None and member.deleted_at is None else None


def _body_member(member_id: int) -> Member:
    """The member named in a request body: 422 on that field when missing or out of reach."""
    member = db.session.get(Member, member_id)
    if member is None or member.deleted_at is not None or not permits(actor(), "members.read", member):
        raise ApiError(422, "No such member in your area.", {"field": "member_id"})
    return member


def _event_body() -> dict[str, Any]:
    data = json_object()
    reject_unknown(data, set(EVENT_KINDS))
    check_types(data, EVENT_KINDS, nullable=EVENT_NULLABLE)
    return data


# --- events -----------------------------------------------------------------------------


@bp.get("/events")
def list_events():
    """Visible events, soonest first; filter by status, unit (subtree), date range and title."""
    _require("events.read")
    statuses = [s.strip().lower() for value in request.args.getlist("status") for s in value.split(",") if s.strip()]
    for status in statuses:
        if status not in EVENT_STATUSES:
            raise ApiError(422, f"Unknown status '{status}'. Use one of: {', '.join(EVENT_STATUSES)}.",
                           {"field": "status", "allowed": list(EVENT_STATUSES)})
    unit_id = int_arg("unit_id", None, minimum=1, maximum=MAX_ID)
    start = parse_datetime(request.args.get("from"), "from")
    end = parse_datetime(request.args.get("to"), "to")
    q = text_arg("q", 200)
    page, per_page = _paging()

    stmt = event_service.visible_events(actor())
    if statuses:
        now = utcnow()
        stmt = stmt.where(or_(*[event_service.status_clause(s, now) for s in statuses]))
    if unit_id is not None:
        unit = db.session.get(Unit, unit_id)
        stmt = stmt.where(Event.unit_id.in_(subtree_unit_ids(unit) if unit is not None else []))
    if start is not None:
        stmt = stmt.where(Event.end_at > start)
    if end is not None:
        stmt = stmt.where(Event.start_at < end)
    if q:
        stmt = stmt.where(func.lower(Event.title).contains(q.lower(), autoescape=True))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    offset = (page - 1) * per_page
    items: list[Event] = []
    if offset < total:
        items = list(db.session.scalars(stmt.order_by(Event.start_at, Event.id).offset(offset).limit(per_page)))
    figures = event_service.counts_for(items)
    return jsonify(page_of([event_json(e, figures[e.id]) for e in items], page, per_page, total, "api.list_events",
                         status=",".join(statuses), unit_id=unit_id, q=q,
                         **{"from": request.args.get("from"), "to": request.args.get("to")}))


@bp.post("/events")
def create_event():
    """Create an event in a unit where the caller holds events.create (else 422 on unit_id)."""
    _require("events.create")
    event = event_service.create_event(actor(), _event_body())
    db.session.commit()
    response = jsonify(event_json(event))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_event", event_id=event.id)
    return response


@bp.get("/events/<pk:event_id>")
def get_event(event_id: int):
    return jsonify(event_json(_event(event_id)))


@bp.put("/events/<pk:event_id>")
def update_event(event_id: int):
    """Partial update; status draft / upcoming (publish) / cancelled."""
    event = event_service.update_event(actor(), _event(event_id), _event_body())
    db.session.commit()
    return jsonify(event_json(event))


@bp.delete("/events/<pk:event_id>")
def delete_event(event_id: int):
    """Delete an event nobody attended (409 otherwise: cancel it instead)."""
    event_service.delete_event(actor(), _event(event_id))
    db.session.commit()
    return "", 204


# --- registrations ----------------------------------------------------------------------


@bp.post("/events/<pk:event_id>/register")
def register_for_event(event_id: int):
    """Register yourself (no member_id, or your own) or, as staff, a member of your area."""
    event = _event(event_id)
    data = json_object() if request.get_data(cache=True) else {}
    reject_unknown(data, {"member_id", "notes"})
    check_types(data, {"member_id": "id", "notes": "string"}, nullable={"member_id", "notes"})
    me = actor()
    own = _own_member()
    wanted = data.get("member_id")
    if wanted is None or (own is not None and wanted == own.id):
        if own is None:
            raise ApiError(422, "Your account is not linked to a member, so you cannot register yourself.",
                           {"field": "member_id"})
        reg, created = event_service.register(me, event, own, source="self", notes=data.get("notes"))
    else:
        event_service.load_event(me, event_id, "events.update")  # 403 before saying anything of the member
        reg, created = event_service.register(me, event, _body_member(wanted), source="staff",
                                              notes=data.get("notes"))
    db.session.commit()
    response = jsonify(registration_json(reg))
    response.status_code = 201 if created else 200
    return response


@bp.delete("/events/<pk:event_id>/register/<pk:member_id>")
def cancel_registration(event_id: int, member_id: int):
    """Cancel a registration (yours, or as staff anyone's); the first waitlisted member moves up."""
    event = _event(event_id)
    me = actor()
    own = _own_member()
    if own is not None and own.id == member_id:
        member = own
    else:
        event_service.load_event(me, event_id, "events.update")
        member = load_for(me, Member, member_id, "members.read")
    reg = event_service.registration_for(event, member)
    if reg is None:
        raise ApiError(404, "This member is not registered for this event.")
    promoted = event_service.cancel_registration(me, reg)
    db.session.commit()
    data = registration_json(reg)
    data["promoted_member_ids"] = [r.member_id for r in promoted]
    return jsonify(data)


@bp.get("/events/<pk:event_id>/attendees")
def list_attendees(event_id: int):
    """The event's registrations (members within your members.read scope), with counts."""
    event = _event(event_id)
    _require("members.read", "members")
    if not has_console_access(actor()):
        raise ApiError(403, "Only staff may list attendees.", {"permission": "members.read"})
    status = text_arg("status", 20).lower() or None
    if status is not None and status not in REGISTRATION_STATUSES:
        raise ApiError(422, f"Unknown status '{status}'. Use one of: {', '.join(REGISTRATION_STATUSES)}.",
                       {"field": "status", "allowed": list(REGISTRATION_STATUSES)})
    page, per_page = _paging()
    stmt = event_service.attendee_query(event, actor(), status)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    offset = (page - 1) * per_page
    items: list[EventRegistration] = []
    if offset < total:
        items = list(db.session.scalars(
            stmt.options(selectinload(EventRegistration.member).selectinload(Member.unit))
            .order_by(Member.surname_key, Member.first_name, Member.id).offset(offset).limit(per_page)
        ))
    body = page_of([registration_json(r) for r in items], page, per_page, total, "api.list_attendees",
                 event_id=event.id, status=status)
    body["counts"] = event_service.counts(event)
    return jsonify(body)


@bp.put("/events/<pk:event_id>/attendance/<pk:member_id>")
def set_attendance(event_id: int, member_id: int):
    """Mark attendance by hand: attended, registered (undo) or no_show."""
    event = _event(event_id, "events.update")
    member = load_for(actor(), Member, member_id, "members.read")
    data = json_object()
    reject_unknown(data, {"status", "gate"})
    check_types(data, {"status": "string", "gate": "string"}, nullable={"gate"})
    if "status" not in data:
        raise ApiError(422, "Give the attendance status: attended, registered or no_show.", {"field": "status"})
    reg = event_service.set_attendance(actor(), event, member, data["status"], gate=data.get("gate"))
    db.session.commit()
    return jsonify(registration_json(reg))


@bp.get("/members/<pk:member_id>/events")
def member_events(member_id: int):
    """A member's registrations (yours, or a member in your scope), newest event first."""
    me = actor()
    own = _own_member()
    if own is None or own.id != member_id:
        load_for(me, Member, member_id, "members.read")
    page, per_page = _paging()
    stmt = (
        select(EventRegistration).join(Event, Event.id == EventRegistration.event_id)
        .where(EventRegistration.member_id == member_id)
    )
    clause = scope_filter(me, "events.read", Event)
    if clause is not None:
        stmt = stmt.where(clause)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    offset = (page - 1) * per_page
    regs: list[EventRegistration] = []
    if offset < total:
        regs = list(db.session.scalars(
            stmt.options(selectinload(EventRegistration.event))
            .order_by(Event.start_at.desc(), Event.id.desc()).offset(offset).limit(per_page)
        ))
    figures = event_service.counts_for([r.event for r in regs])
    items = [dict(registration_json(r, with_member=False), event=event_json(r.event, figures[r.event_id]))
             for r in regs]
    return jsonify(page_of(items, page, per_page, total, "api.member_events", member_id=member_id))


# --- check-in ---------------------------------------------------------------------------


def checkin_input() -> dict[str, Any]:
    """The check-in body, read by the parser the console's check-in shares (``services.checkin_input``)."""
    return parse_checkin(json_object())


@bp.post("/events/<pk:event_id>/checkin")
def checkin(event_id: int):
    """Check a member in at the door; 200 with the answer whatever was presented."""
    event = _event(event_id, "events.update")
    answer = event_service.check_in(actor(), event, **checkin_input())
    db.session.commit()
    return jsonify(answer)

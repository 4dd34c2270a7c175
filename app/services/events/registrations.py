"""Registrations: capacity, the waiting list, and who is coming.

Capacity counts registered and attended members (``HOLDING``). A full event
puts new registrations on the waiting list; a cancellation (or a larger
capacity) promotes the first waitlisted members, in registration order.
Changes to one event's registrations are serialised by locking the event's
row (``lock_row``), so the count cannot be raced past the capacity.
Members register (and cancel) themselves with events.register; staff anyone
of their area with events.update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from app.database import lock_row
from app.extensions import db
from app.models import Event, EventRegistration, Member, Unit
from app.models.base import utcnow
from app.security import authorize, permits, scope_filter
from app.services import audit
from app.services.errors import Forbidden, ServiceError
from app.services.events import notify
from app.services.events.visibility import BARRED_MEMBER_STATUSES, REFUSALS, member_in_event_area
from app.services.members import text_value

# Registrations holding a place (capacity counts these).
HOLDING = ("registered", "attended")


def holding_count(event: Event) -> int:
    """How many places are taken (registered and attended)."""
    return db.session.scalar(
        select(func.count()).select_from(EventRegistration)
        .where(EventRegistration.event_id == event.id, EventRegistration.status.in_(HOLDING))
    ) or 0


def has_room(event: Event) -> bool:
    """Is a place left? (Lock the event first when a place is about to be taken.)"""
    return event.capacity is None or holding_count(event) < event.capacity


def registration_for(event: Event, member: Member | int) -> EventRegistration | None:
    """The member's registration for the event, whatever its status, or None."""
    member_id = member if isinstance(member, int) else member.id
    return db.session.scalar(
        select(EventRegistration).where(EventRegistration.event_id == event.id,
                                        EventRegistration.member_id == member_id)
    )


def check_member(event: Event, member: Member, field: str = "member_id") -> None:
    """Refuse a member who may not take a place (deleted, outside the event's area, barred by status)."""
    if member.deleted_at is not None:
        raise ServiceError("This member has been deleted.", field=field)
    if not member_in_event_area(event, member):
        raise ServiceError(f"{member.full_name} is not a member of {event.unit.name} (or a unit below it), "
                           "so cannot attend this event.", field=field)
    if member.status in BARRED_MEMBER_STATUSES:
        raise ServiceError(f"{member.full_name} is {member.status} and cannot register for events.", field=field)


def register(actor, event: Event, member: Member, *, source: str = "staff", notes: str | None = None,
             now: datetime | None = None) -> tuple[EventRegistration, bool]:
    """Register a member; when the event is full they go on the waiting list.

    Returns ``(registration, created)``: registering someone already
    registered, waitlisted or attended changes nothing. A cancelled
    registration is renewed (at the end of the waiting list, if full).
    ``source`` "self" is a member registering themselves: drafts are closed
    to them and the registration deadline applies (staff may register late).
    Anyone else is registered by staff holding events.update on the event and
    reaching the member.
    """
    _authorize_registration(actor, event, member, source)
    now = now or utcnow()
    state = event.status_at(now)
    if state == "cancelled":
        raise ServiceError("This event has been cancelled.", status=409)
    if state == "completed":
        raise ServiceError("This event is over.", status=409)
    if source == "self":
        if state == "draft":
            raise ServiceError("This event is not open for registration yet.", status=409)
        if event.registration_deadline is not None and now > event.registration_deadline:
            raise ServiceError("Registration for this event has closed.", status=409)
    check_member(event, member)
    notes = text_value(notes, "notes", "Notes", 2000)
    lock_row(Event, event.id)
    reg = registration_for(event, member)
    if reg is not None and reg.status in ("registered", "waitlisted", "attended"):
        return reg, False
    status = "registered" if has_room(event) else "waitlisted"
    if reg is None:
        reg = EventRegistration(event_id=event.id, member_id=member.id, status=status, source=source,
                                registered_at=now, registered_by_id=getattr(actor, "id", None), notes=notes)
        db.session.add(reg)
    else:
        reg.status, reg.source, reg.registered_at, reg.cancelled_at = status, source, now, None
        reg.registered_by_id = getattr(actor, "id", None)
        if notes:
            reg.notes = notes
    db.session.flush()
    where = " (waiting list)" if status == "waitlisted" else ""
    audit.record(actor, "event.register", event, summary=f"Registered {member.full_name} for {event.title}{where}",
                 changes={"member_id": member.id, "status": status, "source": source})
    return reg, True


def _own_member(actor: Any) -> Member | None:
    member = getattr(actor, "member", None)
    return member if member is not None and member.deleted_at is None else None


def _authorize_registration(actor: Any, event: Event, member: Member, source: str) -> None:
    """Members register (and cancel) themselves; staff anyone they reach, with events.update."""
    if actor is None:
        return
    if source == "self":
        if _own_member(actor) is not member:
            raise Forbidden("You may only register yourself.")
        authorize(actor, "events.register", event, message=REFUSALS["events.register"])
        return
    authorize(actor, "events.update", event, message="You may only register yourself for this event.")
    staff_reaches_member(actor, member)


def staff_reaches_member(actor: Any, member: Member, field: str = "member_id") -> None:
    """Refuse a member outside the staff actor's members.read scope (422, as if unknown)."""
    if actor is not None and not permits(actor, "members.read", member):
        raise ServiceError("No such member in your area.", field=field, status=422)


def cancel_registration(actor, reg: EventRegistration, now: datetime | None = None) -> list[EventRegistration]:
    """Cancel a registration; a freed place goes to the first on the waiting list (returned).

    A member cancels their own; staff any they reach, with events.update.
    """
    own = actor is not None and _own_member(actor) is not None and _own_member(actor).id == reg.member_id
    _authorize_registration(actor, reg.event, reg.member, "self" if own else "staff")
    if reg.status == "cancelled":
        return []
    if reg.status == "attended":
        raise ServiceError("This member has attended: undo the attendance first.", status=409)
    event = reg.event
    lock_row(Event, event.id)
    was_holding = reg.status in HOLDING
    old = reg.status
    reg.status, reg.cancelled_at = "cancelled", now or utcnow()
    db.session.flush()
    audit.record(actor, "event.unregister", event, summary=f"Cancelled {reg.member.full_name}'s registration "
                 f"for {event.title}", changes={"member_id": reg.member_id, "status": {"before": old,
                                                                                         "after": "cancelled"}})
    return promote_waitlist(actor, event) if was_holding else []


def promote_waitlist(actor, event: Event) -> list[EventRegistration]:
    """Give free places to the waiting list, first come first served; returns the promoted."""
    lock_row(Event, event.id)
    waiting = db.session.scalars(
        select(EventRegistration)
        .where(EventRegistration.event_id == event.id, EventRegistration.status == "waitlisted")
        .order_by(EventRegistration.registered_at, EventRegistration.id)
    ).all()
    if not waiting:
        return []
    free = len(waiting) if event.capacity is None else max(event.capacity - holding_count(event), 0)
    promoted = list(waiting[:free])
    for reg in promoted:
        reg.status = "registered"
    db.session.flush()
    for reg in promoted:
        audit.record(actor, "event.promote", event,
                     summary=f"{reg.member.full_name} moved from the waiting list to registered for {event.title}",
                     changes={"member_id": reg.member_id})
        notify.promoted(reg, actor)  # whoever freed the place, the member hears they have it
    return promoted


# --- figures and lists ------------------------------------------------------------------


def counts(event: Event) -> dict[str, Any]:
    """Registrations per status, the capacity, places left and door entries."""
    rows = dict(db.session.execute(
        select(EventRegistration.status, func.count()).where(EventRegistration.event_id == event.id)
        .group_by(EventRegistration.status)
    ).all())
    result: dict[str, Any] = {s: int(rows.get(s, 0)) for s in
                              ("registered", "waitlisted", "attended", "cancelled", "no_show")}
    result["capacity"] = event.capacity
    holding = result["registered"] + result["attended"]
    result["places_left"] = None if event.capacity is None else max(event.capacity - holding, 0)
    return result


def counts_for(events: list[Event]) -> dict[int, dict[str, int]]:
    """Registered / waitlisted / attended per event, for lists (one GROUP BY)."""
    ids = [e.id for e in events]
    out = {i: {"registered": 0, "waitlisted": 0, "attended": 0} for i in ids}
    if not ids:
        return out
    rows = db.session.execute(
        select(EventRegistration.event_id, EventRegistration.status, func.count())
        .where(EventRegistration.event_id.in_(ids),
               EventRegistration.status.in_(("registered", "waitlisted", "attended")))
        .group_by(EventRegistration.event_id, EventRegistration.status)
    ).all()
    for event_id, status, n in rows:
        out[event_id][status] = int(n)
    return out


def attendee_query(event: Event, user: Any = None, status: str | None = None):
    """Registrations of an event with their members, confined to the user's members.read scope."""
    stmt = (
        select(EventRegistration)
        .join(Member, Member.id == EventRegistration.member_id)
        .where(EventRegistration.event_id == event.id, Member.deleted_at.is_(None))
    )
    if status:
        stmt = stmt.where(EventRegistration.status == status)
    if user is not None:
        clause = scope_filter(user, "members.read", Member)
        if clause is not None:
            stmt = stmt.where(clause)
    return stmt


def find_members(user: Any, event: Event, q: str, limit: int = 10) -> list[tuple[Member, EventRegistration | None]]:
    """Members who may attend the event, matching a name, phone or membership number, within the user's scope."""
    from app.services.member_search import search_clause

    try:
        clause = search_clause(q, live_only=True)
    except ValueError:
        return []
    if clause is None:
        return []
    area = select(Unit.id).where(Unit.path.startswith(event.unit.path))
    stmt = select(Member).where(clause, Member.deleted_at.is_(None), Member.unit_id.in_(area))
    if user is not None:
        scope = scope_filter(user, "members.read", Member)
        if scope is not None:
            stmt = stmt.where(scope)
    found = list(db.session.scalars(stmt.order_by(Member.surname_key, Member.first_name, Member.id).limit(limit)))
    regs = {}
    if found:
        regs = {r.member_id: r for r in db.session.scalars(
            select(EventRegistration).where(EventRegistration.event_id == event.id,
                                            EventRegistration.member_id.in_([m.id for m in found])))}
    return [(m, regs.get(m.id)) for m in found]

"""Attendance recorded by hand, and no-shows after the event.

Marking someone attended obeys the door's rules (area, standing, walk-ins,
capacity, the check-in rule's slots), so a full event cannot end with more
attended than places; staff may still record attendance after the event from
a paper list. Once an event is over, registered members who never came become
``no_show`` (the console for one event, a scheduled job for all).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, and_, cast, delete, func, literal, select, update

from app.database import insert_ignore
from app.extensions import db
from app.models import AuditEntry, Event, EventCheckin, EventRegistration, Member
from app.models.base import utcnow
from app.security import authorize
from app.services import audit
from app.services.errors import ServiceError
from app.services.events.checkin import REASONS, checkin_window, clean_gate, place_refusal, slot_for
from app.services.events.registrations import HOLDING, check_member, registration_for, staff_reaches_member
from app.services.events.visibility import REFUSALS

ATTENDANCE_STATUSES = ("attended", "registered", "no_show")


def set_attendance(actor, event: Event, member: Member, status: str, *, gate: str | None = None,
                   now: datetime | None = None) -> EventRegistration:
    """Mark attendance by hand: attended (registering them if needed), back to registered, or no-show.

    Marking someone attended obeys the door's rules (area, standing, and
    ``place_refusal``: walk-ins, capacity; the check-in rule's slots), so a full
    event cannot end with more attended than places. Staff may still record
    attendance after the event is over, from a paper list.
    """
    authorize(actor, "events.update", event, message=REFUSALS["events.update"])
    staff_reaches_member(actor, member)
    status = (status or "").strip().lower()
    if status not in ATTENDANCE_STATUSES:
        raise ServiceError(f"Attendance must be one of: {', '.join(ATTENDANCE_STATUSES)}.", field="status")
    now = now or utcnow()
    state = event.status_at(now)
    if state in ("draft", "cancelled"):
        raise ServiceError(f"This event is {state}: there is no attendance to record.", status=409)
    if status == "attended" and state != "completed" and (closed := checkin_window(event, now)) is not None:
        raise ServiceError(closed[1], status=409)
    reg = registration_for(event, member)
    if reg is None and status != "attended":
        raise ServiceError(f"{member.full_name} is not registered for this event.", status=404)
    if status == "attended" and (reg is None or reg.status not in HOLDING):
        check_member(event, member)
        refusal = place_refusal(event, member, reg)
        if refusal is not None:
            raise ServiceError(refusal.message or REASONS[refusal.reason], status=409)
        if reg is None:
            reg = EventRegistration(event_id=event.id, member_id=member.id, status="registered", source="staff",
                                    registered_at=now, registered_by_id=getattr(actor, "id", None))
            db.session.add(reg)
            db.session.flush()
    old = reg.status
    if status == "attended":
        if old != "attended":
            reg.status = "attended"
            reg.checked_in_at = reg.checked_in_at or now
            reg.checked_in_by_id = getattr(actor, "id", None)
            reg.checkin_gate = clean_gate(gate) or "manual"
        insert_ignore(EventCheckin, {
            "event_id": event.id, "member_id": member.id, "slot": slot_for(event, now), "at": now,
            "gate": reg.checkin_gate, "by_id": getattr(actor, "id", None), "method": "manual",
        })
    else:
        if old == "cancelled":
            raise ServiceError("This registration was cancelled; register the member again instead.", status=409)
        reg.status = status
        reg.checked_in_at = reg.checked_in_by_id = reg.checkin_gate = None
        db.session.execute(delete(EventCheckin).where(EventCheckin.event_id == event.id,
                                                      EventCheckin.member_id == member.id))
    db.session.flush()
    if old != reg.status:
        audit.record(actor, "event.attendance", event, summary=f"{member.full_name}: {old} -> {reg.status} "
                     f"at {event.title}", changes={"member_id": member.id, "status": {"before": old,
                                                                                      "after": reg.status}})
    return reg


NO_SHOW_RULE = "registration.no_show"  # the status rule's internal name, in the audit entries' changes


def mark_no_shows(actor, event: Event | None = None, now: datetime | None = None, *,
                  ended_before: datetime | None = None) -> int:
    """Registered members who did not come become no_show, once the event is over.

    With an event: that event (refused before its end). Without: every
    published event that ended before ``ended_before`` (default ``now``; the
    scheduled sweep gives a margin, ``app.services.lifecycle.no_show_sweep``).
    Returns how many registrations changed; running it again changes nothing.

    The one place of the rule, set-based whatever the number of events: one
    INSERT ... SELECT writes an audit entry per event (with its count), one
    UPDATE marks the registrations. "Did not come" is a registration still
    ``registered`` with no check-in recorded.
    """
    now = now or utcnow()
    events = Event.__table__
    if event is not None:
        authorize(actor, "events.update", event, message=REFUSALS["events.update"])
        state = event.status_at(now)
        if state != "completed":
            raise ServiceError("No-shows can be marked once the event is over.", status=409)
        ended = events.c.id == event.id
    else:
        ended = and_(events.c.status == "upcoming", events.c.end_at <= (ended_before or now))
    db.session.flush()
    regs, checkins = EventRegistration.__table__, EventCheckin.__table__
    due = and_(regs.c.status == "registered",
               regs.c.event_id.in_(select(events.c.id).where(ended)),
               ~select(checkins.c.id).where(checkins.c.event_id == regs.c.event_id,
                                            checkins.c.member_id == regs.c.member_id).exists())
    audit_table = AuditEntry.__table__
    count = func.count(regs.c.id)
    changes = literal('{"no_show": ') + cast(count, String) + literal(f', "rule": "{NO_SHOW_RULE}"}}')
    if db.session.get_bind().dialect.name == "postgresql":
        changes = cast(changes, JSON)  # SQLite keeps JSON as text; a CAST there would make it a number
    db.session.execute(audit_table.insert().from_select(
        ["at", "actor_id", "action", "object_type", "object_id", "unit_id", "summary", "changes"],
        select(literal(now, type_=audit_table.c.at.type),
               literal(getattr(actor, "id", None), type_=audit_table.c.actor_id.type),
               literal("event.no_shows"), literal("Event"), cast(events.c.id, String), events.c.unit_id,
               cast(count, String) + literal(" no-show(s) marked for ") + events.c.title, changes)
        .select_from(regs.join(events, events.c.id == regs.c.event_id)).where(due)
        .group_by(events.c.id, events.c.unit_id, events.c.title)))
    total = db.session.execute(
        update(regs).where(due).values(status="no_show", updated_at=now)
        .execution_options(synchronize_session=False)).rowcount or 0
    if total:
        for obj in list(db.session.identity_map.values()):  # loaded registrations are stale now
            if isinstance(obj, EventRegistration):
                db.session.expire(obj)
    return total

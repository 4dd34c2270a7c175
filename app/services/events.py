"""Events: scheduling, registrations with capacity and a waiting list, attendance and door check-in.

Rules kept here (views, the API and jobs only call these functions):

- An event belongs to a unit. Staff see and manage events through the scoping
  helper (``events.read`` / ``.create`` / ``.update`` / ``.delete``); members
  using the portal or the API see the published events of their own unit and
  the units above it (the events they may attend).
- Only members of the event's unit subtree may register or be checked in.
- Capacity counts registered and attended members. A full event puts new
  registrations on the waiting list; a cancellation (or a larger capacity)
  promotes the first waitlisted members, in registration order. Changes to
  one event's registrations are serialised by locking the event's row, so
  the count cannot be raced past the capacity.
- After an event, registered members who never came become ``no_show``
  (``mark_no_shows``; the console calls it for one event, a scheduled job for
  all finished events).
- ``check_in`` admits a member at the door, from a card credential or a
  member id. Its answer is ``admitted``, ``already_checked_in`` or
  ``rejected`` with a reason; it never raises on bad input. One attendance per
  member and slot is guaranteed by the unique key of ``event_checkins``
  (INSERT ... ON CONFLICT DO NOTHING), so simultaneous scans at several gates
  count once, and a request carrying a nonce that was seen before gets the
  stored answer instead of a second record.

Services flush; the caller commits.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from PIL import Image, UnidentifiedImageError
from sqlalchemy import and_, bindparam, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.elements import ColumnElement
from werkzeug.utils import secure_filename

from app.extensions import db
from app.models import (
    CHECKIN_RULES, EVENT_TYPES, Event, EventAttachment, EventCheckin, EventCheckinNonce, EventRegistration,
    Member, MemberPhoto, Unit,
)
from app.models.base import utcnow
from app.models.events import ATTACHMENT_KINDS, STORED_EVENT_STATUSES
from app.security import authorize, permits, scope_filter, scoped, unit_choice
from app.services.inputs import parse_id
from app.services import audit, zipguard
from app.services.members import text_value
from app.services.validation import FieldErrors
from app.services.errors import Forbidden, NotFound, ServiceError

EVENT_FIELDS = (
    "title", "description", "event_type", "start_at", "end_at", "location", "venue", "unit_id", "capacity",
    "registration_required", "registration_deadline", "status", "checkin_rule", "walk_ins_allowed",
)
MAX_DURATION = timedelta(days=31)
MAX_CAPACITY = 1_000_000
# Registrations holding a place (capacity counts these).
HOLDING = ("registered", "attended")
# Members in these states are refused at registration and at the door.
BARRED_MEMBER_STATUSES = ("suspended", "expelled", "resigned", "deceased")
# "multiple entries" events: scans of one member within this window are one entry.
MULTIPLE_ENTRY_WINDOW_SECONDS = 60
NONCE_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_GATE_CHARS = 60
MAX_ATTACHMENTS = 20


# --- time -------------------------------------------------------------------------------


def org_timezone() -> ZoneInfo | timezone:
    """The organisation's time zone (MUSTER_TIMEZONE); UTC when unset or unknown."""
    name = current_app.config.get("TIMEZONE") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def local(value: datetime | None) -> datetime | None:
    """A stored (UTC) time in the organisation's time zone, for display and day boundaries."""
    return value.astimezone(org_timezone()) if value is not None else None


def _as_datetime(value: Any, field: str, label: str) -> datetime | None:
    """A timezone-aware datetime from a datetime (naive = UTC) or an ISO 8601 string."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ServiceError(f"{label} must be a date and time like 2027-01-31T18:00:00Z.", field=field) from None
    else:
        raise ServiceError(f"{label} must be a date and time.", field=field)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        parsed = parsed.astimezone(timezone.utc)
    except OverflowError:
        raise ServiceError(f"{label} is out of range.", field=field) from None
    if not 2000 <= parsed.year <= 2200:
        raise ServiceError(f"{label} must be between the years 2000 and 2200.", field=field)
    return parsed


# --- visibility -------------------------------------------------------------------------


def visible_events(user: Any, permission: str = "events.read"):
    """SELECT of the events ``user`` may see: staff by unit scope, members those open to them."""
    return scoped(select(Event), user, permission, Event)


_LOAD_EVENT = select(Event).options(joinedload(Event.unit)).where(Event.id == bindparam("event_id"))


def load_event(actor: Any, event_id: Any, permission: str = "events.read") -> Event:
    """An event with its unit (one query) that ``actor`` may use ``permission`` on.

    Missing or out of reach: ``NotFound``; visible without the permission: ``Forbidden``.
    """
    pk = parse_id(event_id)
    event = db.session.scalar(_LOAD_EVENT, {"event_id": pk}) if pk is not None else None
    if event is None:
        raise NotFound()
    authorize(actor, permission, event, message=_REFUSALS.get(permission))
    return event


_REFUSALS = {
    "events.update": "You may not change this event.",
    "events.delete": "You may not delete this event.",
    "events.register": "You may not register for this event.",
}


def member_in_event_area(event: Event, member: Member) -> bool:
    """Members of the event's unit and the units below it may attend."""
    return member.unit.path.startswith(event.unit.path)


# --- events -----------------------------------------------------------------------------


def _bool(value: Any, field: str, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, "", 0, "0", "false", "no", "off"):
        return False
    if value in (1, "1", "true", "yes", "on", "y"):
        return True
    raise ServiceError(f"{label} must be true or false.", field=field)


def clean_event(data: dict[str, Any], *, partial: bool = False, current: Event | None = None) -> dict[str, Any]:
    """Validate event fields; with ``partial`` only the keys given (checked against ``current``).

    Every field is checked before anything is refused (one ``ValidationErrors``
    names them all); rules across fields run on the fields that passed.
    """
    errors = FieldErrors()
    for key in sorted(set(data) - set(EVENT_FIELDS)):
        errors.add(key, f"Unknown field '{key}'.")
    out: dict[str, Any] = {}

    def wanted(key: str) -> bool:
        return key in data or not partial

    def text(key: str, label: str, max_len: int, required: bool = False) -> None:
        if wanted(key):
            with errors.check():
                out[key] = text_value(data.get(key), key, label, max_len, required=required)

    text("title", "Title", 200, required=True)
    text("description", "Description", 10_000)
    if wanted("event_type"):
        kind = str(data.get("event_type") or "meeting").strip().lower()
        if kind not in EVENT_TYPES:
            errors.add("event_type", f"The type must be one of: {', '.join(EVENT_TYPES)}.")
        out["event_type"] = kind
    for key, label in (("start_at", "Start"), ("end_at", "End")):
        if wanted(key):
            with errors.check():
                value = _as_datetime(data.get(key), key, label)
                if value is None:
                    raise ServiceError(f"{label} is required.", field=key)
                out[key] = value
    if wanted("registration_deadline"):
        with errors.check():
            out["registration_deadline"] = _as_datetime(
                data.get("registration_deadline"), "registration_deadline", "Registration deadline"
            )
    text("location", "Location", 200)
    text("venue", "Venue", 200)
    if wanted("unit_id"):
        with errors.check():
            out["unit_id"] = _event_unit_id(data.get("unit_id"))
    if wanted("capacity"):
        with errors.check():
            out["capacity"] = _capacity(data.get("capacity"))
    for key, label, default in (("registration_required", "Registration required", True),
                                ("walk_ins_allowed", "Walk-ins allowed", False)):
        if wanted(key):
            with errors.check():
                out[key] = _bool(data.get(key, default if not partial else None), key, label)
    if wanted("checkin_rule"):
        rule = str(data.get("checkin_rule") or "once").strip().lower()
        if rule not in CHECKIN_RULES:
            errors.add("checkin_rule", f"The check-in rule must be one of: {', '.join(CHECKIN_RULES)}.")
        out["checkin_rule"] = rule
    if wanted("status"):
        with errors.check():
            out["status"] = _event_status(data.get("status"), current)

    # Rules across fields, on the values the event will have (fields already at fault are skipped).
    def final(key: str) -> Any:
        if key in out:
            return out[key]
        return getattr(current, key) if current is not None else None

    start, end, deadline = final("start_at"), final("end_at"), final("registration_deadline")
    if start is not None and end is not None and not errors.has("start_at", "end_at"):
        if end <= start:
            errors.add("end_at", "The end must be after the start.")
        elif end - start > MAX_DURATION:
            errors.add("end_at", "An event lasts 31 days at most.")
    if (deadline is not None and start is not None and deadline > start
            and not errors.has("start_at", "registration_deadline")):
        errors.add("registration_deadline", "The registration deadline must be before the start.")
    errors.raise_if_any()
    return out


def _event_unit_id(unit_id: Any) -> int:
    if isinstance(unit_id, Unit):
        return unit_id.id
    if unit_id in (None, ""):
        raise ServiceError("Choose the unit the event belongs to.", field="unit_id")
    try:
        return int(unit_id)
    except (TypeError, ValueError):
        raise ServiceError("The unit must be given by its id.", field="unit_id") from None


def _capacity(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        capacity = int(value)
    except (TypeError, ValueError):
        raise ServiceError("Capacity must be a whole number.", field="capacity") from None
    if isinstance(value, bool) or not 1 <= capacity <= MAX_CAPACITY:
        raise ServiceError(f"Capacity must be between 1 and {MAX_CAPACITY:,} (or empty for no limit).",
                           field="capacity")
    return capacity


def _event_status(value: Any, current: Event | None) -> str:
    status = str(value or "draft").strip().lower()
    if status in STORED_EVENT_STATUSES:
        return status
    if status in ("ongoing", "completed") and current is not None and status == current.current_status:
        return current.status  # sending back what was read changes nothing
    if status in ("ongoing", "completed"):
        raise ServiceError("Ongoing and completed follow the dates: set 'upcoming' to publish the event.",
                           field="status")
    raise ServiceError("The status must be draft, upcoming (published) or cancelled.", field="status")


def snapshot(event: Event) -> dict[str, Any]:
    return {key: getattr(event, key) for key in EVENT_FIELDS}


def _unit_for(actor, unit_id: int, permission: str) -> Unit:
    return unit_choice(actor, unit_id, permission, refusal="You may not hold events there.")


def create_event(actor, data: dict[str, Any]) -> Event:
    """A new event in a unit where the actor holds events.create (a draft unless a status is given)."""
    values = clean_event(data)
    unit = _unit_for(actor, values["unit_id"], "events.create")
    event = Event(**values, created_by_id=getattr(actor, "id", None))
    db.session.add(event)
    db.session.flush()
    audit.record(actor, "event.create", event, summary=f"Created event {event.title} in {unit.name}",
                 changes=audit.diff({}, snapshot(event)))
    return event


def update_event(actor, event: Event, data: dict[str, Any]) -> Event:
    """Change an event (partial); moving it needs events.update over the new unit too."""
    authorize(actor, "events.update", event, message=_REFUSALS["events.update"])
    values = clean_event(data, partial=True, current=event)
    if "unit_id" in values and values["unit_id"] != event.unit_id:
        _unit_for(actor, values["unit_id"], "events.update")
    before = snapshot(event)
    for key, value in values.items():
        setattr(event, key, value)
    db.session.flush()
    changes = audit.diff(before, snapshot(event))
    if changes:
        audit.record(actor, "event.update", event, summary=f"Updated event {event.title}", changes=changes)
    if "capacity" in changes:
        promote_waitlist(actor, event)
    return event


def set_event_status(actor, event: Event, status: str) -> Event:
    """Publish (upcoming), return to draft, or cancel an event."""
    return update_event(actor, event, {"status": status})


def delete_event(actor, event: Event) -> None:
    """Delete an event nobody attended; one with attendance is cancelled instead (kept on record)."""
    authorize(actor, "events.delete", event, message=_REFUSALS["events.delete"])
    attended = db.session.scalar(
        select(func.count()).select_from(EventRegistration)
        .where(EventRegistration.event_id == event.id, EventRegistration.status == "attended")
    )
    if attended:
        raise ServiceError("This event has attendance records: cancel it instead of deleting it.", status=409)
    audit.record(actor, "event.delete", event, summary=f"Deleted event {event.title}")
    db.session.execute(delete(EventRegistration).where(EventRegistration.event_id == event.id))
    db.session.execute(delete(EventCheckin).where(EventCheckin.event_id == event.id))
    db.session.execute(delete(EventCheckinNonce).where(EventCheckinNonce.event_id == event.id))
    db.session.delete(event)
    db.session.flush()


# --- registrations ----------------------------------------------------------------------


def _lock_event(event: Event) -> None:
    """Serialise changes to one event's registrations (capacity and waiting list).

    PostgreSQL: a row lock. SQLite: a write at the start of the transaction
    takes the database's write lock, so the count read next cannot go stale.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(Event.id).where(Event.id == event.id).with_for_update())
    else:
        # Setting updated_at to itself also keeps its onupdate default from firing.
        db.session.execute(update(Event).where(Event.id == event.id).values(updated_at=Event.updated_at)
                           .execution_options(synchronize_session=False))


def holding_count(event: Event) -> int:
    return db.session.scalar(
        select(func.count()).select_from(EventRegistration)
        .where(EventRegistration.event_id == event.id, EventRegistration.status.in_(HOLDING))
    ) or 0


def has_room(event: Event) -> bool:
    return event.capacity is None or holding_count(event) < event.capacity


def registration_for(event: Event, member: Member | int) -> EventRegistration | None:
    member_id = member if isinstance(member, int) else member.id
    return db.session.scalar(
        select(EventRegistration).where(EventRegistration.event_id == event.id,
                                        EventRegistration.member_id == member_id)
    )


def _check_member(event: Event, member: Member, field: str = "member_id") -> None:
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
    _check_member(event, member)
    notes = text_value(notes, "notes", "Notes", 2000)
    _lock_event(event)
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
        authorize(actor, "events.register", event, message=_REFUSALS["events.register"])
        return
    authorize(actor, "events.update", event, message="You may only register yourself for this event.")
    _staff_reaches_member(actor, member)


def _staff_reaches_member(actor: Any, member: Member, field: str = "member_id") -> None:
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
    _lock_event(event)
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
    _lock_event(event)
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
    return promoted


ATTENDANCE_STATUSES = ("attended", "registered", "no_show")


def set_attendance(actor, event: Event, member: Member, status: str, *, gate: str | None = None,
                   now: datetime | None = None) -> EventRegistration:
    """Mark attendance by hand: attended (registering them if needed), back to registered, or no-show.

    Marking someone attended obeys the door's rules (area, standing, and
    ``_place_refusal``: walk-ins, capacity; the check-in rule's slots), so a full
    event cannot end with more attended than places. Staff may still record
    attendance after the event is over, from a paper list.
    """
    authorize(actor, "events.update", event, message=_REFUSALS["events.update"])
    _staff_reaches_member(actor, member)
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
        _check_member(event, member)
        refusal = _place_refusal(event, member, reg)
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
            reg.checkin_gate = _clean_gate(gate) or "manual"
        _insert_ignore(EventCheckin, {
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


def mark_no_shows(actor, event: Event | None = None, now: datetime | None = None) -> int:
    """Registered members who did not come become no_show, once the event is over.

    With an event: that event (refused before its end). Without: every
    published event that has ended (the scheduled job). Returns how many
    registrations changed; running it again changes nothing.
    """
    now = now or utcnow()
    if event is not None:
        authorize(actor, "events.update", event, message=_REFUSALS["events.update"])
        state = event.status_at(now)
        if state != "completed":
            raise ServiceError("No-shows can be marked once the event is over.", status=409)
        events = [event]
    else:
        events = list(db.session.scalars(
            select(Event).where(Event.status == "upcoming", Event.end_at <= now,
                                select(EventRegistration.id).where(EventRegistration.event_id == Event.id,
                                                                   EventRegistration.status == "registered")
                                .exists())
        ))
    total = 0
    for ev in events:
        result = db.session.execute(
            update(EventRegistration)
            .where(EventRegistration.event_id == ev.id, EventRegistration.status == "registered")
            .values(status="no_show", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        count = result.rowcount or 0
        if count:
            audit.record(actor, "event.no_shows", ev, summary=f"{count} no-show(s) marked for {ev.title}",
                         changes={"no_show": count})
        total += count
    db.session.expire_all()
    return total


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


# --- check-in ---------------------------------------------------------------------------

REASONS = {
    "event_cancelled": "This event has been cancelled.",
    "event_finished": "This event is over.",
    "event_not_open": "Check-in for this event is not open.",
    "invalid_token": "This is not a valid membership card.",
    "unknown_card": "This card is not known here.",
    "card_expired": "This card has expired.",
    "card_suspended": "This card is suspended.",
    "card_revoked": "This card has been revoked.",
    "unknown_member": "No such member.",
    "not_in_scope": "This member is not part of this event's area.",
    "member_not_in_good_standing": "This membership is not in good standing.",
    "not_registered": "Not registered for this event, and walk-ins are not admitted.",
    "waitlisted": "On the waiting list: not admitted while the event is full.",
    "event_full": "The event is full.",
    "nonce_reused": "This request id was already used for another check-in.",
}


@dataclass
class _Outcome:
    result: str
    reason: str | None = None
    message: str = ""
    member: Member | None = None
    first_at: datetime | None = None
    first_gate: str | None = None
    at: datetime | None = None
    walk_in: bool = False
    registration_status: str | None = None


def slot_for(event: Event, now: datetime) -> str:
    """The check-in slot: one per event, per local day, or per minute (multiple entries)."""
    if event.checkin_rule == "once_per_day":
        return local(now).date().isoformat()
    if event.checkin_rule == "multiple":
        return f"m{int(now.timestamp()) // MULTIPLE_ENTRY_WINDOW_SECONDS}"
    return "once"


def checkin_window(event: Event, now: datetime) -> tuple[str, str] | None:
    """Why the door is closed (reason, message), or None when check-in is open."""
    state = event.status_at(now)
    if state == "cancelled":
        return "event_cancelled", REASONS["event_cancelled"]
    if state == "completed":
        return "event_finished", REASONS["event_finished"]
    if state == "draft":
        return "event_not_open", "This event is still a draft: check-in is not open."
    opens = event.start_at - timedelta(minutes=int(current_app.config.get("EVENT_CHECKIN_OPENS_MINUTES", 120)))
    if now < opens:
        when = local(opens).strftime("%Y-%m-%d %H:%M")
        return "event_not_open", f"Check-in opens at {when}."
    return None


def _clean_gate(gate: Any) -> str | None:
    text = str(gate or "").strip()
    return text[:MAX_GATE_CHARS] or None


def _request_key(token: str | None, member_id: int | None) -> str:
    presented = f"t:{token}" if token is not None else f"m:{member_id}"
    return hashlib.sha256(presented.encode("utf-8", "replace")).hexdigest()


_INSERT_IGNORE: dict[tuple[str, str], Any] = {}


def _insert_ignore(model, values: dict[str, Any], returning=None) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id; the new id, or None when the row already existed.

    On PostgreSQL a conflicting row still being inserted by another
    transaction makes this wait for that transaction to finish, so the loser
    of a race sees the winner's committed row right after.
    """
    table = model.__table__
    dialect = db.session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - other databases: a savepoint instead
        try:
            with db.session.begin_nested():
                return db.session.scalar(table.insert().values(**values).returning(table.c.id))
        except IntegrityError:
            return None
    stmt = _INSERT_IGNORE.get((dialect, table.name))
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = _INSERT_IGNORE[(dialect, table.name)] = (
            insert(table).on_conflict_do_nothing().returning(table.c.id)
        )
    # Core execution of a statement built once: on this hot path the ORM's bulk-insert
    # machinery and statement construction cost more than the round trip itself.
    db.session.flush()
    return db.session.connection().execute(stmt, values).scalar()


def member_summary(member: Member) -> dict[str, Any]:
    """What the gate needs to recognise a person: no contact details."""
    return {
        "id": member.id,
        "membership_number": member.membership_number,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "full_name": member.full_name,
        "status": member.status,
        "unit": member.unit.name if member.unit is not None else None,
    }


def _answer(event: Event, outcome: _Outcome, gate: str | None) -> dict[str, Any]:
    def iso(value):
        return value.isoformat() if value is not None else None

    return {
        "result": outcome.result,
        "reason": outcome.reason,
        "message": outcome.message or (REASONS.get(outcome.reason, "") if outcome.reason else ""),
        "member": member_summary(outcome.member) if outcome.member is not None else None,
        "first_checked_in_at": iso(outcome.first_at),
        "first_gate": outcome.first_gate,
        "checked_in_at": iso(outcome.at),
        "gate": gate,
        "walk_in": outcome.walk_in,
        "registration_status": outcome.registration_status,
        "event_id": event.id,
    }


def check_in(actor, event: Event, *, token: str | None = None, member_id: int | None = None,
             gate: str | None = None, nonce: str | None = None, method: str | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """Admit a member at the door; the answer as JSON-ready data (never raises on bad input).

    Give either ``token`` (what the card's QR holds: the credential, or a URL
    ending in it) or ``member_id`` (found by name or number at the gate).
    With a ``nonce`` the request is idempotent: the same nonce from the same
    user for the same card or member returns the first answer without
    recording anything again; a nonce reused for something else is refused.
    Door staff need events.update on the event.
    """
    authorize(actor, "events.update", event, message="You may not check people in at this event.")
    now = now or utcnow()
    gate = _clean_gate(gate)
    key = _request_key(token, member_id)
    nonce_row_id = None
    if nonce is not None:
        nonce_row_id = _insert_ignore(EventCheckinNonce, {
            "event_id": event.id, "nonce": nonce, "user_id": getattr(actor, "id", None),
            "request_key": key, "response": None, "created_at": now,
        })
        if nonce_row_id is None:
            stored = db.session.scalar(select(EventCheckinNonce).where(EventCheckinNonce.event_id == event.id,
                                                                       EventCheckinNonce.nonce == nonce))
            if (stored is not None and stored.response is not None and stored.request_key == key
                    and stored.user_id == getattr(actor, "id", None)):
                return dict(stored.response, replayed=True)
            return _answer(event, _Outcome("rejected", "nonce_reused"), gate)
    outcome = _decide(actor, event, token, member_id, gate, method, now)
    answer = _answer(event, outcome, gate)
    if nonce_row_id is not None:
        db.session.connection().execute(_STORE_ANSWER, {"row_id": nonce_row_id, "answer": answer})
    return answer


_MEMBER_WITH_UNIT = select(Member).options(joinedload(Member.unit)).where(Member.id == bindparam("member_id"))


def _member_with_unit(member_id: int) -> Member | None:
    return db.session.scalar(_MEMBER_WITH_UNIT, {"member_id": member_id})


def _member_from_token(event: Event, token: str) -> tuple[Member | None, _Outcome | None]:
    from app.services import cards

    token = cards.scanned_token(token)  # the card service reads scans, here as on the verify page
    if not token:
        return None, _Outcome("rejected", "invalid_token")
    try:
        verification = cards.verify_token(token)
    except Exception:  # the contract says it never raises; a bug there must not stop the door
        current_app.logger.exception("verify_token raised")
        return None, _Outcome("rejected", "invalid_token")
    status = verification.status
    # The verdict loads its member lazily by id; fetching the member with its unit first (one
    # query) lets that load come from the session, and the area check needs the unit anyway.
    prefetched = None
    if getattr(verification, "_member_id", None) is not None:
        prefetched = _member_with_unit(verification._member_id)  # held: the session maps it weakly
    member = verification.member
    del prefetched
    if status == "valid" and member is not None:
        return member, None
    if status in ("expired", "suspended", "revoked"):
        shown = member if member is not None and member.deleted_at is None and member_in_event_area(event, member) \
            else None
        message = verification.message or REASONS[f"card_{status}"]
        return None, _Outcome("rejected", f"card_{status}", message, member=shown)
    if status == "unknown":
        return None, _Outcome("rejected", "unknown_card", verification.message or REASONS["unknown_card"])
    return None, _Outcome("rejected", "invalid_token", verification.message or REASONS["invalid_token"])


def _member_refusal(event: Event, member: Member) -> _Outcome | None:
    """Why this member may not come in at all (area, standing), or None."""
    if not member_in_event_area(event, member):
        return _Outcome("rejected", "not_in_scope")
    if member.status in BARRED_MEMBER_STATUSES:
        return _Outcome("rejected", "member_not_in_good_standing",
                        f"This member is {member.status}: not admitted.", member=member)
    return None


def _place_refusal(event: Event, member: Member, reg: EventRegistration | None) -> _Outcome | None:
    """Why a member holding no place (unregistered, waitlisted, cancelled, no-show) may not take one.

    Walk-ins need an open door, and a place under the capacity; the event row
    is locked first so two gates cannot both take the last place.
    """
    status = reg.status if reg is not None else None
    if not (event.walk_ins_allowed or not event.registration_required):
        reason = "waitlisted" if status == "waitlisted" else "not_registered"
        return _Outcome("rejected", reason, member=member, registration_status=status)
    if event.capacity is not None:
        _lock_event(event)
        if not has_room(event):
            return _Outcome("rejected", "event_full", member=member, registration_status=status)
    return None


def _decide(actor, event: Event, token: str | None, member_id: int | None, gate: str | None,
            method: str | None, now: datetime) -> _Outcome:
    closed = checkin_window(event, now)
    if closed is not None:
        return _Outcome("rejected", closed[0], closed[1])
    if token is not None:
        member, refusal = _member_from_token(event, token)
        if refusal is not None:
            return refusal
        method = method or "card"
    else:
        member = _member_with_unit(member_id) if isinstance(member_id, int) and 0 < member_id <= 2**31 - 1 else None
        method = method or "lookup"
    if member is None or member.deleted_at is not None:
        return _Outcome("rejected", "unknown_member")
    refusal = _member_refusal(event, member)
    if refusal is not None:
        return refusal

    if event.checkin_rule != "multiple":
        admitted = _admit_registered(actor, event, member, gate, method, now)
        if admitted is not None:
            return admitted

    reg = registration_for(event, member)
    walk_in = False
    if reg is None or reg.status not in HOLDING:
        refusal = _place_refusal(event, member, reg)
        if refusal is not None:
            return refusal
        walk_in = True
        if reg is None:
            # Another gate may be registering the same walk-in right now: the unique
            # (event, member) key lets one insert win; the other reads the winner's row.
            _insert_ignore(EventRegistration, {
                "event_id": event.id, "member_id": member.id, "status": "registered", "source": "walk_in",
                "registered_at": now, "registered_by_id": getattr(actor, "id", None), "updated_at": now,
            })
            reg = registration_for(event, member)

    if event.checkin_rule == "multiple":
        recent = db.session.execute(
            select(EventCheckin.at, EventCheckin.gate)
            .where(EventCheckin.event_id == event.id, EventCheckin.member_id == member.id,
                   EventCheckin.at > now - timedelta(seconds=MULTIPLE_ENTRY_WINDOW_SECONDS))
            .order_by(EventCheckin.at).limit(1)
        ).first()
        if recent is not None:
            return _Outcome("already_checked_in", None, "Already let in a moment ago.", member=member,
                            first_at=recent.at, first_gate=recent.gate, registration_status=reg.status)

    slot = slot_for(event, now)
    inserted = _insert_ignore(EventCheckin, {
        "event_id": event.id, "member_id": member.id, "slot": slot, "at": now, "gate": gate,
        "by_id": getattr(actor, "id", None), "method": method,
    })
    if inserted is None:
        return _already(event, member, slot)
    if reg.status != "attended":
        reg.status = "attended"
    if reg.checked_in_at is None:
        reg.checked_in_at, reg.checked_in_by_id, reg.checkin_gate = now, getattr(actor, "id", None), gate
    db.session.flush()
    message = "Walk-in: registered and admitted." if walk_in else "Admitted."
    return _Outcome("admitted", None, message, member=member, first_at=reg.checked_in_at,
                    first_gate=reg.checkin_gate, at=now, walk_in=walk_in, registration_status="attended")


_REG = EventRegistration.__table__.c
_FIRST = _REG.checked_in_at.is_(None)
# Built once (this is the door's hot path): mark a registered member attended, keeping the first
# check-in's time, gate and user; RETURNING those. Matches nothing for members holding no place.
_ATTEND_REGISTERED = (
    update(EventRegistration.__table__)
    .where(_REG.event_id == bindparam("event"), _REG.member_id == bindparam("member"), _REG.status.in_(HOLDING))
    .values(status="attended",
            checked_in_at=func.coalesce(_REG.checked_in_at, bindparam("now", type_=_REG.checked_in_at.type)),
            checkin_gate=case((_FIRST, bindparam("gate", type_=_REG.checkin_gate.type)), else_=_REG.checkin_gate),
            checked_in_by_id=case((_FIRST, bindparam("actor", type_=_REG.checked_in_by_id.type)),
                                  else_=_REG.checked_in_by_id),
            updated_at=bindparam("now", type_=_REG.updated_at.type))
    .returning(_REG.checked_in_at, _REG.checkin_gate)
)
_STORE_ANSWER = (
    update(EventCheckinNonce.__table__)
    .where(EventCheckinNonce.__table__.c.id == bindparam("row_id"))
    .values(response=bindparam("answer", type_=EventCheckinNonce.__table__.c.response.type))
)


def _admit_registered(actor, event: Event, member: Member, gate: str | None, method: str,
                      now: datetime) -> _Outcome | None:
    """The usual case at the door, in two statements: a registered (or already attended) member.

    The UPDATE marks the registration attended, keeping the first check-in's
    time, gate and user, and row-locks it, so concurrent scans of one member
    queue here; the INSERT of the slot's check-in then decides admitted or
    already checked in. None when the member holds no place (not registered,
    waitlisted, cancelled): the caller's slower path handles walk-ins and refusals.
    """
    actor_id = getattr(actor, "id", None)
    db.session.flush()
    row = db.session.connection().execute(_ATTEND_REGISTERED, {
        "event": event.id, "member": member.id, "now": now, "gate": gate, "actor": actor_id,
    }).first()
    if row is None:
        return None
    for obj in list(db.session.identity_map.values()):  # a copy loaded earlier in this session is stale
        if isinstance(obj, EventRegistration) and obj.event_id == event.id and obj.member_id == member.id:
            db.session.expire(obj)
    slot = slot_for(event, now)
    inserted = _insert_ignore(EventCheckin, {
        "event_id": event.id, "member_id": member.id, "slot": slot, "at": now, "gate": gate, "by_id": actor_id,
        "method": method,
    })
    if inserted is not None:
        return _Outcome("admitted", None, "Admitted.", member=member, first_at=row.checked_in_at,
                        first_gate=row.checkin_gate, at=now, registration_status="attended")
    return _already(event, member, slot)


def _already(event: Event, member: Member, slot: str) -> _Outcome:
    first = db.session.execute(
        select(EventCheckin.at, EventCheckin.gate)
        .where(EventCheckin.event_id == event.id, EventCheckin.member_id == member.id, EventCheckin.slot == slot)
    ).first()
    when = local(first.at).strftime("%H:%M") if first is not None else ""
    where = f" at {first.gate}" if first is not None and first.gate else ""
    return _Outcome("already_checked_in", None, f"Already checked in{' at ' + when if when else ''}{where}.",
                    member=member, first_at=first.at if first else None, first_gate=first.gate if first else None,
                    registration_status="attended")


def valid_nonce(nonce: Any) -> bool:
    return isinstance(nonce, str) and bool(NONCE_RE.match(nonce))


def photo_exists(member: Member) -> bool:
    return db.session.scalar(select(func.count()).select_from(MemberPhoto)
                             .where(MemberPhoto.member_id == member.id)) > 0


# --- attachments ------------------------------------------------------------------------

# Detected kind -> (content type, accepted extensions)
ATTACHMENT_TYPES = {
    "pdf": ("application/pdf", (".pdf",)),
    "png": ("image/png", (".png",)),
    "jpeg": ("image/jpeg", (".jpg", ".jpeg")),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",)),
}


def sniff(raw: bytes) -> str | None:
    """What a file really is, from its bytes: pdf, png, jpeg, docx, or None.

    A zip archive is checked for a zip bomb (``zipguard``) before its directory is read.
    """
    if raw.startswith(b"%PDF-"):
        return "pdf" if b"%%EOF" in raw[-2048:] else None
    if raw.startswith(b"\x89PNG\r\n\x1a\n") or raw.startswith(b"\xff\xd8\xff"):
        try:
            with Image.open(io.BytesIO(raw)) as img:
                kind = img.format
                img.verify()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
            return None
        return {"PNG": "png", "JPEG": "jpeg"}.get(kind)
    if raw.startswith(b"PK\x03\x04"):
        limit = int(current_app.config.get("EVENT_ATTACHMENT_MAX_UNPACKED_BYTES", 100 * 1024 * 1024))
        zipguard.check_archive(raw, max_unpacked=limit)
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return "docx"
    return None


def add_attachment(actor, event: Event, filename: str, raw: bytes, kind: str = "agenda") -> EventAttachment:
    """Attach a PDF, PNG, JPEG or Word (.docx) file, checked by content; the name must agree."""
    authorize(actor, "events.update", event, message=_REFUSALS["events.update"])
    kind = (kind or "agenda").strip().lower()
    if kind not in ATTACHMENT_KINDS:
        raise ServiceError(f"The kind must be one of: {', '.join(ATTACHMENT_KINDS)}.", field="kind")
    max_bytes = int(current_app.config.get("EVENT_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))
    if not raw:
        raise ServiceError("The file is empty.", field="file")
    if len(raw) > max_bytes:
        raise ServiceError(f"The file is too large ({max_bytes // (1024 * 1024)} MB at most).", field="file")
    detected = sniff(raw)
    if detected is None:
        raise ServiceError("Attach a PDF, PNG, JPEG or Word (.docx) file.", field="file")
    content_type, extensions = ATTACHMENT_TYPES[detected]
    name = secure_filename(filename or "") or f"attachment{extensions[0]}"
    stem, dot, ext = name.rpartition(".")
    if not dot or f".{ext.lower()}" not in extensions:
        raise ServiceError(f"The file's content is {detected.upper()}, which does not match its name "
                           f"'{filename}'.", field="file")
    count = db.session.scalar(select(func.count()).select_from(EventAttachment)
                              .where(EventAttachment.event_id == event.id))
    if count >= MAX_ATTACHMENTS:
        raise ServiceError(f"An event has {MAX_ATTACHMENTS} attachments at most.", field="file")
    row = EventAttachment(event_id=event.id, kind=kind, filename=name[:200], content_type=content_type,
                          size=len(raw), content=raw, uploaded_by_id=getattr(actor, "id", None))
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "event.attachment", event, summary=f"Attached {row.filename} to {event.title}")
    return row


def delete_attachment(actor, row: EventAttachment) -> None:
    """Remove an attachment (events.update on its event)."""
    event = row.event
    authorize(actor, "events.update", event, message=_REFUSALS["events.update"])
    db.session.delete(row)
    db.session.flush()
    audit.record(actor, "event.attachment_delete", event, summary=f"Removed {row.filename} from {event.title}")


# --- calendar ---------------------------------------------------------------------------


def events_between(user: Any, start: datetime | None, end: datetime | None, limit: int = 500) -> list[Event]:
    """Visible events overlapping [start, end), for the calendar."""
    stmt = visible_events(user)
    if start is not None:
        stmt = stmt.where(Event.end_at > start)
    if end is not None:
        stmt = stmt.where(Event.start_at < end)
    return list(db.session.scalars(stmt.order_by(Event.start_at, Event.id).limit(limit)))


def status_clause(status: str, now: datetime | None = None) -> ColumnElement[bool]:
    """SQL for an event's shown status (draft, upcoming, ongoing, completed, cancelled)."""
    now = now or utcnow()
    if status in ("draft", "cancelled"):
        return Event.status == status
    published = Event.status == "upcoming"
    if status == "upcoming":
        return and_(published, Event.start_at > now)
    if status == "ongoing":
        return and_(published, Event.start_at <= now, Event.end_at > now)
    if status == "completed":
        return and_(published, Event.end_at <= now)
    raise ServiceError(f"Unknown status '{status}'.", field="status")


def today_local() -> date:
    return local(utcnow()).date()


__all__ = [
    "ATTENDANCE_STATUSES", "REASONS", "add_attachment", "cancel_registration", "check_in", "checkin_window",
    "clean_event", "counts", "counts_for", "create_event", "delete_attachment", "delete_event", "events_between",
    "find_members", "mark_no_shows", "member_summary", "promote_waitlist", "register", "registration_for",
    "set_attendance", "set_event_status", "slot_for", "status_clause", "update_event",
    "visible_events", "load_event",
]

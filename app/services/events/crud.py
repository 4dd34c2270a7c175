"""Creating, changing and deleting events (the scope rules are in ``visibility``).

A new event is a draft unless a status is given; moving an event needs
events.update over the new unit too; a larger capacity promotes the waiting
list; an event with attendance is cancelled, never deleted (409).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import Event, EventCheckin, EventCheckinNonce, EventRegistration, Unit
from app.security import authorize, unit_choice
from app.services import audit
from app.services.errors import ServiceError
from app.services.events.attachments import forget_files
from app.services.events.fields import clean_event, snapshot
from app.services.events.registrations import promote_waitlist
from app.services.events.visibility import REFUSALS


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
    authorize(actor, "events.update", event, message=REFUSALS["events.update"])
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
    authorize(actor, "events.delete", event, message=REFUSALS["events.delete"])
    attended = db.session.scalar(
        select(func.count()).select_from(EventRegistration)
        .where(EventRegistration.event_id == event.id, EventRegistration.status == "attended")
    )
    if attended:
        raise ServiceError("This event has attendance records: cancel it instead of deleting it.", status=409)
    audit.record(actor, "event.delete", event, summary=f"Deleted event {event.title}")
    forget_files(event)  # its attachments' stored files, once this is committed
    db.session.execute(delete(EventRegistration).where(EventRegistration.event_id == event.id))
    db.session.execute(delete(EventCheckin).where(EventCheckin.event_id == event.id))
    db.session.execute(delete(EventCheckinNonce).where(EventCheckinNonce.event_id == event.id))
    db.session.delete(event)
    db.session.flush()

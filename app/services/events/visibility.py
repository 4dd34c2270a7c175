"""Who sees an event, and who may attend it.

Staff see events through the scoping helper (``events.read`` / ``.create`` /
``.update`` / ``.delete`` over the event's unit); members using the portal or
the API see the published events of their own unit and the units above it
(the events they may attend). Only members of the event's unit subtree may
register or be checked in, and members barred by their status never.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import Event, Member
from app.models.base import utcnow
from app.security import authorize, scoped
from app.services.errors import NotFound, ServiceError
from app.services.inputs import parse_id

# Members in these states are refused at registration and at the door.
BARRED_MEMBER_STATUSES = ("suspended", "expelled", "resigned", "deceased")
# What a refusal says, per permission asked for on an event.
REFUSALS = {
    "events.update": "You may not change this event.",
    "events.delete": "You may not delete this event.",
    "events.register": "You may not register for this event.",
}


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
    authorize(actor, permission, event, message=REFUSALS.get(permission))
    return event


def member_in_event_area(event: Event, member: Member) -> bool:
    """Members of the event's unit and the units below it may attend."""
    return member.unit.path.startswith(event.unit.path)


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

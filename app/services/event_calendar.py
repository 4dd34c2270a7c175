"""The member's events calendar: one month of the events open to them, as a grid of weeks (``/events/calendar``).

Server-rendered rather than FullCalendar: a member on a cheap phone gets the
month in one small HTML page (no 280 KB script, no JSON round trip), and a
table with a caption, day headers and links reads well with a screen reader.

Which events: the published events of the member's unit and the units above
it (the same reach as the list, through ``scoped(..., "events.register")``)
that touch the month in the organisation's time zone, past ones included so
the month reads as a whole; drafts and cancelled events are left out. An
event lasting several days appears on each of its days. Weeks start on
Monday. At most ``MAX_EVENTS`` events a month (more would not fit any phone).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Event, EventRegistration
from app.security import scoped
from app.services import events as event_service
from app.services import self_service
from app.services.errors import ServiceError

MAX_EVENTS = 200
MONTH_RE = re.compile(r"[0-9]{4}-[0-9]{2}")
# The months a calendar may show (the years event times may take).
FIRST_YEAR, LAST_YEAR = 2000, 2200


@dataclass
class Day:
    """One cell of the grid: a date, whether it is in the month shown, today, and its events."""

    day: date
    in_month: bool
    today: bool
    events: list[Event] = field(default_factory=list)


@dataclass
class Month:
    """A month of the member's events: the weeks of days, every event once, and the member's registrations."""

    first: date
    weeks: list[list[Day]]
    events: list[Event]
    registrations: dict[int, EventRegistration]
    positions: dict[int, int]

    @property
    def prev(self) -> date | None:
        last = self.first - timedelta(days=1)
        return last.replace(day=1) if last.year >= FIRST_YEAR else None

    @property
    def next(self) -> date | None:
        after = (self.first + timedelta(days=32)).replace(day=1)
        return after if after.year <= LAST_YEAR else None

    @property
    def days_with_events(self) -> list[Day]:
        return [d for week in self.weeks for d in week if d.in_month and d.events]


def parse_month(raw: str | None, today: date) -> date:
    """``2026-12`` as the first of that month; empty is this month. Anything else: ServiceError (400)."""
    raw = (raw or "").strip()
    if not raw:
        return today.replace(day=1)
    if not MONTH_RE.fullmatch(raw):  # ASCII digits only (str.isdigit also takes ٢٠٢٧)
        raise ServiceError("A month looks like 2026-12.", field="month", status=400)
    year, month = int(raw[:4]), int(raw[5:])
    if not (FIRST_YEAR <= year <= LAST_YEAR and 1 <= month <= 12):
        raise ServiceError(f"The month must be between {FIRST_YEAR}-01 and {LAST_YEAR}-12.", field="month",
                           status=400)
    return date(year, month, 1)


def _utc_midnight(day: date, tz: Any) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def month_events(actor: Any, first: date) -> list[Event]:
    """The published events open to the actor that touch the month starting ``first`` (local time), soonest first."""
    member = self_service.linked_member(actor)
    tz = event_service.org_timezone()
    last = (first + timedelta(days=32)).replace(day=1)
    stmt = (select(Event)
            .where(Event.unit_id.in_(member.unit.ancestor_ids), Event.status == "upcoming",
                   Event.start_at < _utc_midnight(last, tz), Event.end_at > _utc_midnight(first, tz))
            .options(selectinload(Event.unit)))
    stmt = scoped(stmt, actor, "events.register", Event).order_by(Event.start_at, Event.id).limit(MAX_EVENTS)
    return list(db.session.scalars(stmt))


def month(actor: Any, first: date, today: date | None = None) -> Month:
    """The grid of the month starting ``first`` (Monday to Sunday weeks) with the actor's events and registrations."""
    today = today or event_service.local(datetime.now(UTC)).date()
    found = month_events(actor, first)
    weeks = [[Day(d, d.month == first.month, d == today) for d in week]
             for week in calendar.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)]
    cells = {d.day: d for week in weeks for d in week}
    for event in found:
        start = event_service.local(event.start_at).date()
        # An event ending at midnight does not occupy the day it ends on.
        end = event_service.local(event.end_at - timedelta(microseconds=1)).date()
        day = max(start, weeks[0][0].day)
        while day <= end and day in cells:
            cells[day].events.append(event)
            day += timedelta(days=1)
    registrations = self_service.my_registrations_for(actor, found)
    positions = self_service.waitlist_positions(list(registrations.values()))
    return Month(first, weeks, found, registrations, positions)

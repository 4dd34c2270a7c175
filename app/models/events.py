"""Events (meetings, rallies, trainings), their registrations, attachments and door check-ins.

An event belongs to a unit, so who may see and manage it follows the same
scope rule as members. Attendance is kept twice on purpose:

- ``event_registrations`` holds one row per event and member (unique) with the
  registration's status (registered, waitlisted, attended, cancelled,
  no_show) and the first check-in;
- ``event_checkins`` holds each admission at the door. Its unique key
  (event, member, slot) is what makes two gates scanning the same card at the
  same moment produce exactly one attendance: the slot is ``once`` for
  once-only events, the local date for once-per-day events and a one-minute
  bucket for events allowing multiple entries.

``event_checkin_nonces`` remembers each check-in request a client tagged with
a nonce, with the answer given, so that a retried request gets the same
answer and never a second record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

EVENT_TYPES = ("meeting", "rally", "training", "social", "other")
# Stored statuses are draft, upcoming (published) and cancelled; upcoming, ongoing and
# completed are what a published event *is*, depending on the clock (see Event.status_at).
EVENT_STATUSES = ("draft", "upcoming", "ongoing", "completed", "cancelled")
STORED_EVENT_STATUSES = ("draft", "upcoming", "cancelled")
CHECKIN_RULES = ("once", "once_per_day", "multiple")
REGISTRATION_STATUSES = ("registered", "waitlisted", "attended", "cancelled", "no_show")
REGISTRATION_SOURCES = ("staff", "self", "walk_in")
ATTACHMENT_KINDS = ("agenda", "flyer", "other")


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        # Scoped lists and the calendar: events of some units in a date range.
        Index("ix_events_unit_id_start_at", "unit_id", "start_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(12), default="meeting")
    start_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    location: Mapped[str | None] = mapped_column(String(200))
    venue: Mapped[str | None] = mapped_column(String(200))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    capacity: Mapped[int | None] = mapped_column()
    registration_required: Mapped[bool] = mapped_column(default=True)
    registration_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # draft | upcoming | cancelled (see status_at for what is shown)
    status: Mapped[str] = mapped_column(String(12), default="draft")
    checkin_rule: Mapped[str] = mapped_column(String(16), default="once")
    walk_ins_allowed: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    unit: Mapped["Unit"] = relationship()  # noqa: F821
    created_by: Mapped["User | None"] = relationship()  # noqa: F821
    attachments: Mapped[list[EventAttachment]] = relationship(
        back_populates="event", cascade="all, delete-orphan", order_by="EventAttachment.id"
    )

    def status_at(self, now: datetime) -> str:
        """draft and cancelled as set by staff; otherwise upcoming, ongoing or completed by the clock."""
        if self.status in ("draft", "cancelled"):
            return self.status
        if now < self.start_at:
            return "upcoming"
        if now < self.end_at:
            return "ongoing"
        return "completed"

    @property
    def current_status(self) -> str:
        return self.status_at(utcnow())

    def __str__(self) -> str:
        return self.title


class EventRegistration(db.Model):
    __tablename__ = "event_registrations"
    __table_args__ = (
        UniqueConstraint("event_id", "member_id"),
        # Counts per status and the waiting list in order.
        Index("ix_event_registrations_event_id_status", "event_id", "status", "registered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="registered")
    source: Mapped[str] = mapped_column(String(12), default="staff")
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    registered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_in_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    checkin_gate: Mapped[str | None] = mapped_column(String(60))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    event: Mapped[Event] = relationship()
    member: Mapped["Member"] = relationship()  # noqa: F821
    checked_in_by: Mapped["User | None"] = relationship(foreign_keys=[checked_in_by_id])  # noqa: F821


class EventCheckin(db.Model):
    """One admission at the door (or marked by hand); unique per event, member and slot."""

    __tablename__ = "event_checkins"
    __table_args__ = (UniqueConstraint("event_id", "member_id", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    slot: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    gate: Mapped[str | None] = mapped_column(String(60))
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # card (a scanned credential), lookup (found by name/number at the gate), manual (marked on the event page)
    method: Mapped[str] = mapped_column(String(12), default="card")


class EventCheckinNonce(db.Model):
    """A check-in request tagged by its client, with the answer given (retries get the same)."""

    __tablename__ = "event_checkin_nonces"
    __table_args__ = (UniqueConstraint("event_id", "nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # SHA-256 of what was presented (token or member id), so a reused nonce with other content is refused.
    request_key: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventAttachment(db.Model):
    """An agenda or flyer: a PDF, image or Word document checked by content.

    The file is in the file storage under ``storage_key``; ``content`` holds
    the bytes of attachments saved before the storage existed, until
    ``flask storage migrate`` moves them (app/services/events/attachments.py).
    """

    __tablename__ = "event_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(12), default="agenda")
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(default=0)
    content: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    storage_key: Mapped[str | None] = mapped_column(String(300))
    sha256: Mapped[str | None] = mapped_column(String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[Event] = relationship(back_populates="attachments")

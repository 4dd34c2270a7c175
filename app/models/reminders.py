"""Reminders (issue 12): the sent log, one row per reminder ever due, and the admins' reminder settings.

The log is what makes reminders exactly-once. Its unique key is (member,
kind, target): ``kind`` says which reminder (``renewal-30``, ``renewal+14``,
``event``), ``target`` what it is about (the card's expiry date it counts
from, ``2027-01-31``, or ``event-42``). A sweep inserts the due rows with
INSERT ... SELECT ... ON CONFLICT DO NOTHING and writes a mail only for the
rows it inserted, in the same transaction as the outbox row: a re-run, a
crash before the commit, or a second sweep at the same moment can neither
send twice (the key is taken) nor skip (nothing is logged without its mail).
No column of the key is nullable, because NULLs never collide in a unique
constraint.

A renewal moves the card's expiry, so reminders counting from the old date
no longer match anything and stop; the sweep records the ones that fell due
afterwards as skipped with the reason "renewed", so the console can say why.

``reminder_settings`` holds what admins changed in the console (offsets,
hours, subjects and texts) as key/value rows; a key absent here falls back to
the environment default (app/services/reminders/settings.py).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

# mailed: a mail was recorded in the outbox (its status there says whether it went out or failed);
# skipped: not mailed, see ``reason`` (opted out, no email address, renewed, already sent).
REMINDER_OUTCOMES = ("mailed", "skipped")


class ReminderLog(db.Model):
    __tablename__ = "reminder_log"
    __table_args__ = (
        UniqueConstraint("member_id", "kind", "target", name="uq_reminder_log_member_id_kind_target"),
        # The console's log, newest first, and the renewal check (rows per target of a member).
        Index("ix_reminder_log_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))  # renewal-30, renewal+0, renewal+14, event
    target: Mapped[str] = mapped_column(String(40))  # the expiry date counted from, or event-<id>
    card_id: Mapped[int | None] = mapped_column(ForeignKey("membership_cards.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    offset_days: Mapped[int | None] = mapped_column()  # renewal reminders: days from expiry
    expires_on: Mapped[date | None] = mapped_column(Date)  # renewal reminders: the expiry counted from
    outcome: Mapped[str] = mapped_column(String(12), default="mailed")
    reason: Mapped[str] = mapped_column(Text, default="")
    mail_message_id: Mapped[int | None] = mapped_column(ForeignKey("mail_messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # the sweep's moment

    member: Mapped["Member"] = relationship()  # noqa: F821
    card: Mapped["MembershipCard | None"] = relationship()  # noqa: F821
    event: Mapped["Event | None"] = relationship()  # noqa: F821
    mail_message: Mapped["MailMessage | None"] = relationship()  # noqa: F821

    def __str__(self) -> str:
        return f"{self.kind} for {self.target}"


class ReminderSetting(db.Model):
    """One setting an admin changed in the console (a missing key means the environment default)."""

    __tablename__ = "reminder_settings"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

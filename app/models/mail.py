"""Outgoing mail: one row per message (the outbox).

A message is rendered and recorded in the same transaction as the work that
caused it (a password reset, a reminder) and delivered by a queue task after
that transaction commits (app/services/mail/, app/tasks/mail.py). The row is
what people see in the console's "Outgoing mail" and what makes delivery
exactly-once: the idempotency key stops a second enqueue from making a second
message, and a worker claims the row (``claimed_by``/``claimed_until``, a
lease) with a compare-and-set before it talks to the SMTP server.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

# queued: waiting for (or between) delivery attempts; sent: the server took it;
# failed: refused for good (or too many attempts), see ``reason``; suppressed: never sent, see ``reason``.
MAIL_STATUSES = ("queued", "sent", "failed", "suppressed")


class MailMessage(db.Model):
    __tablename__ = "mail_messages"
    __table_args__ = (
        # The sweep's question: which queued messages are due?
        Index("ix_mail_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60), index=True)  # templates/email/<kind>.txt and .html
    to_address: Mapped[str] = mapped_column(String(254), default="", index=True)
    subject: Mapped[str] = mapped_column(String(300), default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    # The Message-ID header, fixed when the message is recorded so every attempt sends the same one.
    message_id: Mapped[str] = mapped_column(String(255), default="")
    # Unique per message: a second send with the same key returns the first row.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # Bulk mail (reminders, notices to many) waits for MUSTER_MAIL_RATE; one-off mail does not.
    bulk: Mapped[bool] = mapped_column(default=False)
    # Holds a one-time secret (a sign-in or reset link): the console never shows its body.
    sensitive: Mapped[bool] = mapped_column(default=False)
    # An optional notice's one-click unsubscribe link (issue 12): sent as List-Unsubscribe headers.
    list_unsubscribe: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")  # why it failed, was suppressed or is waiting
    attempts: Mapped[int] = mapped_column(default=0)  # times handed to the mail server
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The worker delivering it right now, and until when that claim holds.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whom it concerns (the console's scope follows the member's unit).
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    queued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member: Mapped["Member | None"] = relationship()  # noqa: F821
    user: Mapped["User | None"] = relationship(foreign_keys=[user_id])  # noqa: F821
    queued_by: Mapped["User | None"] = relationship(foreign_keys=[queued_by_id])  # noqa: F821

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_address or '(no address)'}"

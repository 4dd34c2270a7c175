"""Portal notifications and per-member mail preferences (issue 12).

A ``Notification`` is a line in the member's portal ("Your card was issued"),
created by staff actions on the member and by reminders, read or unread.
The bell on every portal page asks one question, "how many unread?", many
times a minute across all members, so ``(member_id, read_at)`` is indexed
and the count never touches the table's other columns.

A ``MailPreference`` row records a member's choice for one optional kind
(``email`` False: do not mail me about this). No row means the default
(mailed). Required kinds (card revoked, account security) never consult it:
app/services/notifications.py decides, not the row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        # The bell's count: WHERE member_id = ? AND read_at IS NULL, answered from the index alone.
        Index("ix_notifications_member_unread", "member_id", "read_at"),
        # The notifications page: a member's newest first.
        Index("ix_notifications_member_created", "member_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(60))  # a key of notifications.KINDS
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    # A path inside the portal ("/card") or an absolute URL on MUSTER_PUBLIC_URL; never another site.
    link: Mapped[str | None] = mapped_column(String(500))
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship()  # noqa: F821

    @property
    def unread(self) -> bool:
        return self.read_at is None

    def __str__(self) -> str:
        return self.title


class MailPreference(db.Model):
    __tablename__ = "mail_preferences"
    __table_args__ = (UniqueConstraint("member_id", "kind", name="uq_mail_preferences_member_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(60))
    email: Mapped[bool] = mapped_column(default=True)
    # How the choice was made ("portal", "unsubscribe link", "api"): shown nowhere yet, kept for disputes.
    source: Mapped[str] = mapped_column(String(30), default="portal")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

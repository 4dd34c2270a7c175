"""What members ask staff to do about their own record: change protected fields, erase their account.

A member edits their contact details themselves (portal and ``PATCH /me``);
their name, date of birth, national ID and ward identify them and place them
in the organisation, so a change to those is a *request* that staff in the
member's area approve (the change is then made through the member registry,
with its duplicate and scope rules) or reject with a reason. Old values are
kept next to the new ones, so the decision and the audit trail show what was
asked against what was on record at the time.

An erasure request ("delete my account") only records the wish: staff decide
what to delete and mark it handled with a note; nothing is deleted by the
member alone.

Both live in the member's (current) unit for scoping (app/security.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

# pending -> approved | rejected (staff), or withdrawn (the member, while pending).
CHANGE_REQUEST_STATUSES = ("pending", "approved", "rejected", "withdrawn")
# The fields a member may only change by asking (members.EDITABLE_FIELDS names).
REQUESTABLE_FIELDS = ("first_name", "last_name", "other_names", "date_of_birth", "national_id", "unit_id")
ERASURE_STATUSES = ("pending", "handled")


class MemberChangeRequest(db.Model):
    __tablename__ = "member_change_requests"
    __table_args__ = (
        Index("ix_member_change_requests_member_status", "member_id", "status"),
        # One pending request per member, even when two requests race (the service says so in words).
        Index("uq_member_change_requests_one_pending", "member_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    # {field: new value} and {field: value on record when asked}, JSON-ready (dates as ISO strings).
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    old_values: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    # The member's note when asking, and the staff's reason when rejecting (or a note when approving).
    note: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member: Mapped["Member"] = relationship()  # noqa: F821
    requested_by: Mapped["User | None"] = relationship(foreign_keys=[requested_by_id])  # noqa: F821
    decided_by: Mapped["User | None"] = relationship(foreign_keys=[decided_by_id])  # noqa: F821

    def __str__(self) -> str:
        return f"change request #{self.id}"


class ErasureRequest(db.Model):
    __tablename__ = "erasure_requests"
    __table_args__ = (
        Index("ix_erasure_requests_member_status", "member_id", "status"),
        Index("uq_erasure_requests_one_pending", "member_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    reason: Mapped[str | None] = mapped_column(Text)  # the member's, optional
    note: Mapped[str | None] = mapped_column(Text)  # the staff's, when handled
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member: Mapped["Member"] = relationship()  # noqa: F821
    requested_by: Mapped["User | None"] = relationship(foreign_keys=[requested_by_id])  # noqa: F821
    handled_by: Mapped["User | None"] = relationship(foreign_keys=[handled_by_id])  # noqa: F821

    def __str__(self) -> str:
        return f"erasure request #{self.id}"

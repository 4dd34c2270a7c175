"""Referrals (issue 13): members' codes, who brought whom, and the points ledger.

- ``ReferralCode``: one short code per member, created lazily the first
  time it is needed (app/services/referrals.py ``code_for``). A table of its
  own rather than a column on ``members``: adding a column to the largest
  table means a batch rebuild on SQLite, and most members never share a code.
- ``Referral``: one recruitment attempt, from a code or link typed at joining
  or a prospect recorded in the portal. ``referred_member_id`` is unique: a
  new member has one referrer at most (the first valid one wins), and the
  database, not only the service, refuses a second.
- ``PointsEntry`` (table ``referral_rewards``): the ledger. Points are never
  a stored total: a balance is always ``sum(points)``, an award is undone by
  a reversal entry, never by editing or deleting the award. One award and at
  most one reversal per referral (unique ``(referral_id, kind)``), so a retry
  or a double click can never pay twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, binary_string, utcnow
from app.models.people import Member

REFERRAL_STATUSES = ("pending", "registered", "credited", "expired", "rejected")
REFERRAL_SOURCES = ("link", "code", "prospect")
POINTS_KINDS = ("award", "reversal")
# Codes people read aloud, type on phones and copy from paper: no 0/O, 1/I/L (and so no l).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6


class ReferralCode(db.Model):
    __tablename__ = "referral_codes"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    # Stored upper case; lookups normalise the input the same way, so the code is case-insensitive.
    code: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship()

    def __str__(self) -> str:
        return self.code


class Referral(db.Model):
    __tablename__ = "referrals"
    __table_args__ = (
        # The expiry sweep: WHERE status = 'pending' AND created_at < ?, an index range; and the
        # organisation's funnel (counts by status of registered_at, credited_at) from the index alone.
        Index("ix_referrals_status_funnel", "status", "created_at", "registered_at", "credited_at"),
        # A member's referrals, and every figure grouped by referrer (leaderboard counts, an area's
        # funnel, units' counts) from the index alone, in referrer order.
        Index("ix_referrals_referrer_funnel", "referrer_id", "status", "registered_at", "credited_at"),
        # Matching a joining member against recorded prospects.
        Index("ix_referrals_prospect_phone", "prospect_phone"),
        Index("ix_referrals_prospect_email", "prospect_email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    # Unique (NULLs allowed: prospects who have not joined): one referrer per new member.
    referred_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), unique=True)
    prospect_name: Mapped[str | None] = mapped_column(String(160))
    prospect_phone: Mapped[str | None] = mapped_column(String(20))  # E.164, as members.phone
    prospect_email: Mapped[str | None] = mapped_column(binary_string(254))  # lower-cased, as members.email
    code: Mapped[str | None] = mapped_column(String(16))  # the code used, as typed then normalised
    source: Mapped[str] = mapped_column(String(10))  # REFERRAL_SOURCES
    status: Mapped[str] = mapped_column(String(12), default="pending")  # REFERRAL_STATUSES
    # Why it was rejected, expired or reversed, in words for staff and the referrer.
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # expired or rejected
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    referrer: Mapped[Member] = relationship(foreign_keys=[referrer_id])
    referred_member: Mapped[Member | None] = relationship(foreign_keys=[referred_member_id])
    points_entries: Mapped[list[PointsEntry]] = relationship(back_populates="referral",
                                                             order_by="PointsEntry.id")

    @property
    def unit_id(self) -> int | None:
        """The referrer's unit: staff scope a referral by where its referrer belongs."""
        return self.referrer.unit_id if self.referrer is not None else None

    def __str__(self) -> str:
        who = self.referred_member.full_name if self.referred_member else (self.prospect_name or "prospect")
        return f"Referral of {who} ({self.status})"


class PointsEntry(db.Model):
    __tablename__ = "referral_rewards"
    __table_args__ = (
        UniqueConstraint("referral_id", "kind", name="uq_referral_rewards_referral_kind"),
        # A balance: SUM(points) WHERE member_id = ?, from the index alone.
        Index("ix_referral_rewards_member_points", "member_id", "points"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id", ondelete="SET NULL"))
    points: Mapped[int] = mapped_column()  # positive for an award, negative for a reversal
    kind: Mapped[str] = mapped_column(String(10))  # POINTS_KINDS
    reason: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship()
    referral: Mapped[Referral | None] = relationship(back_populates="points_entries")
    actor: Mapped[User | None] = relationship()  # noqa: F821


# The issue and the seed call the ledger "referral rewards".
ReferralReward = PointsEntry

"""Dues (issue 14): membership tiers, payments, and the Stripe events already handled.

- ``MembershipTier``: what a member can pay for: a price in a currency, a
  duration in months (None: lifetime) and the card type it carries.
- ``Payment``: one payment of a tier by a member, online (Stripe) or
  recorded by staff (cash, bank transfer, mobile money). Amounts are integers
  in the currency's minor unit (cents, ngwee), never floats. ``fulfilled_at``
  says the payment has extended the membership; it is set once, in the same
  transaction as the extension, under a lock on the payment's row, so a
  payment extends a membership at most once whoever calls ``fulfil`` and how
  often. ``extended_from`` / ``extended_to`` keep what the extension did, so a
  refund can undo exactly that when no later payment builds on it.
- ``StripeEvent``: the id of every Stripe event handled, written in the same
  transaction as its effect: a replayed or concurrently delivered event finds
  its id taken and does nothing twice.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.people import Member

PAYMENT_METHODS = ("stripe", "cash", "bank_transfer", "mobile_money", "other")
MANUAL_METHODS = ("cash", "bank_transfer", "mobile_money", "other")
PAYMENT_STATUSES = ("pending", "completed", "failed", "refunded", "cancelled")


class MembershipTier(db.Model):
    __tablename__ = "membership_tiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    price_minor: Mapped[int] = mapped_column()  # in the currency's minor unit
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217, upper case
    duration_months: Mapped[int | None] = mapped_column()  # None: lifetime
    card_type: Mapped[str] = mapped_column(String(12), default="standard")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def is_lifetime(self) -> bool:
        return self.duration_months is None

    def __str__(self) -> str:
        return self.name


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        # A member's history, newest first; the reminders' "paid for this period" check.
        Index("ix_payments_member_created", "member_id", "created_at"),
        # The dues report: completed payments per unit and month.
        Index("ix_payments_status_completed", "status", "completed_at", "unit_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    tier_id: Mapped[int] = mapped_column(ForeignKey("membership_tiers.id"))
    # The member's unit when the payment was made: the dues report counts money where it was paid,
    # even after the member moves.
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    amount_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(16))  # PAYMENT_METHODS
    status: Mapped[str] = mapped_column(String(12), default="pending")  # PAYMENT_STATUSES
    reference: Mapped[str] = mapped_column(String(120), default="")  # a bank or mobile-money reference
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # R-YYYY-NNNNNN, allocated when the payment is fulfilled: unique, sequential per year.
    receipt_number: Mapped[str | None] = mapped_column(String(24), unique=True)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the money arrived
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the membership was extended
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the extension did: the membership's valid-until before and after (None: lifetime).
    extended_from: Mapped[date | None] = mapped_column(Date)
    extended_to: Mapped[date | None] = mapped_column(Date)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("membership_cards.id"))
    # Why a completed payment waits for staff (a suspended or expelled member, a refund that a later
    # payment depends on); empty when nothing is held.
    hold_reason: Mapped[str] = mapped_column(Text, default="")

    member: Mapped[Member] = relationship()
    tier: Mapped[MembershipTier] = relationship()
    recorded_by: Mapped["User | None"] = relationship()  # noqa: F821

    def __str__(self) -> str:
        return self.receipt_number or f"Payment {self.id}"


class StripeEvent(db.Model):
    """A Stripe event handled: its id is the key that makes a replay do nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # evt_...
    type: Mapped[str] = mapped_column(String(80))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

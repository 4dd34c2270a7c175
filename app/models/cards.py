"""Membership cards and their history (card transactions).

A card belongs to a member; its unit is the member's unit (``unit_id`` below
is a hybrid attribute, not a column), so the scoping helper confines cards
exactly like members without a copy of the unit that could go stale when a
member moves. At most one card per member is current (active or suspended):
a partial unique index enforces it even under concurrent issuance.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Column, Date, ForeignKey, Index, String, Text, select
from sqlalchemy.ext.hybrid import Comparator, hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql import operators

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.people import Member

CARD_STATUSES = ("active", "expired", "suspended", "revoked")
CARD_TYPES = ("standard", "premium", "lifetime")
# Statuses of a member's current card; only one such card per member.
CURRENT_STATUSES = ("active", "suspended")
CARD_TRANSACTION_TYPES = ("issued", "renewed", "suspended", "reactivated", "revoked", "reissued", "expired")


def grace_days() -> int:
    """Days an active card stays usable after its expiry date (CARD_GRACE_DAYS, env MUSTER_GRACE_DAYS)."""
    from flask import current_app

    return max(0, int(current_app.config.get("CARD_GRACE_DAYS", 30)))


class _MemberUnitComparator(Comparator):
    """SQL side of ``MembershipCard.unit_id``: the card's member's unit.

    ``unit_id.in_(ids)`` becomes a semi-join on the members table through
    its partial index ``ix_members_live_unit_id`` (cards of soft-deleted
    members drop out of scoped lists, as the members themselves do); any
    other comparison uses a correlated subquery.
    """

    def __init__(self, cls) -> None:
        super().__init__(select(Member.unit_id).where(Member.id == cls.member_id).scalar_subquery())
        self.cls = cls

    def operate(self, op, *other, **kwargs):
        if op is operators.in_op:
            members = select(Member.id).where(Member.unit_id.in_(other[0]), Member.deleted_at.is_(None))
            return self.cls.member_id.in_(members)
        return op(self.expression, *other, **kwargs)


class MembershipCard(db.Model):
    __tablename__ = "membership_cards"
    __table_args__ = (
        Index(
            "uq_membership_cards_current_member",
            "member_id",
            unique=True,
            sqlite_where=Column("status").in_(CURRENT_STATUSES),
            postgresql_where=Column("status").in_(CURRENT_STATUSES),
        ),
        Index("ix_membership_cards_expires_on", "expires_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    # PREFIX-YYYY-NNNNNN-C, C being the Luhn check digit over the digits.
    card_number: Mapped[str] = mapped_column(String(32), unique=True)
    card_type: Mapped[str] = mapped_column(String(12), default="standard")
    status: Mapped[str] = mapped_column(String(12), default="active", index=True)
    issued_on: Mapped[date] = mapped_column(Date, default=date.today)
    # None for lifetime cards, which never expire.
    expires_on: Mapped[date | None] = mapped_column(Date)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The card this one replaced (reissue after loss or damage).
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("membership_cards.id"))

    member: Mapped[Member] = relationship()
    issued_by: Mapped["User | None"] = relationship()  # noqa: F821
    replaces: Mapped[MembershipCard | None] = relationship(remote_side=[id])
    transactions: Mapped[list[CardTransaction]] = relationship(
        back_populates="card", order_by="CardTransaction.id.desc()", cascade="all, delete-orphan"
    )

    @hybrid_property
    def unit_id(self) -> int:
        """The member's unit: what scopes the card."""
        return self.member.unit_id

    @unit_id.inplace.comparator
    @classmethod
    def _unit_id_comparator(cls) -> _MemberUnitComparator:
        return _MemberUnitComparator(cls)

    def effective_status(self, today: date | None = None, grace: int | None = None) -> str:
        """The status as of today: an active card past its expiry date *and* its grace period is expired.

        In grace (``in_grace``) the card is still active: it verifies (as "in grace"), admits at the
        door and can be renewed. Derived from the dates, so it cannot drift from them; the expiry
        sweep (``app.services.lifecycle``) only writes down what this already says.
        """
        today = today or date.today()
        if self.status == "active" and self.expires_on is not None and self.expires_on < today - timedelta(
                days=grace_days() if grace is None else grace):
            return "expired"
        return self.status

    def in_grace(self, today: date | None = None, grace: int | None = None) -> bool:
        """Active, past its expiry date, but within the grace period (CARD_GRACE_DAYS)."""
        today = today or date.today()
        return (self.status == "active" and self.expires_on is not None and self.expires_on < today
                and self.effective_status(today, grace) == "active")

    def grace_ends_on(self, grace: int | None = None) -> date | None:
        """The last day of the grace period (None for lifetime cards)."""
        if self.expires_on is None:
            return None
        return self.expires_on + timedelta(days=grace_days() if grace is None else grace)

    @property
    def is_current(self) -> bool:
        return self.status in CURRENT_STATUSES

    def __str__(self) -> str:
        return self.card_number


class CardTransaction(db.Model):
    """One transition of a card (issued, renewed, suspended, ...) with who, why and when."""

    __tablename__ = "card_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("membership_cards.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(12))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text, default="")
    # The card's expiry date after the transition (shows what a renewal did).
    expires_on: Mapped[date | None] = mapped_column(Date)
    # The status rule that made the change when no person did (app/services/lifecycle.py RULES,
    # e.g. "card.past_grace"); None for a person's action.
    rule: Mapped[str | None] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    card: Mapped[MembershipCard] = relationship(back_populates="transactions")
    actor: Mapped["User | None"] = relationship()  # noqa: F821

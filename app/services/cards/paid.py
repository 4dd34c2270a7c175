"""What a paid membership does to the card: extend it by the tier's period, or issue one; undo that on a refund.

Called by ``app.services.dues`` only, as the system (``actor`` None: a payment
decides, not a person's card rights; the payment's own audit entry names who
recorded it). Every change is a card transaction like any other, with the
receipt number as its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app.extensions import db
from app.models import Member, MembershipCard
from app.models.base import utcnow
from app.services.cards.lifecycle import (
    _record,
    _retire_expired_current,
    add_months,
    check_card_type,
    current_card,
    issue_card,
)
from app.services.errors import ServiceError


@dataclass(frozen=True)
class Extension:
    """The card a payment extended or issued, and its valid-until before and after (None: lifetime)."""

    card: MembershipCard
    before: date | None
    after: date | None
    issued: bool


def extend_for_payment(member: Member, card_type: str, months: int | None, reason: str, *,
                       today: date | None = None) -> Extension:
    """Move the membership's valid-until on by ``months`` (None: for life) from the later of today and the expiry.

    The current card (active, in grace or expired) is renewed, taking the
    paid tier's card type; a member without a usable card gets a new one. A
    suspended or revoked card is refused (staff decide on it first), as is a
    member who is not active: the caller makes them active before this.
    """
    today = today or date.today()
    card_type = check_card_type(card_type)
    if member.status != "active" or member.is_deleted:
        raise ServiceError(f"{member.full_name} is {member.status}: the payment waits for staff.", status=409)
    card = current_card(member)
    if card is not None and card.status == "suspended":
        raise ServiceError(f"Card {card.card_number} is suspended: staff must reactivate or revoke it first.",
                           status=409)
    usable = card is not None and card.status in ("active", "expired")
    if not usable:
        _retire_expired_current(None, member, today)
        new = issue_card(None, member, card_type, reason=reason, months=months, today=today)
        return Extension(new, None, new.expires_on, True)
    assert card is not None
    before = card.expires_on
    if card.card_type == "lifetime":  # a lifetime member paying again stays a lifetime member
        card_type, months = "lifetime", None
    if months is None:
        after = None
    else:
        base = max(today, before) if before is not None else today
        after = add_months(base, months)
    previous_status = card.status
    card.card_type, card.expires_on, card.status, card.renewed_at = card_type, after, "active", utcnow()
    db.session.flush()
    _record(None, card, "renewed", previous_status, reason)
    return Extension(card, before, after, False)


def undo_extension(card: MembershipCard, back_to: date | None, reason: str) -> None:
    """Put a card's valid-until back where a refunded payment found it (its ``extended_from``)."""
    before = card.status
    card.expires_on = back_to
    db.session.flush()
    _record(None, card, "renewed", before, reason)

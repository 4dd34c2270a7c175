"""A card's life: its validity period and every change of its status.

Lifecycle (every transition writes a ``CardTransaction`` and an audit entry)::

    issue      -> active            (member must be active; one current card per member)
    renew      active/expired -> active, expiry moved on by the type's period
    suspend    active -> suspended
    reactivate suspended -> active  (member must be active)
    revoke     active/suspended/expired -> revoked (final)
    reissue    active -> revoked, and a new card (new number, same type and expiry)

A member's status drags their card along (``follow_member_status``, called by
``services.members.change_status``). Expiry needs no job to be correct: an
active card past its date *is* expired (``MembershipCard.effective_status``);
``expire_cards`` only writes that down (``flask cards expire``).
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import (
    CARD_STATUSES,
    CARD_TYPES,
    CardTransaction,
    Member,
    MembershipCard,
)
from app.models.base import utcnow
from app.models.cards import CURRENT_STATUSES
from app.security import authorize
from app.services import audit
from app.services.cards.numbers import next_card_numbers
from app.services.errors import ServiceError

# --- validity periods --------------------------------------------------------------------


def card_months(card_type: str) -> int | None:
    """Months a card of this type runs for; None for lifetime cards."""
    if card_type == "lifetime":
        return None
    months = {"standard": 12, "premium": 12}
    for part in str(current_app.config.get("CARD_MONTHS") or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() in months and value.strip().isdigit():
            months[key.strip()] = int(value.strip())
    return months[card_type]


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (31 Jan + 1 month is 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def check_card_type(card_type: str) -> str:
    card_type = (card_type or "standard").strip().lower()
    if card_type not in CARD_TYPES:
        raise ServiceError(f"Unknown card type '{card_type}'. Use one of: {', '.join(CARD_TYPES)}.",
                           field="card_type")
    return card_type


# --- lifecycle ---------------------------------------------------------------------------


def _check_scope(actor, obj: Member | MembershipCard, permission: str) -> None:
    """The one authority decides: out of reach is NotFound, in reach without the right Forbidden."""
    authorize(actor, permission, obj, message="You may not issue or change cards here.")


def check_member_active(member: Member, doing: str) -> None:
    if member.is_deleted:
        raise ServiceError(f"{member.full_name} has been deleted; restore them before {doing}.",
                           field="member_id", status=409)
    if member.status != "active":
        raise ServiceError(
            f"{member.full_name} is {member.status}: only active members can have cards ({doing} refused).",
            field="member_id", status=409,
        )


def _record(actor, card: MembershipCard, kind: str, from_status: str | None, reason: str) -> CardTransaction:
    member = card.member
    entry = CardTransaction(card=card, type=kind, from_status=from_status, to_status=card.status,
                            reason=reason, expires_on=card.expires_on, actor_id=getattr(actor, "id", None))
    db.session.add(entry)
    db.session.flush()
    changes: dict[str, Any] = {"status": {"before": from_status, "after": card.status}}
    if reason:
        changes["reason"] = reason
    audit.record(actor, f"card.{kind}", card, unit_id=member.unit_id, changes=changes,
                 summary=f"Card {card.card_number} of {member.full_name}: {kind}" + (f" ({reason})" if reason else ""))
    return entry


def _reason(reason: str | None, required: bool, what: str) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ServiceError(f"Give a reason to {what} the card.", field="reason")
    if len(reason) > 1000:
        raise ServiceError("The reason is too long (1000 characters at most).", field="reason")
    return reason


def current_card(member: Member) -> MembershipCard | None:
    """The member's current card (active or suspended), else their latest card, else None."""
    cards = db.session.scalars(
        select(MembershipCard).where(MembershipCard.member_id == member.id).order_by(MembershipCard.id.desc())
    ).all()
    for card in cards:
        if card.status in CURRENT_STATUSES:
            return card
    return cards[0] if cards else None


def _retire_expired_current(actor, member: Member, today: date) -> None:
    """Write down the expiry of a current card that has run out, freeing the member for a new one."""
    for card in db.session.scalars(
        select(MembershipCard).where(MembershipCard.member_id == member.id,
                                     MembershipCard.status.in_(CURRENT_STATUSES))
    ):
        if card.status == "active" and card.effective_status(today) == "expired":
            card.status = "expired"
            _record(None, card, "expired", "active", "Expiry date passed")
            continue
        raise ServiceError(
            f"{member.full_name} already has {'an' if card.status == 'active' else 'a'} {card.status} card "
            f"({card.card_number}): "
            + ("renew or reissue it instead." if card.status == "active" else "reactivate or revoke it first."),
            field="member_id", status=409,
        )


def issue_card(actor, member: Member, card_type: str = "standard", *, reason: str = "") -> MembershipCard:
    """A new active card for an active member who has no current card."""
    return issue_cards(actor, [member], card_type, reason=reason)[0]


def issue_cards(actor, members: Iterable[Member], card_type: str = "standard", *,
                reason: str = "") -> list[MembershipCard]:
    """New cards for several members at once (numbers allocated in one block)."""
    card_type = check_card_type(card_type)
    members = list(members)
    today = date.today()
    for member in members:
        _check_scope(actor, member, "cards.create")
        check_member_active(member, "issuing a card")
        _retire_expired_current(actor, member, today)
    numbers = next_card_numbers(today.year, len(members)) if members else []
    months = card_months(card_type)
    cards = []
    for member, number in zip(members, numbers):
        card = MembershipCard(
            member=member, card_number=number, card_type=card_type, status="active", issued_on=today,
            expires_on=add_months(today, months) if months else None,
            issued_by_id=getattr(actor, "id", None), issued_at=utcnow(),
        )
        db.session.add(card)
        cards.append(card)
    db.session.flush()
    for card in cards:
        _record(actor, card, "issued", None, reason.strip())
    return cards


def renew_card(actor, card: MembershipCard, reason: str = "", *, today: date | None = None) -> MembershipCard:
    """Extend an active or expired card by its type's period, from the later of today and its expiry."""
    today = today or date.today()
    member = card.member
    _check_scope(actor, card, "cards.update")
    status = card.effective_status(today)
    if card.card_type == "lifetime":
        raise ServiceError(f"{card.card_number} is a lifetime card: it never expires.", status=409)
    if status not in ("active", "expired"):
        raise ServiceError(f"{card.card_number} is {status}: only active or expired cards can be renewed.",
                           field="status", status=409)
    check_member_active(member, "renewing the card")
    months = card_months(card.card_type)
    assert months is not None
    base = max(today, card.expires_on) if card.expires_on else today
    before = card.status
    card.expires_on = add_months(base, months)
    card.status = "active"
    card.renewed_at = utcnow()
    db.session.flush()
    _record(actor, card, "renewed", before, _reason(reason, False, "renew"))
    return card


def _transition(actor, card: MembershipCard, kind: str, allowed: tuple[str, ...], to_status: str,
                reason: str) -> MembershipCard:
    if card.status not in allowed:
        raise ServiceError(
            f"Card {card.card_number} is {card.effective_status()}, so it cannot be {kind}: "
            f"only {' or '.join(allowed)} cards can.",
            field="status", status=409,
        )
    before = card.status
    card.status = to_status
    db.session.flush()
    _record(actor, card, kind, before, reason)
    return card


def suspend_card(actor, card: MembershipCard, reason: str) -> MembershipCard:
    """Take an active card out of use for now (it verifies as suspended)."""
    _check_scope(actor, card, "cards.update")
    return _transition(actor, card, "suspended", ("active",), "suspended", _reason(reason, True, "suspend"))


def reactivate_card(actor, card: MembershipCard, reason: str) -> MembershipCard:
    """Put a suspended card back in use; its member must be active."""
    _check_scope(actor, card, "cards.update")
    if card.status == "suspended":
        check_member_active(card.member, "reactivating the card")
    return _transition(actor, card, "reactivated", ("suspended",), "active", _reason(reason, True, "reactivate"))


def revoke_card(actor, card: MembershipCard, reason: str) -> MembershipCard:
    """End a card for good (it verifies as revoked)."""
    _check_scope(actor, card, "cards.update")
    return _transition(actor, card, "revoked", ("active", "suspended", "expired"), "revoked",
                       _reason(reason, True, "revoke"))


def reissue_card(actor, card: MembershipCard, reason: str) -> MembershipCard:
    """Replace a lost or damaged card: the old one is revoked, the new one has a new number."""
    member = card.member
    _check_scope(actor, card, "cards.create")
    reason = _reason(reason, True, "reissue")
    status = card.effective_status()
    if status != "active":
        hint = " Renew it first." if status == "expired" else ""
        raise ServiceError(f"Card {card.card_number} is {status}: only an active card can be reissued.{hint}",
                           field="status", status=409)
    check_member_active(member, "reissuing the card")
    card.status = "revoked"
    db.session.flush()  # frees the member's "one current card" slot before the new card goes in
    number = next_card_numbers(date.today().year)[0]
    new = MembershipCard(
        member=member, card_number=number, card_type=card.card_type, status="active", issued_on=date.today(),
        expires_on=card.expires_on, issued_by_id=getattr(actor, "id", None), issued_at=utcnow(), replaces=card,
    )
    db.session.add(new)
    db.session.flush()
    _record(actor, card, "revoked", "active", f"Replaced by {new.card_number}: {reason}")
    _record(actor, new, "reissued", None, f"Replaces {card.card_number}: {reason}")
    return new


def change_card_status(actor, card: MembershipCard, status: str, reason: str) -> MembershipCard:
    """Move a card to ``status`` (active, suspended or revoked) through the matching transition."""
    status = (status or "").strip().lower()
    if status == card.status:
        return card
    if status == "suspended":
        return suspend_card(actor, card, reason)
    if status == "active":
        return reactivate_card(actor, card, reason)
    if status == "revoked":
        return revoke_card(actor, card, reason)
    if status in CARD_STATUSES:
        raise ServiceError(f"A card becomes {status} by itself, not on request.", field="status", status=409)
    raise ServiceError(f"Unknown card status '{status}'. Use active, suspended or revoked.", field="status")


def follow_member_status(actor, member: Member, old: str, new: str, reason: str) -> None:
    """Make the member's current card follow a change of their status.

    suspended -> card suspended; suspended -> active: a suspended card is
    reactivated; expelled, deceased or resigned -> card revoked. The change
    of status is what the actor was allowed to do, so no card permission is
    needed here.
    """
    follow_member_statuses(actor, {member.id: new}, reason)


def follow_member_statuses(actor, new_statuses: dict[int, str], reason: str) -> None:
    """``follow_member_status`` for many members at once (imports): one query finds their current cards."""
    cards = db.session.scalars(
        select(MembershipCard).where(MembershipCard.member_id.in_(list(new_statuses)),
                                     MembershipCard.status.in_(CURRENT_STATUSES))
    ).all() if new_statuses else []
    for card in cards:
        new = new_statuses[card.member_id]
        why = f"Member {new}: {reason}" if reason else f"Member {new}"
        if new == "suspended" and card.status == "active":
            _transition(actor, card, "suspended", ("active",), "suspended", why)
        elif new == "active" and card.status == "suspended":
            _transition(actor, card, "reactivated", ("suspended",), "active", why)
        elif new in ("expelled", "deceased", "resigned"):
            _transition(actor, card, "revoked", CURRENT_STATUSES, "revoked", why)


def expire_cards(today: date | None = None, batch: int = 1000) -> int:
    """Mark active cards past their expiry date as expired; returns how many."""
    today = today or date.today()
    count = 0
    while True:
        cards = db.session.scalars(
            select(MembershipCard)
            .where(MembershipCard.status == "active", MembershipCard.expires_on < today)
            .order_by(MembershipCard.id).limit(batch)
        ).all()
        if not cards:
            return count
        for card in cards:
            card.status = "expired"
            _record(None, card, "expired", "active", "Expiry date passed")
        db.session.flush()
        count += len(cards)


def status_clause(status: str, today: date | None = None) -> ColumnElement[bool]:
    """Cards whose effective status is ``status`` (an active card past its expiry is expired)."""
    today = today or date.today()
    not_expired = or_(MembershipCard.expires_on.is_(None), MembershipCard.expires_on >= today)
    if status == "active":
        return and_(MembershipCard.status == "active", not_expired)
    if status == "expired":
        return or_(MembershipCard.status == "expired",
                   and_(MembershipCard.status == "active", MembershipCard.expires_on < today))
    return MembershipCard.status == status

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
active card past its date is first *in grace* for CARD_GRACE_DAYS (it still
verifies, admits and renews), then *is* expired
(``MembershipCard.effective_status``, derived from the dates); ``expire_cards``
only writes that down, in set-based statements (the ``cards.expire`` sweep of
``app.services.lifecycle`` and ``flask cards expire``).

Changes nobody decided carry the internal name of the rule that made them
(``RULE_*`` below, in ``rule`` of the card transaction or member status
change and in the audit entry's changes): renewal reactivates a member only
when the rule lapsed them, never one a person marked lapsed.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import String, and_, cast, func, literal, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import (
    CARD_STATUSES,
    CARD_TYPES,
    AuditEntry,
    CardTransaction,
    Member,
    MembershipCard,
    MemberStatusChange,
)
from app.models.base import utcnow
from app.models.cards import CURRENT_STATUSES, grace_days
from app.security import authorize
from app.services import audit, notifications
from app.services.cards.numbers import next_card_numbers
from app.services.errors import ServiceError

# The status rules, by internal name (stored in ``rule``; labels shown to people may change).
RULE_PAST_GRACE = "card.past_grace"  # an active card past its expiry date and grace period expires
RULE_LAPSED = "member.lapsed_after_grace"  # an active member whose latest card expired past grace lapses
RULE_RENEWED = "member.renewed"  # renewing the card of a member the rule lapsed makes them active again


def past_grace_reason(grace: int) -> str:
    """The sentence that names the expiry rule in transactions, status changes and the audit log."""
    return f"rule {RULE_PAST_GRACE}: card expired past {grace}-day grace"


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


def _record(actor, card: MembershipCard, kind: str, from_status: str | None, reason: str,
            rule: str | None = None) -> CardTransaction:
    member = card.member
    entry = CardTransaction(card=card, type=kind, from_status=from_status, to_status=card.status,
                            reason=reason, expires_on=card.expires_on, actor_id=getattr(actor, "id", None),
                            rule=rule)
    db.session.add(entry)
    db.session.flush()
    changes: dict[str, Any] = {"status": {"before": from_status, "after": card.status}}
    if reason:
        changes["reason"] = reason
    if rule:
        changes["rule"] = rule
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
            _record(None, card, "expired", "active", past_grace_reason(grace_days()), RULE_PAST_GRACE)
            continue
        raise ServiceError(
            f"{member.full_name} already has {'an' if card.status == 'active' else 'a'} {card.status} card "
            f"({card.card_number}): "
            + ("renew or reissue it instead." if card.status == "active" else "reactivate or revoke it first."),
            field="member_id", status=409,
        )


_TYPE_PERIOD: Any = object()  # issue_cards' default: the card type's own validity period


def issue_card(actor, member: Member, card_type: str = "standard", *, reason: str = "",
               months: Any = _TYPE_PERIOD, today: date | None = None) -> MembershipCard:
    """A new active card for an active member who has no current card."""
    return issue_cards(actor, [member], card_type, reason=reason, months=months, today=today)[0]


def issue_cards(actor, members: Iterable[Member], card_type: str = "standard", *,
                reason: str = "", months: Any = _TYPE_PERIOD, today: date | None = None) -> list[MembershipCard]:
    """New cards for several members at once (numbers allocated in one block).

    ``months`` overrides the type's period (a paid tier's duration; None: for life).
    """
    card_type = check_card_type(card_type)
    members = list(members)
    today = today or date.today()
    for member in members:
        _check_scope(actor, member, "cards.create")
        check_member_active(member, "issuing a card")
        _retire_expired_current(actor, member, today)
    numbers = next_card_numbers(today.year, len(members)) if members else []
    if months is _TYPE_PERIOD:
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
    # The member's portal bell: one INSERT for the whole batch (print runs, the seed).
    notifications.notify_many(((c.member_id, f"Your membership card {c.card_number} was issued",
                                f"Valid until {c.expires_on:%d %B %Y}." if c.expires_on else "It does not expire.",
                                "/card") for c in cards), "card.issued")
    return cards


def lapsed_by_rule(member: Member) -> bool:
    """Is the member lapsed because the rule lapsed them (their latest status change names RULE_LAPSED)?"""
    if member.status != "lapsed":
        return False
    latest = db.session.execute(
        select(MemberStatusChange.to_status, MemberStatusChange.rule)
        .where(MemberStatusChange.member_id == member.id).order_by(MemberStatusChange.id.desc()).limit(1)
    ).first()
    return latest is not None and latest.to_status == "lapsed" and latest.rule == RULE_LAPSED


def _reactivate_renewed(actor, member: Member, card: MembershipCard) -> None:
    """RULE_RENEWED: the member the expiry rule lapsed is active again, with a status change and audit entry."""
    reason = f"rule {RULE_RENEWED}: card {card.card_number} renewed"
    member.status = "active"
    member.updated_by_id = getattr(actor, "id", None)
    db.session.add(MemberStatusChange(member=member, from_status="lapsed", to_status="active", reason=reason,
                                      rule=RULE_RENEWED, actor_id=getattr(actor, "id", None)))
    db.session.flush()
    audit.record(actor, "member.status", member, summary=f"{member.full_name}: lapsed -> active ({reason})",
                 changes={"status": {"before": "lapsed", "after": "active"}, "reason": reason,
                          "rule": RULE_RENEWED})


def renew_card(actor, card: MembershipCard, reason: str = "", *, today: date | None = None) -> MembershipCard:
    """Extend an active (also in grace) or expired card by its type's period, from the later of today and its expiry.

    A member the expiry rule lapsed (``lapsed_by_rule``) becomes active again
    (RULE_RENEWED); one a person marked lapsed, or any other inactive member, is refused.
    """
    today = today or date.today()
    member = card.member
    _check_scope(actor, card, "cards.update")
    status = card.effective_status(today)
    if card.card_type == "lifetime":
        raise ServiceError(f"{card.card_number} is a lifetime card: it never expires.", status=409)
    if status not in ("active", "expired"):
        raise ServiceError(f"{card.card_number} is {status}: only active or expired cards can be renewed.",
                           field="status", status=409)
    reactivate = lapsed_by_rule(member) and not member.is_deleted
    if not reactivate:
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
    if reactivate:
        _reactivate_renewed(actor, card.member, card)
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
    card = _transition(actor, card, "revoked", ("active", "suspended", "expired"), "revoked",
                       _reason(reason, True, "revoke"))
    notifications.notify(card.member, "card.revoked", f"Your membership card {card.card_number} was revoked",
                         "It is no longer valid. Contact your ward office if you think this is a mistake.", "/card")
    return card


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


def lock_matching_rows(table, where) -> None:
    """PostgreSQL: hold the rows ``where`` matches until commit, in one statement (SELECT count(*) FROM
    (SELECT id ... FOR UPDATE)), so the statements that follow see one set a renewal cannot change
    halfway. SQLite serialises writers: nothing to do (and a read first would cost the write lock)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.count()).select_from(
            select(table.c.id).where(where).with_for_update().subquery()))


def expire_loaded(*models: type) -> None:
    """Objects of ``models`` this session holds are stale after a Core UPDATE: reload them on next use."""
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, models):
            db.session.expire(obj)


def expire_cards(today: date | None = None, *, now: datetime | None = None) -> int:
    """RULE_PAST_GRACE: active cards past their expiry date and grace period become expired; how many.

    Set-based, whatever the number of cards: the card transactions and audit
    entries are written by INSERT ... SELECT, then one UPDATE changes the
    status; three statements (four on PostgreSQL, which locks the set first).
    Lifetime cards have no expiry date and never match. Running it again
    changes nothing and writes nothing. Flushes, never commits.
    """
    today = today or date.today()
    now = now or utcnow()
    grace = grace_days()
    reason = past_grace_reason(grace)
    db.session.flush()
    cards, members = MembershipCard.__table__, Member.__table__
    due = and_(cards.c.status == "active", cards.c.expires_on.is_not(None),
               cards.c.expires_on < today - timedelta(days=grace), cards.c.card_type != "lifetime")
    lock_matching_rows(cards, due)
    db.session.execute(CardTransaction.__table__.insert().from_select(
        ["card_id", "type", "from_status", "to_status", "reason", "expires_on", "rule", "actor_id", "created_at"],
        select(cards.c.id, literal("expired"), literal("active"), literal("expired"), literal(reason),
               cards.c.expires_on, literal(RULE_PAST_GRACE), literal(None, type_=cards.c.issued_by_id.type),
               literal(now, type_=CardTransaction.__table__.c.created_at.type)).where(due)))
    audit_table = AuditEntry.__table__
    changes = {"status": {"before": "active", "after": "expired"}, "reason": reason, "rule": RULE_PAST_GRACE}
    db.session.execute(audit_table.insert().from_select(
        ["at", "actor_id", "action", "object_type", "object_id", "unit_id", "summary", "changes"],
        select(literal(now, type_=audit_table.c.at.type), literal(None, type_=audit_table.c.actor_id.type),
               literal("card.expired"), literal("MembershipCard"), cast(cards.c.id, String), members.c.unit_id,
               literal("Card ") + cards.c.card_number + " of " + members.c.first_name + " " + members.c.last_name
               + f": expired ({reason})",
               literal(changes, type_=audit_table.c.changes.type))
        .select_from(cards.join(members, members.c.id == cards.c.member_id)).where(due)))
    count = db.session.execute(update(cards).where(due).values(status="expired")
                               .execution_options(synchronize_session=False)).rowcount or 0
    if count:
        expire_loaded(MembershipCard)
    return count


def status_clause(status: str, today: date | None = None) -> ColumnElement[bool]:
    """Cards whose effective status is ``status`` (an active card past its expiry and grace is expired).

    ``grace`` is the part of ``active`` past its expiry date (``MembershipCard.in_grace``).
    """
    today = today or date.today()
    cutoff = today - timedelta(days=grace_days())
    not_expired = or_(MembershipCard.expires_on.is_(None), MembershipCard.expires_on >= cutoff)
    if status == "active":
        return and_(MembershipCard.status == "active", not_expired)
    if status == "grace":
        return and_(MembershipCard.status == "active", MembershipCard.expires_on < today,
                    MembershipCard.expires_on >= cutoff)
    if status == "expired":
        return or_(MembershipCard.status == "expired",
                   and_(MembershipCard.status == "active", MembershipCard.expires_on < cutoff))
    return MembershipCard.status == status

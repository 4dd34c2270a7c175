"""Membership cards: numbers, lifecycle, and the signed credential in the QR code.

Card numbers look like ``M-2026-000123-4``: a configurable prefix, the year
of issue, a six-digit sequence per year (from the ``counters`` table, so
unique under concurrent issuance) and a Luhn check digit over the digits, so
a mistyped number is caught (``parse_card_number``).

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

The credential (``card_token``) is a compact binary payload -- format
version, key id, card number, expiry date; no personal data -- signed with
Ed25519 and written in base64url. ``verify_token`` checks the signature
first and the register second, so a revoked card with a perfect signature is
reported revoked. It never raises on bad input.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
import struct
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from flask import current_app
from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.elements import ColumnElement

from app.config import DEFAULT_PUBLIC_URL
from app.extensions import db
from app.models import CARD_STATUSES, CARD_TYPES, CardTransaction, Member, MembershipCard
from app.models.base import utcnow
from app.models.cards import CURRENT_STATUSES
from app.security import authorize
from app.services import audit, card_keys
from app.services.counters import allocate
from app.services.errors import ServiceError

__all__ = [
    "CardNumberError", "Verification", "card_token", "verify_token", "issue_card", "issue_cards", "renew_card",
    "suspend_card", "reactivate_card", "revoke_card", "reissue_card", "change_card_status", "follow_member_status",
    "follow_member_statuses", "expire_cards", "current_card", "parse_card_number", "verification_url", "luhn_digit",
    "scanned_token",
]

PREFIX_RE = re.compile(r"^[A-Z0-9]{1,8}$")
CARD_NUMBER_RE = re.compile(r"^([A-Z0-9]{1,8})-(\d{4})-(\d{6,9})-(\d)$")
VERIFY_STATUSES = ("valid", "expired", "suspended", "revoked", "unknown", "invalid")


# --- card numbers ------------------------------------------------------------------------


class CardNumberError(ServiceError):
    """A card number that is malformed or whose check digit does not match."""


def luhn_digit(digits: str) -> int:
    """The Luhn check digit for a string of digits (the one credit cards use)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # doubled: the rightmost payload digit sits next to the check digit
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def format_card_number(prefix: str, year: int, seq: int) -> str:
    digits = f"{year:04d}{seq:06d}"
    return f"{prefix}-{year:04d}-{seq:06d}-{luhn_digit(digits)}"


def parse_card_number(text: str) -> tuple[str, int, int]:
    """(prefix, year, sequence) of a typed card number; CardNumberError says what is wrong.

    Spaces and case are forgiven ("m-2026-000123-4"); a wrong check digit is
    reported as a probable typing mistake.
    """
    value = re.sub(r"\s+", "", str(text or "")).upper()
    match = CARD_NUMBER_RE.match(value)
    if match is None:
        raise CardNumberError(f"'{text}' is not a card number (they look like M-2026-000123-4).",
                              field="card_number")
    prefix, year, seq, check = match.groups()
    if luhn_digit(year + seq) != int(check):
        raise CardNumberError(
            f"{value} has a wrong check digit: the number was probably mistyped.", field="card_number"
        )
    return prefix, int(year), int(seq)


def normalize_card_number(text: str) -> str:
    prefix, year, seq = parse_card_number(text)
    return format_card_number(prefix, year, seq)


def card_prefix() -> str:
    prefix = str(current_app.config.get("CARD_NUMBER_PREFIX") or "M").strip().upper()
    if not PREFIX_RE.match(prefix):
        raise ServiceError("CARD_NUMBER_PREFIX must be 1-8 capital letters or digits.")
    return prefix


def next_card_numbers(year: int, count: int = 1) -> list[str]:
    """Fresh, unique card numbers for cards issued in ``year``."""
    first = allocate(f"card_number:{year}", count)
    prefix = card_prefix()
    return [format_card_number(prefix, year, n) for n in range(first, first + count)]


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


# --- the signed credential ---------------------------------------------------------------

TOKEN_VERSION = 1
_SIGNING_CONTEXT = b"muster-card\x00"  # domain separation: these signatures mean "card credential"
_EPOCH = date(2000, 1, 1)
_SIGNATURE_BYTES = 64
_HEAD = struct.Struct(">B4sB")  # version, key id, prefix length
_TAIL = struct.Struct(">HIH")  # year, sequence, expiry (days since 1999-12-31; 0 = never)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,200}$")


class InvalidToken(Exception):
    """Not one of our credentials: malformed, truncated, tampered with, or signed by another key."""


@dataclass(frozen=True)
class Credential:
    """What a verified token says."""

    version: int
    key_id: str
    card_number: str
    expires_on: date | None


def _payload(card_number: str, expires_on: date | None, kid: bytes) -> bytes:
    prefix, year, seq = parse_card_number(card_number)
    days = 0 if expires_on is None else (expires_on - _EPOCH).days + 1
    return _HEAD.pack(TOKEN_VERSION, kid, len(prefix)) + prefix.encode("ascii") + _TAIL.pack(year, seq, days)


def card_token(card: MembershipCard) -> str:
    """The signed credential for a card, as it goes in the QR code (URL-safe, ~106 characters)."""
    key = card_keys.signing_key()
    payload = _payload(card.card_number, card.expires_on, key.kid)
    signature = key.private_key.sign(_SIGNING_CONTEXT + payload)  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(payload + signature).rstrip(b"=").decode("ascii")


def decode_token(token: Any) -> Credential:
    """Check a token's form and signature; InvalidToken says why it is not acceptable."""
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        raise InvalidToken("This is not a membership card code.")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("This is not a membership card code.") from None
    # Only the canonical spelling is accepted: no padding, no stray trailing bits.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise InvalidToken("This card code has been altered.")
    if len(raw) < _HEAD.size + 1 + _TAIL.size + _SIGNATURE_BYTES:
        raise InvalidToken("This card code is incomplete.")
    version, kid, prefix_len = _HEAD.unpack_from(raw)
    if version != TOKEN_VERSION:
        raise InvalidToken("This card code has a format this system does not know.")
    if len(raw) != _HEAD.size + prefix_len + _TAIL.size + _SIGNATURE_BYTES or not 1 <= prefix_len <= 8:
        raise InvalidToken("This card code is incomplete or altered.")
    payload, signature = raw[:-_SIGNATURE_BYTES], raw[-_SIGNATURE_BYTES:]
    public_key = card_keys.public_key_for(kid)
    if public_key is None:
        raise InvalidToken("This card code was not signed by this organisation (or its key has been retired).")
    try:
        public_key.verify(signature, _SIGNING_CONTEXT + payload)
    except InvalidSignature:
        raise InvalidToken("This card code's signature does not match: it is forged or altered.") from None
    # Signed by us, so well formed; checked anyway rather than trusted.
    prefix = payload[_HEAD.size:_HEAD.size + prefix_len].decode("ascii", "replace")
    year, seq, days = _TAIL.unpack_from(payload, _HEAD.size + prefix_len)
    if not PREFIX_RE.match(prefix):
        raise InvalidToken("This card code is malformed.")
    expires_on = None if days == 0 else _EPOCH + timedelta(days=days - 1)
    return Credential(version, kid.hex(), format_card_number(prefix, year, seq), expires_on)


class Verification:
    """The verdict on a scanned code (the shape agreed with the door check-in).

    Attributes: ``status`` ("valid", "expired", "suspended", "revoked",
    "unknown" or "invalid"), ``card`` and ``member`` (None when unknown or
    invalid), ``message`` (one sentence for people), plus ``card_number``
    and ``expires_on`` from the code or the register, and ``card_id`` and
    ``member_id`` (None when unknown or invalid). ``card`` and ``member``
    are loaded from the session on first access: deciding the status needs
    one narrow indexed row, and callers that only want the status (the
    public API) never pay for the two ORM objects.
    """

    __slots__ = ("status", "message", "card_number", "expires_on", "_card", "_member", "card_id", "member_id")

    def __init__(self, status: str, card: MembershipCard | None = None, member: Member | None = None,
                 message: str = "", card_number: str | None = None, expires_on: date | None = None, *,
                 card_id: int | None = None, member_id: int | None = None) -> None:
        self.status = status
        self.message = message
        self.card_number = card_number
        self.expires_on = expires_on
        self._card, self._member = card, member
        self.card_id = card_id if card_id is not None else getattr(card, "id", None)
        self.member_id = member_id if member_id is not None else getattr(member, "id", None)

    @property
    def card(self) -> MembershipCard | None:
        if self._card is None and self.card_id is not None:
            self._card = db.session.get(MembershipCard, self.card_id)
        return self._card

    @property
    def member(self) -> Member | None:
        if self._member is None and self.member_id is not None:
            self._member = db.session.get(Member, self.member_id)
        return self._member

    @property
    def ok(self) -> bool:
        return self.status == "valid"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verification):
            return NotImplemented
        return (self.status, self.card_id, self.member_id, self.message, self.card_number, self.expires_on) == (
            other.status, other.card_id, other.member_id, other.message, other.card_number, other.expires_on)

    def __repr__(self) -> str:
        return f"Verification(status={self.status!r}, card_number={self.card_number!r}, message={self.message!r})"


# One narrow row through the card_number unique index: all a verdict needs.
_VERIFY_ROW = (
    select(MembershipCard.id, MembershipCard.member_id, MembershipCard.status, MembershipCard.expires_on,
           Member.deleted_at)
    .join(Member, Member.id == MembershipCard.member_id)
    .where(MembershipCard.card_number == bindparam("number"))
)
# The door's variant (``with_member``): the same row with the member and its unit as ORM objects,
# which the check-in needs anyway (area, standing, the answer), in the same statement.
_VERIFY_ROW_WITH_MEMBER = (
    select(MembershipCard.id, MembershipCard.status, MembershipCard.expires_on, Member)
    .join(Member, Member.id == MembershipCard.member_id)
    .options(joinedload(Member.unit))
    .where(MembershipCard.card_number == bindparam("number"))
)


MAX_SCAN_CHARS = 2048  # far more than any QR code on a card holds


def scanned_token(raw: Any) -> str:
    """The credential in what was scanned or typed: a bare code, or the URL printed in the card's QR.

    ``https://<host>/<any path>/verify/<code>`` (with or without a query,
    fragment or trailing slash) and ``/verify/<code>`` give ``<code>``; other
    text comes back trimmed (of spaces, a query or a trailing slash). A URL
    with no code after ``/verify/``, anything that is not text, and text
    longer than MAX_SCAN_CHARS give "", which ``verify_token`` calls invalid.
    The verification page, the verify API and the door check-in all read
    scans through here.
    """
    if not isinstance(raw, str) or len(raw) > MAX_SCAN_CHARS:
        return ""
    text = raw.strip().split("#", 1)[0].split("?", 1)[0].rstrip("/")  # a code holds none of # ? /
    if "://" not in text and not text.startswith("/"):
        return text
    _, found, code = text.rpartition("/verify/")
    return code if found and "/" not in code else ""


def verify_token(token: str, *, today: date | None = None, with_member: bool = False) -> Verification:
    """What a scanned code is worth: signature first, then the register. Never raises on bad input.

    ``with_member`` loads the card's member (with the unit) in the same query, for callers that
    need the person too (the door check-in); otherwise ``Verification.member`` loads on first use.
    """
    try:
        credential = decode_token(token)
    except InvalidToken as exc:
        return Verification("invalid", None, None, str(exc))
    number = credential.card_number
    member = None
    if with_member:
        found = db.session.execute(_VERIFY_ROW_WITH_MEMBER, {"number": number}).first()
        if found is not None:
            card_id, stored, expires, member = found
            member_id, deleted_at = member.id, member.deleted_at
    else:
        # A Core query on the session's connection: the ORM's per-query overhead would be
        # most of the verification's time (see bench/cards.py). It sees the session's
        # pending changes once flushed, like any query.
        db.session.flush()
        found = db.session.connection().execute(_VERIFY_ROW, {"number": number}).first()
        if found is not None:
            card_id, member_id, stored, expires, deleted_at = found
    if found is None:
        return Verification("unknown", None, None, f"Card {number} is not in the membership register.",
                            number, credential.expires_on)
    status = stored
    if stored == "active" and expires is not None and expires < (today or date.today()):
        status = "expired"
    if deleted_at is not None:
        status = "revoked"
    ids = {"card_id": card_id, "member_id": member_id}
    if status == "active":
        message = (f"Card {number} is valid until {expires.isoformat()}." if expires
                   else f"Card {number} is a valid lifetime card.")
        return Verification("valid", None, member, message, number, expires, **ids)
    if status == "expired":
        message = f"Card {number} expired on {expires.isoformat()}." if expires else f"Card {number} has expired."
    elif status == "suspended":
        message = f"Card {number} is suspended."
    else:
        message = f"Card {number} has been revoked."
    return Verification(status, None, member, message, number, expires, **ids)


def verification_url(card: MembershipCard, base_url: str | None = None) -> str:
    """The URL a phone opens from the card's QR code: <public URL>/verify/<token>."""
    return verify_base_url(base_url) + card_token(card)


def verify_base_url(base_url: str | None = None) -> str:
    """``<public URL>/verify/``: the given base, else MUSTER_PUBLIC_URL.

    Never the request's Host header: anyone can send any Host, and what is
    printed on a card or mailed must point at the real site.
    """
    base = (base_url or current_app.config.get("PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
    return f"{base}/verify/"

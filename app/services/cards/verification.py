"""What a scanned code is worth (``verify_token``): the signature first, the register second.

So a revoked card with a perfect signature is reported revoked. It never
raises on bad input. The verdict (``Verification``) is decided from one narrow
indexed row; the card and member behind it load only when asked for.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload, load_only

from app.extensions import db
from app.models import Member, MembershipCard
from app.models.cards import grace_days
from app.services.cards.tokens import InvalidToken, decode_token

# "grace": past its expiry date but within CARD_GRACE_DAYS; still the holder's card, admitted at the
# door with the verdict shown (app/services/events/checkin.py), renewable.
VERIFY_STATUSES = ("valid", "grace", "expired", "suspended", "revoked", "unknown", "invalid")


class Verification:
    """The verdict on a scanned code (the shape agreed with the door check-in).

    Attributes: ``status`` ("valid", "grace", "expired", "suspended", "revoked",
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


# One narrow row through the card_number unique index: all a verdict needs (public: bench/cards.py
# times the lookup alone).
VERIFY_ROW = (
    select(MembershipCard.id, MembershipCard.member_id, MembershipCard.status, MembershipCard.expires_on,
           Member.deleted_at)
    .join(Member, Member.id == MembershipCard.member_id)
    .where(MembershipCard.card_number == bindparam("number"))
)
# The door's variant (``with_member``): the same row with the member and its unit as ORM objects,
# which the check-in needs anyway (area, standing, the answer), in the same statement. Only the
# member's columns the door reads; any other loads on first use.
_VERIFY_ROW_WITH_MEMBER = (
    select(MembershipCard.id, MembershipCard.status, MembershipCard.expires_on, Member)
    .join(Member, Member.id == MembershipCard.member_id)
    .options(load_only(Member.id, Member.membership_number, Member.first_name, Member.last_name, Member.status,
                       Member.unit_id, Member.deleted_at), joinedload(Member.unit))
    .where(MembershipCard.card_number == bindparam("number"))
)


def verify_token(token: str, *, today: date | None = None, with_member: bool = False) -> Verification:
    """What a scanned code is worth: signature first, then the register. Never raises on bad input.

    ``with_member`` loads the card's member (with the unit) in the same query, for callers that
    need the person too (the door check-in); otherwise ``Verification.member`` loads on first use.
    """
    try:
        credential = decode_token(token)
    except InvalidToken as exc:
        return Verification("invalid", None, None, str(exc))
    return verify_card_number(credential.card_number, today=today, with_member=with_member,
                              code_expires_on=credential.expires_on)


def verify_card_number(number: str, *, today: date | None = None, with_member: bool = False,
                       code_expires_on: date | None = None) -> Verification:
    """The register's verdict on a card number (canonical form, ``normalize_card_number``).

    ``verify_token`` ends here once the signature holds, so a scanned code and a number typed on
    the public verification page get one verdict from one place. A number alone proves nothing
    about who holds the card: callers showing the holder should require the signed code.
    ``code_expires_on`` is the expiry the code claims, shown for a card the register does not know.
    """
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
        found = db.session.connection().execute(VERIFY_ROW, {"number": number}).first()
        if found is not None:
            card_id, member_id, stored, expires, deleted_at = found
    if found is None:
        return Verification("unknown", None, None, f"Card {number} is not in the membership register.",
                            number, code_expires_on)
    status = stored
    today = today or date.today()
    grace_ends = expires + timedelta(days=grace_days()) if expires is not None else None
    if stored == "active" and expires is not None and expires < today:
        status = "grace" if today <= grace_ends else "expired"
    if deleted_at is not None:
        status = "revoked"
    ids = {"card_id": card_id, "member_id": member_id}
    if status == "active":
        message = (f"Card {number} is valid until {expires.isoformat()}." if expires
                   else f"Card {number} is a valid lifetime card.")
        return Verification("valid", None, member, message, number, expires, **ids)
    if status == "grace":
        message = (f"Card {number} expired on {expires.isoformat()} and is in grace until "
                   f"{grace_ends.isoformat()}: still valid, renew it before then.")
    elif status == "expired":
        message = f"Card {number} expired on {expires.isoformat()}." if expires else f"Card {number} has expired."
    elif status == "suspended":
        message = f"Card {number} is suspended."
    else:
        message = f"Card {number} has been revoked."
    return Verification(status, None, member, message, number, expires, **ids)

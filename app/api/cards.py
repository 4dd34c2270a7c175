"""Membership cards: list, issue, read, change status, revoke, reissue, renew, QR, PDF, verify.

Thin views over ``app.services.cards``. A card's unit is its member's unit,
so the scope helper confines cards exactly like members (``cards.read`` to
see, ``cards.create`` to issue or reissue, ``cards.update`` to renew,
suspend, reactivate or revoke); a card outside your area answers 404.
``POST /cards/verify`` is public (no token) and rate limited, like the
verification page its QR codes open.

The card models below are the cards' one schema: validation, answers and
the document's ``Card*`` components.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from flask import Response, current_app, url_for
from pydantic import Field, StringConstraints
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement

from app import models
from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.schema import (
    Body, Choice, Id, Out, OutId, Page, PageQuery, Query, QueryChoice, QueryDate, QueryId, QueryList,
    QueryText, Text, Timestamp, UserRef,
)
from app.api.serialize import page_of
from app.api.spec import BINARY, Content, operation
from app.extensions import db, limiter
from app.models import CARD_STATUSES, CARD_TYPES
from app.models.cards import CARD_TRANSACTION_TYPES
from app.security import load_for, scoped, subtree_unit_ids
from app.services import card_pdf
from app.services import cards as card_service
from app.services import self_service
from app.services.errors import ServiceError

VERBS = {"cards.update": "change", "cards.create": "reissue"}
MAX_REASON = 1000  # services.cards checks the same
# A reason in the URL (DELETE /cards/{id}?reason=): short enough that even 4-byte characters, percent-encoded,
# fit in the request line the server accepts (about 4 KB, else 414); a longer one goes in the body.
MAX_QUERY_REASON = 300
VERDICTS = ("valid", "grace", "expired", "suspended", "revoked", "unknown", "invalid")


# --- schemas -----------------------------------------------------------------------------

CardNumber = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,8}-\d{4}-\d{6,9}-\d$"), Field(
    examples=["M-2026-000123-4"], description="PREFIX-YYYY-NNNNNN-C; C is the Luhn check digit over the digits.")]
Reason = Text(MAX_REASON)
RequiredReason = Text(MAX_REASON, min_length=1)


class CardTransaction(Out):
    type: Choice(CARD_TRANSACTION_TYPES)
    from_status: Choice(CARD_STATUSES) | None
    to_status: Choice(CARD_STATUSES)
    reason: str
    expires_on: date | None = Field(description="The card's expiry after this transition.")
    actor: UserRef | None
    at: Timestamp = Field(validation_alias="created_at")


class Card(Out):
    id: OutId
    card_number: CardNumber
    member_id: OutId
    unit_id: OutId = Field(description="The member's unit (what scopes the card).")
    status: Choice(CARD_STATUSES) = Field(description=(
        "As of today: an active card past its expiry date and grace period (MUSTER_GRACE_DAYS) is expired."))
    card_type: Choice(CARD_TYPES)
    issued_on: date
    expires_on: date | None = Field(description="null for lifetime cards.")
    issued_by: UserRef | None
    issued_at: Timestamp
    renewed_at: Timestamp | None
    replaces_id: OutId | None = Field(description="The card this one replaced (reissue).")

    @classmethod
    def values_of(cls, card: models.MembershipCard) -> dict[str, Any]:
        """The card's fields; its unit is its member's and its status the one of today."""
        return {**{key: getattr(card, key) for key in (
            "id", "card_number", "member_id", "card_type", "issued_on", "expires_on", "issued_by", "issued_at",
            "renewed_at", "replaces_id")}, "unit_id": card.member.unit_id, "status": card.effective_status()}

    @classmethod
    def of(cls, card: models.MembershipCard) -> Any:
        return cls.model_validate(cls.values_of(card))


class CardDetail(Card):
    """A card with its history (single-card answers)."""

    transactions: list[CardTransaction] = Field(description="Newest first.")

    @classmethod
    def values_of(cls, card: models.MembershipCard) -> dict[str, Any]:
        return {**super().values_of(card), "transactions": card.transactions}


class CardPage(Page):
    items: list[Card]


class CardCreate(Body):
    messages = {"member_id": "Give the member_id of the member to issue the card to."}

    member_id: Id = Field(description="An active member in your cards.create area without a current card.")
    card_type: Choice(CARD_TYPES) = "standard"
    reason: Reason | None = None


class CardStatusChange(Body):
    status: Choice(CARD_STATUSES) = Field(description=(
        "suspended (from active), active (reactivates a suspended card) or revoked; any other change is "
        "a 409."))
    reason: RequiredReason = Field(description="Why (shown in the card's history).")


class CardReason(Body):
    reason: Reason | None = None


class CardReissue(Body):
    reason: RequiredReason = Field(description="Why the card is replaced (lost, damaged...).")


class CardVerifyRequest(Body):
    messages = {"token": "Give the code in the card's QR: the URL it holds, or its last part."}

    token: Annotated[str, Field(min_length=1, description=(
        "What the card's QR code holds: its verification URL, or the credential alone (the URL's last path "
        "segment). Anything else, of any length, is invalid."))]


class CardVerification(Out):
    status: Literal[VERDICTS] = Field(description=(  # type: ignore[valid-type]
        "invalid: malformed, altered or not signed by us; unknown: signed by us but not in the register; "
        "grace: past its expiry date but within the grace period, still valid."))
    card_number: CardNumber | None
    expires_on: date | None
    message: str = Field(description="One sentence for people.")


class CardListQuery(PageQuery):
    status: QueryList(CARD_STATUSES) = Field([], description="Only these statuses, as of today "
                                                             "(repeat or separate with commas).")
    card_type: QueryChoice(CARD_TYPES) | None = Field(None, description="Only this type.")
    card_number: QueryText(40) = Field("", description="Exactly this card number; a wrong check digit is a 422.")
    member_id: QueryId | None = Field(None, description="Cards of this member.")
    unit_id: QueryId | None = Field(None, description="Cards of members in this unit's subtree.")
    expires_from: QueryDate | None = Field(None, description="Expiring on or after this date.")
    expires_to: QueryDate | None = Field(None, description="Expiring on or before this date.")


class RevokeQuery(Query):
    reason: QueryText(MAX_QUERY_REASON) = Field("", description=(
        f"Why the card is revoked (or send {{\"reason\"}}, up to {MAX_REASON} characters)."))


class QrQuery(Query):
    format: QueryChoice(("png", "svg")) = Field("png", description="Image format.")


# --- access --------------------------------------------------------------------------------


def _card_for(card_id: int, permission: str) -> models.MembershipCard:
    """A card the caller may act on with ``permission``: out of reach 404, visible but not theirs 403."""
    verb = VERBS.get(permission, "change")
    return load_for(actor(), models.MembershipCard, card_id, permission, message=f"You may not {verb} this card.")


def _member_for(member_id: int, permission: str) -> models.Member:
    """A live member whose card the caller may act on with ``permission`` (404 out of reach, 403 without)."""
    return load_for(actor(), models.Member, member_id, permission,
                    message="You may not do this with this member's card.")


def _readable_card(card_id: int) -> models.MembershipCard:
    """A card the caller may read: their own (cards.read_own, the member role), else by cards.read scope."""
    return self_service.readable_card(actor(), card_id)


# --- list ----------------------------------------------------------------------------------


def _filters(query: CardListQuery) -> dict[str, Any]:
    """The list's filters, with the card number normalized (a wrong check digit is a 422 on it)."""
    number = query.card_number
    if number:
        try:
            number = card_service.normalize_card_number(number)
        except ServiceError as exc:
            raise ApiError(422, exc.message, {"field": "card_number"}) from None
    return {"status": query.status, "card_type": query.card_type, "card_number": number or None,
            "member_id": query.member_id, "unit_id": query.unit_id, "expires_from": query.expires_from,
            "expires_to": query.expires_to}


def _filter_clauses(filters: dict[str, Any]) -> list[ColumnElement[bool]]:
    Card_ = models.MembershipCard  # noqa: N806
    clauses: list[ColumnElement[bool]] = []
    if filters["status"]:
        clauses.append(or_(*[card_service.status_clause(s) for s in filters["status"]]))
    if filters["card_type"]:
        clauses.append(Card_.card_type == filters["card_type"])
    if filters["card_number"]:
        clauses.append(Card_.card_number == filters["card_number"])
    if filters["member_id"] is not None:
        clauses.append(Card_.member_id == filters["member_id"])
    if filters["unit_id"] is not None:
        unit = db.session.get(models.Unit, filters["unit_id"])
        clauses.append(Card_.unit_id.in_(subtree_unit_ids(unit) if unit is not None else []))
    if filters["expires_from"] is not None:
        clauses.append(Card_.expires_on >= filters["expires_from"])
    if filters["expires_to"] is not None:
        clauses.append(Card_.expires_on <= filters["expires_to"])
    return clauses


@bp.get("/cards")
@operation("cards", permission="cards.read", responses={200: (CardPage, "A page of cards, newest first.")},
           errors=(400,))
def list_cards(query: CardListQuery):
    """List cards

    Cards of live members within your cards.read scope, filtered and paged (newest first).
    """
    filters = _filters(query)
    clauses = _filter_clauses(filters)
    me = actor()
    total = db.session.scalar(
        scoped(select(func.count(models.MembershipCard.id)).where(*clauses), me, "cards.read",
               models.MembershipCard)
    ) or 0
    items: list[models.MembershipCard] = []
    if query.offset < total:
        items = list(db.session.scalars(
            scoped(select(models.MembershipCard).where(*clauses), me, "cards.read")
            .options(selectinload(models.MembershipCard.member), selectinload(models.MembershipCard.issued_by))
            .order_by(models.MembershipCard.id.desc()).offset(query.offset).limit(query.per_page)
        ))
    return page_of([Card.of(c) for c in items], query.page, query.per_page, total, "api.list_cards", **filters)


# --- one card ------------------------------------------------------------------------------


def _created(card: models.MembershipCard) -> tuple[Any, int, dict[str, str]]:
    return Card.of(card), 201, {"Location": url_for("api.get_card", card_id=card.id)}


@bp.post("/cards")
@operation("cards", permission="cards.create", responses={201: (Card, "The new card.")}, errors=(400, 409),
           location=True)
def create_card(json: CardCreate):
    """Issue a card

    To an active member without a current (active or suspended) card: 409 otherwise, with the reason.
    A member outside your area: 422 on member_id.
    """
    me = actor()
    member = db.session.scalar(scoped(
        select(models.Member).where(models.Member.id == json.member_id, models.Member.deleted_at.is_(None)),
        me, "cards.read"))
    if member is None:
        raise ApiError(422, "There is no such member in your area.", {"field": "member_id"})
    card = card_service.issue_card(me, member, json.card_type, reason=json.reason or "")
    db.session.commit()
    return _created(card)


@bp.get("/cards/<pk:card_id>")
@operation("cards", responses={200: (CardDetail, "The card with its transactions.")}, errors=(403, 404))
def get_card(card_id: int):
    """Read a card

    Staff: within their cards.read scope. Members: their own cards (cards.read_own).
    """
    return CardDetail.of(_readable_card(card_id))


@bp.put("/cards/<pk:card_id>")
@operation("cards", responses={200: (CardDetail, "The card.")}, errors=(400, 403, 404, 409))
def update_card(card_id: int, json: CardStatusChange):
    """Change a card's status

    Suspend, reactivate or revoke it, with a reason. Transitions not allowed from the card's status
    answer 409.
    """
    card = _card_for(card_id, "cards.update")
    card_service.change_card_status(actor(), card, json.status, json.reason)
    db.session.commit()
    return CardDetail.of(card)


@bp.delete("/cards/<pk:card_id>")
@operation("cards", responses={200: (CardDetail, "The revoked card.")}, errors=(400, 403, 404, 409),
           optional_body=True)
def revoke_card(card_id: int, query: RevokeQuery, json: CardReason):
    """Revoke a card

    Final. An optional JSON body {"reason"} (or ?reason=) says why.
    """
    card = _card_for(card_id, "cards.update")
    card_service.revoke_card(actor(), card, json.reason or query.reason or "Revoked through the API")
    db.session.commit()
    return CardDetail.of(card)


@bp.post("/cards/<pk:card_id>/reissue")
@operation("cards", responses={201: (Card, "The new card (same type and expiry, new number).")},
           errors=(400, 403, 404, 409), location=True)
def reissue_card(card_id: int, json: CardReissue):
    """Reissue a lost or damaged card

    The old card is revoked; the new one has a new number. Needs cards.create.
    """
    card = _card_for(card_id, "cards.create")
    new = card_service.reissue_card(actor(), card, json.reason)
    db.session.commit()
    return _created(new)


@bp.get("/cards/<pk:card_id>/qr")
@operation("cards", responses={200: (Content({"image/png": BINARY, "image/svg+xml": {"type": "string"}}),
                                     "The QR code of the card's verification URL.")}, errors=(403, 404))
def card_qr(card_id: int, query: QrQuery):
    """The card's QR code

    Its verification URL: PNG, or SVG with ?format=svg. Staff within cards.read scope; members their own.
    """
    card = _readable_card(card_id)
    if query.format == "svg":
        response = Response(card_pdf.qr_svg(card), mimetype="image/svg+xml")
    else:
        response = Response(card_pdf.qr_png(card), mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/cards/<pk:card_id>/pdf")
@operation("cards", responses={200: (Content({"application/pdf": BINARY}),
                                     "ID-1 (85.6 x 53.98 mm) PDF: front, then back.")}, errors=(403, 404))
def card_pdf_file(card_id: int):
    """The card as a PDF

    Printable, ID-1 size; front and back. Staff within cards.read scope; members their own.
    """
    card = _readable_card(card_id)
    response = Response(card_pdf.render_card_pdf(card), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="card-{card.card_number}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- by member -----------------------------------------------------------------------------


@bp.get("/members/<pk:member_id>/card")
@operation("cards", responses={200: (CardDetail, "The current card, else the latest one.")}, errors=(403, 404))
def member_card(member_id: int):
    """A member's card

    The current card (active or suspended), else the latest; 404 when they never had one.
    """
    member = load_for(actor(), models.Member, member_id, "cards.read")
    card = card_service.current_card(member)
    if card is None:
        raise ApiError(404, f"{member.full_name} has no card.")
    return CardDetail.of(card)


@bp.post("/members/<pk:member_id>/card/renew")
@operation("cards", responses={200: (CardDetail, "The renewed card.")}, errors=(400, 403, 404, 409),
           optional_body=True)
def renew_member_card(member_id: int, json: CardReason):
    """Renew a member's card

    Extends the expiry by the card type's period from the later of today and the current expiry.
    Lifetime, suspended and revoked cards, and members who are not active: 409.
    """
    member = _member_for(member_id, "cards.update")
    card = card_service.current_card(member)
    if card is None:
        raise ApiError(409, f"{member.full_name} has no card to renew: issue one first.", {"field": "member_id"})
    card_service.renew_card(actor(), card, json.reason or "")
    db.session.commit()
    return CardDetail.of(card)


# --- public verification -------------------------------------------------------------------


def _verify_limit() -> str:
    return current_app.config["CARD_VERIFY_RATE_LIMIT"]


@bp.post("/cards/verify")
@limiter.limit(_verify_limit)
@operation("cards", public=True,
           responses={200: (CardVerification, "The verdict (bad codes are status invalid, not an error).")},
           errors=(400, 429))
def verify_card(json: CardVerifyRequest):
    """Verify a card code

    Public and rate limited, like the verification page the QR codes open; no personal data in the
    answer. Checks the signature first, then the register: a revoked card with a valid signature is
    revoked.
    """
    result = card_service.verify_token(card_service.scanned_token(json.token))
    db.session.rollback()
    return CardVerification(status=result.status, card_number=result.card_number, expires_on=result.expires_on,
                            message=result.message)

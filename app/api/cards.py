"""Membership cards: list, issue, read, change status, revoke, reissue, renew, QR, PDF, verify.

Thin views over ``app.services.cards``. A card's unit is its member's unit,
so the scope helper confines cards exactly like members (``cards.read`` to
see, ``cards.create`` to issue or reissue, ``cards.update`` to renew,
suspend, reactivate or revoke); a card outside your area answers 404.
``POST /cards/verify`` is public (no token) and rate limited, like the
verification page its QR codes open.

Cards are serialised here rather than in ``serialize.py``: the shape is only
used by these views and their OpenAPI description (``cards_openapi.py``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, current_app, jsonify, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement

from app.api.auth import public
from app.api.context import MAX_ID, actor, bp
from app.api.errors import ApiError
from app.api.inputs import check_types, int_arg, json_object, reject_unknown, require, text_arg
from app.api.serialize import iso, page_of, user_ref
from app.extensions import db, limiter
from app.models import CARD_STATUSES, CARD_TYPES, CardTransaction, Member, MembershipCard, Unit
from app.security import has_permission, load_for, scoped, subtree_unit_ids
from app.services import card_pdf
from app.services import cards as card_service
from app.services.errors import ServiceError

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
VERBS = {"cards.update": "change", "cards.create": "reissue"}


# --- JSON --------------------------------------------------------------------------------


def transaction_json(entry: CardTransaction) -> dict[str, Any]:
    return {
        "type": entry.type,
        "from_status": entry.from_status,
        "to_status": entry.to_status,
        "reason": entry.reason,
        "expires_on": iso(entry.expires_on),
        "actor": user_ref(entry.actor),
        "at": iso(entry.created_at),
    }


def card_json(card: MembershipCard, *, with_transactions: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": card.id,
        "card_number": card.card_number,
        "member_id": card.member_id,
        "unit_id": card.member.unit_id,
        "status": card.effective_status(),
        "card_type": card.card_type,
        "issued_on": iso(card.issued_on),
        "expires_on": iso(card.expires_on),
        "issued_by": user_ref(card.issued_by),
        "issued_at": iso(card.issued_at),
        "renewed_at": iso(card.renewed_at),
        "replaces_id": card.replaces_id,
    }
    if with_transactions:
        data["transactions"] = [transaction_json(t) for t in card.transactions]
    return data


def _card_response(card: MembershipCard, status: int = 200, **kwargs: Any) -> Response:
    response = jsonify(card_json(card, **kwargs))
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("api.get_card", card_id=card.id)
    return response


# --- access --------------------------------------------------------------------------------


def _require_permission(permission: str) -> None:
    if not has_permission(actor(), permission):
        raise ApiError(403, "You do not have permission to do this with cards.", {"permission": permission})


def _card_for(card_id: int, permission: str) -> MembershipCard:
    """A card the caller may act on with ``permission``: out of reach 404, visible but not theirs 403."""
    verb = VERBS.get(permission, "change")
    return load_for(actor(), MembershipCard, card_id, permission, message=f"You may not {verb} this card.")


def _member_for(member_id: int, permission: str) -> Member:
    """A live member whose card the caller may act on with ``permission`` (404 out of reach, 403 without)."""
    return load_for(actor(), Member, member_id, permission, message="You may not do this with this member's card.")


def _reason_body(optional: bool = True) -> dict[str, Any]:
    """An optional JSON body ``{"reason": ...}`` (empty bodies are fine)."""
    if optional and not request.get_data(cache=True):
        return {}
    data = json_object()
    check_types(data, {"reason": "string"}, nullable={"reason"})
    reject_unknown(data, {"reason"})
    return data


# --- list ----------------------------------------------------------------------------------


def _date_arg(name: str) -> date | None:
    value = text_arg(name, 20)
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(422, f"'{name}' must be a date like 2027-01-31.", {"field": name}) from None


def _list_filters() -> dict[str, Any]:
    statuses = [s.strip().lower() for value in request.args.getlist("status") for s in value.split(",") if s.strip()]
    for status in statuses:
        if status not in CARD_STATUSES:
            raise ApiError(422, f"Unknown card status '{status}'. Use one of: {', '.join(CARD_STATUSES)}.",
                           {"field": "status", "allowed": list(CARD_STATUSES)})
    card_type = text_arg("card_type", 20).lower()
    if card_type and card_type not in CARD_TYPES:
        raise ApiError(422, f"Unknown card type '{card_type}'. Use one of: {', '.join(CARD_TYPES)}.",
                       {"field": "card_type", "allowed": list(CARD_TYPES)})
    number = text_arg("card_number", 40)
    if number:
        try:
            number = card_service.normalize_card_number(number)
        except ServiceError as exc:
            raise ApiError(422, exc.message, {"field": "card_number"}) from None
    return {
        "status": statuses,
        "card_type": card_type or None,
        "card_number": number or None,
        "member_id": int_arg("member_id", None, minimum=1, maximum=MAX_ID),
        "unit_id": int_arg("unit_id", None, minimum=1, maximum=MAX_ID),
        "expires_from": _date_arg("expires_from"),
        "expires_to": _date_arg("expires_to"),
    }


def _filter_clauses(filters: dict[str, Any]) -> list[ColumnElement[bool]]:
    from sqlalchemy import or_

    clauses: list[ColumnElement[bool]] = []
    if filters["status"]:
        clauses.append(or_(*[card_service.status_clause(s) for s in filters["status"]]))
    if filters["card_type"]:
        clauses.append(MembershipCard.card_type == filters["card_type"])
    if filters["card_number"]:
        clauses.append(MembershipCard.card_number == filters["card_number"])
    if filters["member_id"] is not None:
        clauses.append(MembershipCard.member_id == filters["member_id"])
    if filters["unit_id"] is not None:
        unit = db.session.get(Unit, filters["unit_id"])
        clauses.append(MembershipCard.unit_id.in_(subtree_unit_ids(unit) if unit is not None else []))
    if filters["expires_from"] is not None:
        clauses.append(MembershipCard.expires_on >= filters["expires_from"])
    if filters["expires_to"] is not None:
        clauses.append(MembershipCard.expires_on <= filters["expires_to"])
    return clauses


@bp.get("/cards")
def list_cards():
    """Cards in the caller's scope, filtered and paged (newest first)."""
    _require_permission("cards.read")
    filters = _list_filters()
    page = int_arg("page", 1, minimum=1)
    per_page = int_arg("per_page", DEFAULT_PER_PAGE, minimum=1, maximum=MAX_PER_PAGE)
    assert page is not None and per_page is not None
    clauses = _filter_clauses(filters)
    me = actor()
    total = db.session.scalar(
        scoped(select(func.count(MembershipCard.id)).where(*clauses), me, "cards.read", MembershipCard)
    ) or 0
    offset = (page - 1) * per_page
    items: list[MembershipCard] = []
    if offset < total:
        items = list(db.session.scalars(
            scoped(select(MembershipCard).where(*clauses), me, "cards.read")
            .options(selectinload(MembershipCard.member), selectinload(MembershipCard.issued_by))
            .order_by(MembershipCard.id.desc()).offset(offset).limit(per_page)
        ))
    return jsonify(page_of([card_json(c) for c in items], page, per_page, total, "api.list_cards", **filters))


# --- one card ------------------------------------------------------------------------------


@bp.post("/cards")
def create_card():
    """Issue a card to an active member without a current card."""
    me = actor()
    _require_permission("cards.create")
    data = json_object()
    check_types(data, {"member_id": "id", "card_type": "string", "reason": "string"}, nullable={"reason"})
    reject_unknown(data, {"member_id", "card_type", "reason"})
    member_id = require(data, "member_id", "Give the member_id of the member to issue the card to.")
    member = db.session.scalar(scoped(
        select(Member).where(Member.id == member_id, Member.deleted_at.is_(None)), me, "cards.read"))
    if member is None:
        raise ApiError(422, "There is no such member in your area.", {"field": "member_id"})
    card = card_service.issue_card(me, member, data.get("card_type") or "standard", reason=data.get("reason") or "")
    db.session.commit()
    return _card_response(card, 201)


@bp.get("/cards/<pk:card_id>")
def get_card(card_id: int):
    card = load_for(actor(), MembershipCard, card_id, "cards.read")
    return _card_response(card, with_transactions=True)


@bp.put("/cards/<pk:card_id>")
def update_card(card_id: int):
    """Change a card's status (active, suspended, revoked) with a reason."""
    card = _card_for(card_id, "cards.update")
    data = json_object()
    check_types(data, {"status": "string", "reason": "string"}, nullable={"reason"})
    reject_unknown(data, {"status", "reason"})
    status = require(data, "status", "Give the new status: active, suspended or revoked.")
    card_service.change_card_status(actor(), card, status, data.get("reason") or "")
    db.session.commit()
    return _card_response(card, with_transactions=True)


@bp.delete("/cards/<pk:card_id>")
def revoke_card(card_id: int):
    """Revoke a card (final). The reason may come as JSON ``{"reason"}`` or ``?reason=``."""
    card = _card_for(card_id, "cards.update")
    reason = _reason_body().get("reason") or text_arg("reason", 1000) or "Revoked through the API"
    card_service.revoke_card(actor(), card, reason)
    db.session.commit()
    return _card_response(card, with_transactions=True)


@bp.post("/cards/<pk:card_id>/reissue")
def reissue_card(card_id: int):
    """Replace a lost or damaged card: the old one is revoked, the new one (201) has a new number."""
    card = _card_for(card_id, "cards.create")
    data = _reason_body(optional=False)
    new = card_service.reissue_card(actor(), card, data.get("reason") or "")
    db.session.commit()
    return _card_response(new, 201)


@bp.get("/cards/<pk:card_id>/qr")
def card_qr(card_id: int):
    """The card's QR code (its verification URL): PNG, or SVG with ``?format=svg``."""
    card = load_for(actor(), MembershipCard, card_id, "cards.read")
    kind = (request.args.get("format") or "png").strip().lower()
    if kind == "svg":
        body, mimetype = card_pdf.qr_svg(card), "image/svg+xml"
    elif kind == "png":
        body, mimetype = card_pdf.qr_png(card), "image/png"
    else:
        raise ApiError(422, "format must be png or svg.", {"field": "format"})
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/cards/<pk:card_id>/pdf")
def card_pdf_file(card_id: int):
    """The card as a printable PDF (ID-1 size; front and back)."""
    card = load_for(actor(), MembershipCard, card_id, "cards.read")
    response = Response(card_pdf.render_card_pdf(card), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="card-{card.card_number}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- by member -----------------------------------------------------------------------------


@bp.get("/members/<pk:member_id>/card")
def member_card(member_id: int):
    """The member's current card (active or suspended), else their latest; 404 when they never had one."""
    member = load_for(actor(), Member, member_id, "cards.read")
    card = card_service.current_card(member)
    if card is None:
        raise ApiError(404, f"{member.full_name} has no card.")
    return _card_response(card, with_transactions=True)


@bp.post("/members/<pk:member_id>/card/renew")
def renew_member_card(member_id: int):
    """Renew the member's card by its type's period (from the later of today and its expiry)."""
    member = _member_for(member_id, "cards.update")
    data = _reason_body()
    card = card_service.current_card(member)
    if card is None:
        raise ApiError(409, f"{member.full_name} has no card to renew: issue one first.", {"field": "member_id"})
    card_service.renew_card(actor(), card, data.get("reason") or "")
    db.session.commit()
    return _card_response(card, with_transactions=True)


# --- public verification -------------------------------------------------------------------


def _verify_limit() -> str:
    return current_app.config["CARD_VERIFY_RATE_LIMIT"]


@bp.post("/cards/verify")
@public
@limiter.limit(_verify_limit)
def verify_card():
    """What a scanned card code (the QR's URL or the bare code) is worth. Public; no personal data in the answer."""
    data = json_object()
    check_types(data, {"token": "string"})
    reject_unknown(data, {"token"})
    token = require(data, "token", "Give the code in the card's QR: the URL it holds, or its last part.")
    result = card_service.verify_token(card_service.scanned_token(token))
    db.session.rollback()
    return jsonify({
        "status": result.status,
        "card_number": result.card_number,
        "expires_on": iso(result.expires_on),
        "message": result.message,
    })

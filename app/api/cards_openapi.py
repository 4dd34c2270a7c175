"""The OpenAPI description of the card endpoints (``app/api/cards.py``).

Merged into the document by ``app/api/openapi.py``; the helpers come from
``openapi_parts``. ``tests/api/test_openapi.py`` checks it against the routes.
"""

from __future__ import annotations

from app.api.cards import DEFAULT_PER_PAGE, MAX_PER_PAGE
from app.api.openapi_parts import (
    DATE, DATETIME, ID, LOCATION, STRING, Schema, errors, json_body, nullable, obj, ok, operation, path_param,
    query_param, ref,
)
from app.models import CARD_STATUSES, CARD_TYPES
from app.models.cards import CARD_TRANSACTION_TYPES


CARD_NUMBER: Schema = {"type": "string", "pattern": r"^[A-Z0-9]{1,8}-\d{4}-\d{6,9}-\d$",
                       "examples": ["M-2026-000123-4"],
                       "description": "PREFIX-YYYY-NNNNNN-C; C is the Luhn check digit over the digits."}
REASON: Schema = nullable({"type": "string", "maxLength": 1000})

CARD_SCHEMAS: dict[str, Schema] = {
    "CardTransaction": obj(
        {"type": {"type": "string", "enum": list(CARD_TRANSACTION_TYPES)},
         "from_status": nullable({"type": "string", "enum": list(CARD_STATUSES)}),
         "to_status": {"type": "string", "enum": list(CARD_STATUSES)},
         "reason": STRING,
         "expires_on": nullable({**DATE, "description": "The card's expiry after this transition."}),
         "actor": {"oneOf": [ref("UserRef"), {"type": "null"}]},
         "at": DATETIME},
        ["type", "from_status", "to_status", "reason", "expires_on", "actor", "at"],
    ),
    "Card": obj(
        {"id": ID,
         "card_number": CARD_NUMBER,
         "member_id": ID,
         "unit_id": {**ID, "description": "The member's unit (what scopes the card)."},
         "status": {"type": "string", "enum": list(CARD_STATUSES),
                    "description": "As of today: an active card past its expiry date is expired."},
         "card_type": {"type": "string", "enum": list(CARD_TYPES)},
         "issued_on": DATE,
         "expires_on": nullable({**DATE, "description": "null for lifetime cards."}),
         "issued_by": {"oneOf": [ref("UserRef"), {"type": "null"}]},
         "issued_at": DATETIME,
         "renewed_at": nullable(DATETIME),
         "replaces_id": nullable({**ID, "description": "The card this one replaced (reissue)."}),
         "transactions": {"type": "array", "items": ref("CardTransaction"),
                          "description": "Newest first; only on single-card answers."}},
        ["id", "card_number", "member_id", "unit_id", "status", "card_type", "issued_on", "expires_on",
         "issued_by", "issued_at", "renewed_at", "replaces_id"],
    ),
    "CardPage": obj(
        {"items": {"type": "array", "items": ref("Card")},
         "page": {"type": "integer", "minimum": 1},
         "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
         "total": {"type": "integer", "minimum": 0},
         "links": obj({"self": STRING, "next": nullable(STRING), "prev": nullable(STRING)}, ["self", "next", "prev"])},
        ["items", "page", "per_page", "total", "links"],
    ),
    "CardCreate": obj(
        {"member_id": {**ID, "description": "An active member in your cards.create area without a current card."},
         "card_type": {"type": "string", "enum": list(CARD_TYPES), "default": "standard"},
         "reason": REASON},
        ["member_id"], closed=True,
    ),
    "CardStatusChange": obj(
        {"status": {"type": "string", "enum": ["active", "suspended", "revoked"],
                    "description": "suspended (from active), active (reactivate a suspended card), revoked."},
         "reason": {"type": "string", "maxLength": 1000, "description": "Required."}},
        ["status", "reason"], closed=True,
    ),
    "CardReason": obj({"reason": REASON}, closed=True),
    "CardVerifyRequest": obj(
        {"token": {"type": "string",
                   "description": "What the card's QR code holds: its verification URL, or the credential alone "
                                  "(the URL's last path segment). Anything else, of any length, is invalid."}},
        ["token"], closed=True,
    ),
    "CardVerification": obj(
        {"status": {"type": "string", "enum": ["valid", "expired", "suspended", "revoked", "unknown", "invalid"],
                    "description": "invalid: malformed, altered or not signed by us; unknown: signed by us but "
                                   "not in the register."},
         "card_number": nullable(CARD_NUMBER),
         "expires_on": nullable(DATE),
         "message": {"type": "string", "description": "One sentence for people."}},
        ["status", "card_number", "expires_on", "message"],
    ),
}

CARD_ID = path_param("card_id", "The card's id.")
MEMBER_ID = path_param("member_id", "The member's id.")

CARD_PATHS: dict[str, dict[str, Schema]] = {
    "/cards": {
        "get": operation(
            "api.list_cards", "List cards", "cards",
            {"200": ok("A page of cards, newest first.", ref("CardPage")), **errors(400, 403, 422)},
            description="Cards of live members within your cards.read scope.",
            parameters=[
                query_param("status", STRING, "Comma-separated statuses (as of today)."),
                query_param("card_type", {"type": "string", "enum": list(CARD_TYPES)}, "Only this type."),
                query_param("card_number", STRING, "Exactly this card number; a wrong check digit answers 422."),
                query_param("member_id", ID, "Cards of this member."),
                query_param("unit_id", ID, "Cards of members in this unit's subtree."),
                query_param("expires_from", DATE, "Expiring on or after this date."),
                query_param("expires_to", DATE, "Expiring on or before this date."),
                query_param("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number."),
                query_param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                                         "default": DEFAULT_PER_PAGE}, "Cards per page."),
            ],
        ),
        "post": operation(
            "api.create_card", "Issue a card", "cards",
            {"201": ok("The new card.", ref("Card"), LOCATION), **errors(400, 403, 409, 422)},
            description="The member must be active and have no current (active or suspended) card: 409 "
                        "otherwise, with the reason. A member outside your area: 422 on member_id.",
            body=json_body(ref("CardCreate")),
        ),
    },
    "/cards/verify": {
        "post": operation(
            "api.verify_card", "Verify a card code", "cards",
            {"200": ok("The verdict (bad codes are status invalid, not an error).", ref("CardVerification")),
             **errors(400, 422, 429)},
            description="Public and rate limited. Checks the signature first, then the register: a revoked "
                        "card with a valid signature is revoked.",
            body=json_body(ref("CardVerifyRequest")), authenticated=False,
        ),
    },
    "/cards/{card_id}": {
        "get": operation(
            "api.get_card", "Read a card", "cards",
            {"200": ok("The card with its transactions.", ref("Card")), **errors(403, 404)}, parameters=[CARD_ID],
        ),
        "put": operation(
            "api.update_card", "Change a card's status", "cards",
            {"200": ok("The card.", ref("Card")), **errors(400, 403, 404, 409, 422)},
            description="Transitions not allowed from the card's status answer 409.",
            parameters=[CARD_ID], body=json_body(ref("CardStatusChange")),
        ),
        "delete": operation(
            "api.revoke_card", "Revoke a card", "cards",
            {"200": ok("The revoked card.", ref("Card")), **errors(400, 403, 404, 409, 422)},
            description="Final. An optional JSON body {\"reason\"} (or ?reason=) says why.",
            parameters=[CARD_ID, query_param("reason", STRING, "Why the card is revoked.")],
        ),
    },
    "/cards/{card_id}/reissue": {
        "post": operation(
            "api.reissue_card", "Reissue a lost or damaged card", "cards",
            {"201": ok("The new card (same type and expiry, new number).", ref("Card"), LOCATION),
             **errors(400, 403, 404, 409, 422)},
            description="The old card is revoked. Needs cards.create; the reason is required.",
            parameters=[CARD_ID], body=json_body(ref("CardReason")),
        ),
    },
    "/cards/{card_id}/qr": {
        "get": operation(
            "api.card_qr", "The card's QR code", "cards",
            {"200": {"description": "The QR code of the card's verification URL.",
                     "content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                                 "image/svg+xml": {"schema": {"type": "string"}}}},
             **errors(403, 404, 422)},
            parameters=[CARD_ID, query_param("format", {"type": "string", "enum": ["png", "svg"], "default": "png"},
                                             "Image format.")],
        ),
    },
    "/cards/{card_id}/pdf": {
        "get": operation(
            "api.card_pdf_file", "The card as a PDF", "cards",
            {"200": {"description": "ID-1 (85.6 x 53.98 mm) PDF: front, then back.",
                     "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
             **errors(403, 404)},
            parameters=[CARD_ID],
        ),
    },
    "/members/{member_id}/card": {
        "get": operation(
            "api.member_card", "A member's card", "cards",
            {"200": ok("The current card, else the latest one.", ref("Card")), **errors(403, 404)},
            parameters=[MEMBER_ID],
        ),
    },
    "/members/{member_id}/card/renew": {
        "post": operation(
            "api.renew_member_card", "Renew a member's card", "cards",
            {"200": ok("The renewed card.", ref("Card")), **errors(400, 403, 404, 409, 422)},
            description="Extends the expiry by the card type's period from the later of today and the current "
                        "expiry. Lifetime, suspended and revoked cards, and members who are not active: 409.",
            parameters=[MEMBER_ID], body={**json_body(ref("CardReason")), "required": False},
        ),
    },
}

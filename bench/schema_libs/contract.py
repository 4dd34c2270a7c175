"""The check-in contract shared by the three apps of the schema-library bench, and the baseline.

The contract is Muster's ``POST /api/v1/events/<id>/checkin``: body
``{token | member_id, gate, nonce}``, the answer shaped like
``events.check_in``'s (here a constant: only the libraries' cost is measured),
errors ``{"error", "details"}``, 400 for a wrong JSON type and 422 for a
broken rule. The baseline is plain Flask with today's hand validation
(``services.checkin_input.parse_checkin``) and a hand-built answer.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Flask, abort, jsonify, request
from werkzeug.exceptions import BadRequest

from app.services.checkin_input import parse_checkin
from app.services.errors import ServiceError
from app.services.events.checkin import MAX_GATE_CHARS, NONCE_RE, REASONS  # noqa: F401  (the apps' limits)
from app.services.inputs import MAX_ID  # noqa: F401

PREFIX = "/api/v1"
RESULTS = ("admitted", "already_checked_in", "rejected")
TOKEN_DOC = "What the card's QR holds: the signed credential, or a verification URL ending in it."
NONCE_DOC = "A fresh id per scan (a UUID); a retry with the same nonce gets the same answer."
STORABLE_MESSAGE = "Text may not contain NUL or unpaired surrogate characters."
ONE_OF_MESSAGE = "Send either the scanned token or a member_id."
AT = datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc)


def answer_values(event_id: int) -> dict[str, Any]:
    """What ``events.check_in`` decides for an admission, as plain values (datetimes unformatted)."""
    return {
        "result": "admitted", "reason": None, "message": "",
        "member": {"id": 4211, "membership_number": "M-0004211", "first_name": "Thandiwe", "last_name": "Banda",
                   "full_name": "Thandiwe Banda", "status": "active", "unit": "Ward 7"},
        "first_checked_in_at": AT, "first_gate": "North gate", "checked_in_at": AT, "gate": "North gate",
        "walk_in": False, "registration_status": "attended", "event_id": event_id,
    }


def hand_answer(event_id: int) -> dict[str, Any]:
    """Today's serialisation: the service formats its own answer (``events._answer``)."""
    values = answer_values(event_id)
    for key in ("first_checked_in_at", "checked_in_at"):
        values[key] = values[key].isoformat() if values[key] is not None else None
    return values


class ContractError(Exception):
    """An input error in Muster's shape; every app's API blueprint renders it the same way."""

    def __init__(self, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


def wrong_type(field: str, expected: str) -> ContractError:
    return ContractError(400, f"'{field}' must be {expected}.", {"field": field, "expected": expected})


def broken_rules(fields: dict[str, str]) -> ContractError:
    """422 naming every field at fault, the first one as ``field`` (docs/api.md, Errors)."""
    first = next(iter(fields))
    return ContractError(422, fields[first], {"field": first, "fields": fields})


def unstorable(field: str) -> ContractError:
    return ContractError(400, STORABLE_MESSAGE, {"field": field})


def not_an_object() -> ContractError:
    return ContractError(400, "The request body must be a JSON object.")


def storable(value: str) -> bool:
    """NUL and lone surrogates are valid JSON but no database column stores them."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def contract_errors(bp: Blueprint) -> None:
    """The API blueprint renders ContractError in Muster's shape (on the blueprint only, as app/api does)."""

    @bp.errorhandler(ContractError)
    def contract_error(exc: ContractError):
        return jsonify({"error": exc.message, "details": exc.details}), exc.status


def bare_app(name: str) -> Flask:
    """An app whose console (outside the API) keeps Flask's HTML error pages."""
    app = Flask(f"schema_bench_{name}")

    @app.get("/console/<page>")
    def console(page: str):
        abort(404)  # Flask's HTML error page, as the console and portal render theirs

    return app


# --- baseline: today's hand validation ----------------------------------------------------


def baseline_input(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise not_an_object()
    try:
        return parse_checkin(data)
    except ServiceError as exc:
        if exc.status == 400:
            raise ContractError(400, exc.message, {"field": exc.field, **(exc.details or {})}) from None
        raise broken_rules({exc.field: exc.message}) from None


def baseline_app() -> Flask:
    app = bare_app("baseline")
    bp = Blueprint("api", __name__, url_prefix=PREFIX)
    contract_errors(bp)

    @bp.post("/events/<int:event_id>/checkin")
    def checkin(event_id: int):
        try:
            data = request.get_json(force=True)
        except BadRequest:
            raise ContractError(400, "The request body is not valid JSON.") from None
        baseline_input(data)
        return jsonify(hand_answer(event_id))

    app.register_blueprint(bp)
    return app


def baseline_round_trip(body: bytes, event_id: int) -> bytes:
    baseline_input(json.loads(body))
    return json.dumps(hand_answer(event_id)).encode()

"""What a door device sends to check someone in: one parser for the console's route and the API's.

Both faces take ``{token | member_id, gate, nonce}`` and hand the result to
``events.check_in``. The rules for that input live here alone, so the two
answer alike: a 61-character gate name is refused by both (422 on ``gate``)
instead of being cut short by one of them. A malformed body raises a
``ServiceError`` naming the field: 400 for a value of the wrong type, 422 for
one the rules refuse; each face turns it into ``{"error", "details"}``.
"""

from __future__ import annotations

from typing import Any

from app.services.errors import ServiceError
from app.services.events import MAX_GATE_CHARS, valid_nonce
from app.services.inputs import parse_id

FIELDS = frozenset({"token", "member_id", "gate", "nonce"})


def _text(data: dict[str, Any], field: str) -> str | None:
    """A text field or None; 400 when it is not text or holds what no database column can store."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServiceError(f"'{field}' must be a string.", field=field, status=400, details={"expected": "string"})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "\x00"  # an unpaired surrogate: refused like NUL below
    if "\x00" in value:
        raise ServiceError("Text may not contain NUL or unpaired surrogate characters.", field=field, status=400)
    return value


def parse_checkin(data: Any, *, form: bool = False) -> dict[str, Any]:
    """The keyword arguments for ``events.check_in`` from a request body.

    Exactly one of ``token`` (what the card's QR holds: its URL or the bare
    code, read later by ``cards.scanned_token``) and ``member_id``; an optional
    ``gate`` (MAX_GATE_CHARS at most, trimmed) and ``nonce``. With ``form`` the
    values come from an HTML form, where everything is text: empty fields
    count as absent and the member id is read from its digits.
    """
    if not isinstance(data, dict):
        raise ServiceError("Send a JSON object.", status=400)
    if form:
        data = {key: value for key, value in data.items() if value != ""}
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ServiceError(f"Unknown field(s): {', '.join(unknown)}.", field=unknown[0],
                           details={"unknown": unknown})
    token, gate, nonce = _text(data, "token"), _text(data, "gate"), _text(data, "nonce")
    member_id = data.get("member_id")
    if type(member_id) is float and member_id.is_integer():
        member_id = int(member_id)  # JSON Schema's integer: 4.0 is the id 4
    if member_id is not None:
        if isinstance(member_id, bool) or not isinstance(member_id, (int, str) if form else int):
            raise ServiceError("'member_id' must be an id (a positive integer).", field="member_id", status=400,
                               details={"expected": "id"})
        member_id = parse_id(member_id)
        if member_id is None:
            raise ServiceError("'member_id' is not a valid id.", field="member_id")
    if (token is None) == (member_id is None):
        raise ServiceError("Send either the scanned token or a member_id.", field="token")
    gate = (gate or "").strip() or None
    if gate is not None and len(gate) > MAX_GATE_CHARS:
        raise ServiceError(f"'gate' is {MAX_GATE_CHARS} characters at most.", field="gate")
    if nonce is not None and not valid_nonce(nonce):
        raise ServiceError("'nonce' is 1-64 letters, digits or . _ : - (a UUID is ideal).", field="nonce")
    return {"token": token, "member_id": member_id, "gate": gate, "nonce": nonce}

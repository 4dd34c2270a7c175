"""Reading request input: the JSON body, its value types, and query parameters.

Views hand the services plain values; this module makes sure those values
have the types the services expect, so that malformed input answers 400 with
the field named instead of crashing deep inside a service. Whether a value is
*acceptable* (a real phone number, a known role) stays the services' call.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest

from app.api import MAX_ID
from app.api.errors import ApiError
from app.services.inputs import parse_int

# Python type(s) accepted per kind of field, and how to name them to a client.
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "a string"),
    "integer": ((int,), "an integer"),
    "id": ((int,), "an id (a positive integer)"),
    "boolean": ((bool,), "true or false"),
    "string_list": ((list,), "a list of strings"),
}


def json_object() -> dict[str, Any]:
    """The request body as a JSON object; 400 for an empty, malformed or non-object body."""
    if not request.get_data(cache=True):
        raise ApiError(400, "Send a JSON object in the request body.")
    try:
        data = request.get_json(force=True)
    except BadRequest:
        raise ApiError(400, "The request body is not valid JSON.") from None
    except RecursionError:  # absurdly deep nesting; json.loads gives up
        raise ApiError(400, "The request body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    _check_text(data)
    return data


def _bad_text(text: str) -> bool:
    """NUL and lone surrogates: valid JSON, but no database column can store them."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_text(data: Any) -> None:
    """400 for any string (key or value) the database would refuse, before a query can fail on it."""
    stack = [(data, None)]
    while stack:  # iterative: bodies may be nested as deep as the JSON parser allows
        node, field = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if _bad_text(key):
                    raise ApiError(400, "Field names may not contain NUL or unpaired surrogate characters.")
                stack.append((value, field or key))
        elif isinstance(node, list):
            stack.extend((item, field) for item in node)
        elif isinstance(node, str) and _bad_text(node):
            raise ApiError(400, "Text may not contain NUL or unpaired surrogate characters.", {"field": field})


def check_types(data: dict[str, Any], kinds: dict[str, str], *,
                nullable: frozenset[str] | set[str] = frozenset()) -> None:
    """400 when a known field has the wrong JSON type; unknown fields are left to the caller.

    ``kinds`` maps field name to one of "string", "integer", "id" (an
    integer in the database's id range), "boolean", "string_list". ``None``
    is accepted only for fields listed in ``nullable``.
    """
    for field, kind in kinds.items():
        if field not in data:
            continue
        value = data[field]
        types, label = _KINDS[kind]
        if value is None:
            if field in nullable:
                continue
            raise ApiError(400, f"'{field}' must be {label}, not null.", {"field": field, "expected": kind})
        # bool is a subclass of int in Python, but true is not an id.
        ok = isinstance(value, types) and not (kind in ("integer", "id") and isinstance(value, bool))
        if ok and kind == "string_list":
            ok = all(isinstance(item, str) for item in value)
        if not ok:
            raise ApiError(400, f"'{field}' must be {label}.", {"field": field, "expected": kind})
        if kind == "id" and not 1 <= value <= MAX_ID:
            # No such row can exist, and the database would overflow rather than find nothing.
            raise ApiError(422, f"'{field}' is not a valid id.", {"field": field})


def reject_unknown(data: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    """422 naming the first field the endpoint does not know (typos should not pass silently)."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(422, f"Unknown field(s): {', '.join(unknown)}.", {"field": unknown[0], "unknown": unknown})


def require(data: dict[str, Any], field: str, message: str) -> Any:
    """The value of a required field, or 422 naming it."""
    if data.get(field) in (None, ""):
        raise ApiError(422, message, {"field": field})
    return data[field]


def text_arg(name: str, max_length: int) -> str:
    """A free-text query parameter, stripped; 422 when too long, 400 when it holds NUL."""
    value = (request.args.get(name) or "").strip()
    if "\x00" in value:
        raise ApiError(400, f"The query parameter '{name}' may not contain NUL characters.", {"field": name})
    if len(value) > max_length:
        raise ApiError(422, f"'{name}' is too long ({max_length} characters at most).", {"field": name})
    return value


def int_arg(name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    """An integer query parameter: 400 when not an integer, 422 when out of range."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = parse_int(raw)  # a plain run of ASCII digits; int() would take "1_000" and "\u0661\u0662" too
    if value is None:
        raise ApiError(400, f"The query parameter '{name}' must be an integer.", {"field": name})
    if minimum is not None and value < minimum:
        raise ApiError(422, f"'{name}' must be at least {minimum}.", {"field": name, "minimum": minimum})
    if maximum is not None and value > maximum:
        raise ApiError(422, f"'{name}' must be at most {maximum}.", {"field": name, "maximum": maximum})
    return value


def parse_datetime(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 date-time in UTC; a value without an offset is taken as UTC."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)  # overflows for year 1 / 9999 edge cases
    except (ValueError, OverflowError):
        raise ApiError(422, f"'{field}' must be an ISO 8601 date-time like 2027-01-31T18:00:00Z.",
                       {"field": field}) from None

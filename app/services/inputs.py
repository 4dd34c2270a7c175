"""Numbers from untrusted text: ids and page numbers, one parser for every entry point.

URLs, query strings, form fields, JSON bodies and command lines all name rows
by id and pages by number. ``int()`` alone accepts far too much ("١٢",
" 7", "1_0", a 400-digit number that overflows the database driver), so every
view, API handler and service that takes such a number from outside uses
these functions: a value that cannot name a row or a page is refused at the
door (a 404 or 400 there) instead of failing deep inside a query with a 500.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter

# Primary keys are 32-bit integers on PostgreSQL: a larger id cannot exist, and
# passing one to the database would fail (SQLite: OverflowError, PostgreSQL:
# "integer out of range" on insert) instead of finding nothing.
MAX_ID = 2**31 - 1
# Pages are counted in rows, so no page number can exceed the number of ids.
MAX_PAGE = MAX_ID
_MAX_DIGITS = 30  # longer text is no number anyone means; refused before int() spends time on it


def parse_int(value: Any, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """A plain decimal integer (ASCII digits, an optional leading "-"), within bounds; else None.

    An ``int`` passes through (a ``bool`` does not: ``True`` is no number of
    anything); text is stripped of surrounding whitespace first. Floats
    ("4.0"), exponents ("1e9"), other digit systems, underscores, hexadecimal
    and empty text are all None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_DIGITS:
            return None
        number = int(text)
    else:
        return None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        return None
    return number


def parse_id(value: Any) -> int | None:
    """A database id (1..MAX_ID) from any input, or None when it cannot name a row."""
    return parse_int(value, 1, MAX_ID)


def unit_id_value(value: Any, missing: str) -> int:
    """The unit a form or body names (a Unit or its id), or a message on the ``unit_id`` field."""
    from app.services.errors import ServiceError

    if hasattr(value, "path") and hasattr(value, "id"):  # a Unit already
        return value.id
    if value in (None, ""):
        raise ServiceError(missing, field="unit_id")
    pk = parse_id(value)
    if pk is None:
        raise ServiceError("The unit must be given by its id.", field="unit_id")
    return pk


def parse_page(value: Any, first: int = 0) -> int | None:
    """A page number counted from ``first`` (Flask-Admin: 0, the API: 1), or None."""
    return parse_int(value, first, MAX_PAGE)


def _decimal_range_regex(limit: int) -> str:
    """A regex for the decimal numbers 1..limit, without leading zeros."""
    digits = str(limit)
    alternatives = []
    if len(digits) > 1:
        alternatives.append(rf"[1-9]\d{{0,{len(digits) - 2}}}")  # every shorter number
    for i, digit in enumerate(digits):  # same length: equal up to i, smaller at i, anything after
        low = "1" if i == 0 else "0"
        if int(digit) > int(low):
            rest = len(digits) - i - 1
            alternatives.append(f"{digits[:i]}[{low}-{int(digit) - 1}]" + (rf"\d{{{rest}}}" if rest else ""))
    alternatives.append(digits)
    return "(?:" + "|".join(alternatives) + ")"


class IdConverter(IntegerConverter):
    """``<pk:name>`` in a route: an id as ``parse_id`` takes it, in its one canonical spelling.

    Anything else (abc, -1, 0, 007, 10**20, unicode digits) matches no route,
    so it is a 404 before the view runs. The range lives in the regex rather
    than in ``min``/``max``: werkzeug checks those after matching, and a value
    refused there makes a sibling rule with another method answer 405
    instead of 404. ``\\d`` is not used: in Python it matches every script's digits.
    """

    regex = _decimal_range_regex(MAX_ID).replace(r"\d", "[0-9]")

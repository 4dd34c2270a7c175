"""Card numbers: ``M-2026-000123-4``.

A configurable prefix, the year of issue, a six-digit sequence per year (from
the ``counters`` table, so unique under concurrent issuance) and a Luhn check
digit over the digits, so a mistyped number is caught (``parse_card_number``).
"""

from __future__ import annotations

import re

from flask import current_app

from app.services.counters import allocate
from app.services.errors import ServiceError

PREFIX_RE = re.compile(r"^[A-Z0-9]{1,8}$")
CARD_NUMBER_RE = re.compile(r"^([A-Z0-9]{1,8})-(\d{4})-(\d{6,9})-(\d)$")


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

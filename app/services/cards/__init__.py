"""Membership cards: numbers, lifecycle, and the signed credential in the QR code.

The package, by concern:

- ``numbers``: card numbers (``M-2026-000123-4``: prefix, year, sequence, Luhn
  check digit), allocated in blocks and parsed back forgivingly;
- ``lifecycle``: validity periods, issue / renew / suspend / reactivate /
  revoke / reissue, each writing a ``CardTransaction`` and an audit entry; a
  member's status dragging their card along; expiry written down;
- ``tokens``: the Ed25519-signed credential in the QR code (``card_token``,
  ``decode_token``), the URL printed around it, and ``scanned_token``, which
  finds the credential in what was scanned or typed;
- ``verification``: ``verify_token``, the verdict on a scanned code: signature
  first, register second (``verify_card_number``, also the verdict on a typed
  number); it never raises on bad input.

Callers import from here (``from app.services import cards``). Services
flush; the caller commits.
"""

from app.services.cards.lifecycle import (
    add_months,
    card_months,
    change_card_status,
    check_card_type,
    check_member_active,
    current_card,
    expire_cards,
    follow_member_status,
    follow_member_statuses,
    issue_card,
    issue_cards,
    reactivate_card,
    reissue_card,
    renew_card,
    revoke_card,
    status_clause,
    suspend_card,
)
from app.services.cards.numbers import (
    CARD_NUMBER_RE,
    PREFIX_RE,
    CardNumberError,
    card_prefix,
    format_card_number,
    luhn_digit,
    next_card_numbers,
    normalize_card_number,
    parse_card_number,
)
from app.services.cards.tokens import (
    MAX_SCAN_CHARS,
    TOKEN_VERSION,
    Credential,
    InvalidToken,
    card_token,
    decode_token,
    scanned_token,
    verification_url,
    verify_base_url,
)
from app.services.cards.verification import VERIFY_STATUSES, Verification, verify_card_number, verify_token

# Callers catch ``cards.ServiceError``, as they did before the split.
from app.services.errors import ServiceError

__all__ = [
    "CardNumberError", "Verification", "card_token", "verify_token", "issue_card", "issue_cards", "renew_card",
    "suspend_card", "reactivate_card", "revoke_card", "reissue_card", "change_card_status", "follow_member_status",
    "follow_member_statuses", "expire_cards", "current_card", "parse_card_number", "verification_url", "luhn_digit",
    "scanned_token", "verify_card_number",
    # also public before the split, used by the console, the API, the CLI, card batches, tests and benches
    "CARD_NUMBER_RE", "PREFIX_RE", "MAX_SCAN_CHARS", "TOKEN_VERSION", "VERIFY_STATUSES", "Credential",
    "InvalidToken", "ServiceError", "add_months", "card_months", "card_prefix", "check_card_type",
    "check_member_active", "decode_token", "format_card_number", "next_card_numbers", "normalize_card_number",
    "status_clause", "verify_base_url",
]

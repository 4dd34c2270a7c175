"""The signed credential in the card's QR code, and reading it back from what was scanned.

The credential (``card_token``) is a compact binary payload -- format
version, key id, card number, expiry date; no personal data -- signed with
Ed25519 and written in base64url. ``decode_token`` checks its form and
signature only: what the register says about the card is ``verification``'s
business. ``scanned_token`` finds the credential in a scan (a bare code or the
URL printed in the QR, ``verification_url``).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from flask import current_app

from app.config import DEFAULT_PUBLIC_URL
from app.models import MembershipCard
from app.services import card_keys
from app.services.cards.numbers import PREFIX_RE, format_card_number, parse_card_number

TOKEN_VERSION = 1
SIGNING_CONTEXT = b"muster-card\x00"  # domain separation: these signatures mean "card credential"
_EPOCH = date(2000, 1, 1)
_SIGNATURE_BYTES = 64
_HEAD = struct.Struct(">B4sB")  # version, key id, prefix length
_TAIL = struct.Struct(">HIH")  # year, sequence, expiry (days since 1999-12-31; 0 = never)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,200}$")


class InvalidToken(Exception):
    """Not one of our credentials: malformed, truncated, tampered with, or signed by another key."""


@dataclass(frozen=True)
class Credential:
    """What a verified token says."""

    version: int
    key_id: str
    card_number: str
    expires_on: date | None


def token_payload(card_number: str, expires_on: date | None, kid: bytes) -> bytes:
    """The signed part of a token: version, key id ``kid``, the card number's parts, expiry."""
    prefix, year, seq = parse_card_number(card_number)
    days = 0 if expires_on is None else (expires_on - _EPOCH).days + 1
    return _HEAD.pack(TOKEN_VERSION, kid, len(prefix)) + prefix.encode("ascii") + _TAIL.pack(year, seq, days)


def card_token(card: MembershipCard) -> str:
    """The signed credential for a card, as it goes in the QR code (URL-safe, ~106 characters)."""
    key = card_keys.signing_key()
    payload = token_payload(card.card_number, card.expires_on, key.kid)
    signature = key.private_key.sign(SIGNING_CONTEXT + payload)  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(payload + signature).rstrip(b"=").decode("ascii")


def decode_token(token: Any) -> Credential:
    """Check a token's form and signature; InvalidToken says why it is not acceptable."""
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        raise InvalidToken("This is not a membership card code.")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("This is not a membership card code.") from None
    # Only the canonical spelling is accepted: no padding, no stray trailing bits.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise InvalidToken("This card code has been altered.")
    if len(raw) < _HEAD.size + 1 + _TAIL.size + _SIGNATURE_BYTES:
        raise InvalidToken("This card code is incomplete.")
    version, kid, prefix_len = _HEAD.unpack_from(raw)
    if version != TOKEN_VERSION:
        raise InvalidToken("This card code has a format this system does not know.")
    if len(raw) != _HEAD.size + prefix_len + _TAIL.size + _SIGNATURE_BYTES or not 1 <= prefix_len <= 8:
        raise InvalidToken("This card code is incomplete or altered.")
    payload, signature = raw[:-_SIGNATURE_BYTES], raw[-_SIGNATURE_BYTES:]
    public_key = card_keys.public_key_for(kid)
    if public_key is None:
        raise InvalidToken("This card code was not signed by this organisation (or its key has been retired).")
    try:
        public_key.verify(signature, SIGNING_CONTEXT + payload)
    except InvalidSignature:
        raise InvalidToken("This card code's signature does not match: it is forged or altered.") from None
    # Signed by us, so well formed; checked anyway rather than trusted.
    prefix = payload[_HEAD.size:_HEAD.size + prefix_len].decode("ascii", "replace")
    year, seq, days = _TAIL.unpack_from(payload, _HEAD.size + prefix_len)
    if not PREFIX_RE.match(prefix):
        raise InvalidToken("This card code is malformed.")
    expires_on = None if days == 0 else _EPOCH + timedelta(days=days - 1)
    return Credential(version, kid.hex(), format_card_number(prefix, year, seq), expires_on)


MAX_SCAN_CHARS = 2048  # far more than any QR code on a card holds


def scanned_token(raw: Any) -> str:
    """The credential in what was scanned or typed: a bare code, or the URL printed in the card's QR.

    ``https://<host>/<any path>/verify/<code>`` (with or without a query,
    fragment or trailing slash) and ``/verify/<code>`` give ``<code>``; other
    text comes back trimmed (of spaces, a query or a trailing slash). A URL
    with no code after ``/verify/``, anything that is not text, and text
    longer than MAX_SCAN_CHARS give "", which ``verify_token`` calls invalid.
    The verification page, the verify API and the door check-in all read
    scans through here.
    """
    if not isinstance(raw, str) or len(raw) > MAX_SCAN_CHARS:
        return ""
    text = raw.strip().split("#", 1)[0].split("?", 1)[0].rstrip("/")  # a code holds none of # ? /
    if "://" not in text and not text.startswith("/"):
        return text
    _, found, code = text.rpartition("/verify/")
    return code if found and "/" not in code else ""


def verification_url(card: MembershipCard, base_url: str | None = None) -> str:
    """The URL a phone opens from the card's QR code: <public URL>/verify/<token>."""
    return verify_base_url(base_url) + card_token(card)


def verify_base_url(base_url: str | None = None) -> str:
    """``<public URL>/verify/``: the given base, else MUSTER_PUBLIC_URL.

    Never the request's Host header: anyone can send any Host, and what is
    printed on a card or mailed must point at the real site.
    """
    base = (base_url or current_app.config.get("PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
    return f"{base}/verify/"

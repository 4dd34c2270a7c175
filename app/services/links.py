"""Signed, expiring, single-use links: the one place that makes and checks them.

Every mailed link that lets someone act without signing in (verify an email
address, reset a forgotten password, set a first password) is made by
``issue`` and checked by ``check`` / ``redeem``. The token is an
itsdangerous signature (SECRET_KEY, salted per purpose) over a row id and a
random nonce, so it cannot be forged, cannot be used for another purpose,
and names nobody. The row (app/models/links.py) holds the expiry, the use
and the nonce's hash, so a link works once, a newer link of the same
purpose for the same person replaces the older one, and a database copy
yields no working link.

What goes wrong is said precisely, so the page can offer a new link:
``LinkInvalid`` (tampered, truncated, for something else), ``LinkExpired``
and ``LinkUsed`` (followed already, or replaced by a newer link). Services
flush, never commit: the caller commits the link with the mail that
carries it, and the use with the change it allowed.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import update

from app.extensions import db
from app.models import LINK_PURPOSES, Member, OneTimeLink, User
from app.models.base import utcnow
from app.services.errors import ServiceError


class LinkError(ServiceError):
    """The link cannot be used; ``reason`` is invalid, expired or used."""

    reason = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="token", status=400 if self.reason == "invalid" else 410)


class LinkInvalid(LinkError):
    reason = "invalid"


class LinkExpired(LinkError):
    reason = "expired"


class LinkUsed(LinkError):
    reason = "used"


def _serializer(purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"muster-link:{purpose}")


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _check_purpose(purpose: str) -> None:
    if purpose not in LINK_PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")


def issue(purpose: str, *, user: User | None = None, member: Member | None = None, hours: float,
          data: dict[str, Any] | None = None) -> str:
    """A new link's token, valid for ``hours``; earlier unused links of this purpose for this person stop working."""
    _check_purpose(purpose)
    if user is None and member is None:
        raise ValueError("a link concerns a user or a member")
    now = utcnow()
    db.session.flush()  # the person's id, for replacing their earlier links
    owner = (OneTimeLink.user_id == user.id) if user is not None else (OneTimeLink.member_id == member.id)
    db.session.execute(
        update(OneTimeLink).where(owner, OneTimeLink.purpose == purpose, OneTimeLink.used_at.is_(None))
        .values(used_at=now, superseded=True).execution_options(synchronize_session=False))
    nonce = secrets.token_urlsafe(24)
    link = OneTimeLink(purpose=purpose, nonce_hash=_hash(nonce), user=user, member=member, data=data or {},
                       created_at=now, expires_at=now + timedelta(hours=hours))
    db.session.add(link)
    db.session.flush()
    return _serializer(purpose).dumps([link.id, nonce])


def check(purpose: str, token: str | None) -> OneTimeLink:
    """The link a token names, if it can still be used (raises LinkInvalid, LinkExpired or LinkUsed)."""
    _check_purpose(purpose)
    try:
        link_id, nonce = _serializer(purpose).loads(token or "")
        link_id = int(link_id)
        nonce = str(nonce)
    except (BadSignature, TypeError, ValueError):
        raise LinkInvalid("This link is not valid: it may have been cut short or changed. Ask for a new one.")
    link = db.session.get(OneTimeLink, link_id)
    if link is None or link.purpose != purpose or not secrets.compare_digest(link.nonce_hash, _hash(nonce)):
        raise LinkInvalid("This link is not valid: it may have been cut short or changed. Ask for a new one.")
    if link.used_at is not None:
        if link.superseded:
            raise LinkUsed("A newer link was sent since this one: use the latest, or ask for a new one.")
        raise LinkUsed("This link has been used already. Ask for a new one if you need it again.")
    if link.expires_at <= utcnow():
        raise LinkExpired("This link has expired. Ask for a new one.")
    return link


def redeem(purpose: str, token: str | None) -> OneTimeLink:
    """Check the link and mark it used, once: of two requests with one link, exactly one gets it."""
    link = check(purpose, token)
    won = db.session.execute(
        update(OneTimeLink).where(OneTimeLink.id == link.id, OneTimeLink.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if not won:
        raise LinkUsed("This link has been used already. Ask for a new one if you need it again.")
    db.session.refresh(link)
    return link

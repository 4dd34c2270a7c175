"""Passwords, login with lockout, and API bearer tokens.

The same ``authenticate`` serves the console login page and the API token
endpoint, so both share the lockout rule: after LOGIN_MAX_ATTEMPTS failures
in a row the account is locked for LOGIN_LOCK_MINUTES.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, has_request_context, request
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models import ApiToken, User
from app.models.base import utcnow
from app.services import audit
from app.services.errors import ServiceError

# Checked against when the email is unknown, so timing does not reveal which emails exist.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="pbkdf2:sha256:1000")
MIN_PASSWORD_LENGTH = 10
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_password(password: str) -> str:
    method = current_app.config.get("PASSWORD_METHOD", "scrypt")
    return generate_password_hash(password, method=method)


def set_password(user: User, password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ServiceError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.", field="password")
    user.password_hash = hash_password(password)


class LoginError(ServiceError):
    """Wrong credentials or a locked/inactive account (401; 423 when locked)."""


def authenticate(email: str, password: str) -> User:
    """Check credentials, applying the lockout; flushes the counters either way."""
    email = (email or "").strip().lower()
    user = db.session.scalar(select(User).where(User.email == email))
    now = utcnow()
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        raise LoginError("Wrong email or password.", status=401)
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        raise LoginError(
            f"Too many failed attempts: this account is locked for {minutes} more minute(s).", status=423
        )
    if not user.password_hash or not check_password_hash(user.password_hash, password or ""):
        user.failed_logins += 1
        max_attempts = current_app.config["LOGIN_MAX_ATTEMPTS"]
        if user.failed_logins >= max_attempts:
            user.locked_until = now + timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
            audit.record(user, "login.locked", user, summary=f"{user.email} locked after {max_attempts} failures")
        else:
            audit.record(user, "login.failed", user, summary=f"Failed login for {user.email}")
        db.session.flush()
        raise LoginError("Wrong email or password.", status=401)
    if not user.active:
        raise LoginError("This account is disabled.", status=401)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    user.last_login_ip = request.remote_addr if has_request_context() else None
    audit.record(user, "login", user, summary=f"{user.email} logged in")
    db.session.flush()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User, name: str = "api") -> tuple[str, ApiToken]:
    """A new bearer token; the plain value is returned once and never stored."""
    token = secrets.token_urlsafe(32)
    days = current_app.config["API_TOKEN_DAYS"]
    row = ApiToken(user_id=user.id, token_hash=_token_hash(token), name=name,
                   expires_at=utcnow() + timedelta(days=days))
    db.session.add(row)
    db.session.flush()
    return token, row


# Every API request runs this; built once.
_TOKEN = select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.token_hash == bindparam("token_hash"))


def user_for_token(token: str) -> tuple[User, ApiToken] | None:
    """The active user behind a live token, or None."""
    if not token:
        return None
    row = db.session.scalar(_TOKEN, {"token_hash": _token_hash(token)})
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
        return None
    if not row.user.active:
        return None
    # A minute's precision is plenty, and spares busy clients (a gate scanning cards) a write per request.
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        row.last_used_at = now
    return row.user, row


def revoke_token(actor: User, row: ApiToken) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.flush()
        audit.record(actor, "token.revoke", row.user, summary=f"Revoked API token {row.id} of {row.user.email}")

"""Passwords, sign-in with lockout, sessions, and API bearer tokens.

The same ``authenticate`` serves the console login page and the API token
endpoint, so both share one lockout rule. Failures are counted per login
email *and* network address (``LoginFailure``): after LOGIN_MAX_ATTEMPTS
failures that address may not sign in to that account for
LOGIN_LOCK_MINUTES, doubling with every further failure up to
LOGIN_LOCK_MAX_MINUTES. So an attacker hammering an account locks out only
themselves; the owner signs in from any other address.

Nothing in the answer tells an attacker more than "wrong email or password":
an unknown email, a wrong password and a locked address answer the same
(status, message) and take the same time, because every attempt runs exactly
one password hash of the configured algorithm and cost.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.orm import load_only
from werkzeug.security import check_password_hash, generate_password_hash

from app.database import insert_on_conflict, write_aside
from app.extensions import db
from app.models import ApiToken, LoginFailure, Member, User
from app.models.base import utcnow
from app.models.rbac import new_session_token
from app.security import grants_of, remember_grants
from app.services import audit
from app.services.errors import ServiceError

MIN_PASSWORD_LENGTH = 10
LAST_USED_PRECISION = timedelta(minutes=1)
WRONG_CREDENTIALS = "Wrong email or password."
# Stands in for a stored hash when there is none to check (unknown email, locked
# address), one per hashing method, so those attempts cost what a real check costs.
_DUMMY_HASHES: dict[str, str] = {}


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=_password_method())


def _password_method() -> str:
    return current_app.config.get("PASSWORD_METHOD", "scrypt")


def _dummy_hash() -> str:
    method = _password_method()
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash(secrets.token_urlsafe(16), method=method)
    return _DUMMY_HASHES[method]


def check_password_rules(password: str | None) -> None:
    """Refuse a password that breaks the rules (the one place they are written)."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ServiceError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.", field="password")


def set_password(user: User, password: str) -> None:
    """Set a new password; every session signed in with the old one ends."""
    check_password_rules(password)
    user.password_hash = hash_password(password)
    end_sessions(user)


def end_sessions(user: User) -> None:
    """Sign the user out everywhere: session cookies name the user by this token."""
    user.session_token = new_session_token()


class LoginError(ServiceError):
    """Wrong credentials, a locked address or an inactive account (401)."""


def find_login(login: str | None) -> tuple[User | None, str]:
    """The user a sign-in name (an email or a phone number) names, and the key its failures count under.

    An email is matched case-insensitively. Anything without an ``@`` is read
    as a phone number (normalised as member records are, ``members.normalize_phone``)
    and finds the login of the one live member record with that number; a
    number shared by several members names nobody, rather than one at random.
    Failures of a login that was found count under its email, so the email
    and the phone share one lockout; a name that finds nobody counts under
    itself (as typed, normalised), exactly like an unknown email.
    """
    from app.services.members import normalize_phone  # late: members is a big module sign-in rarely needs

    raw = (login or "").strip()
    if "@" in raw or not raw:
        email = raw.lower()[:254]  # no account has a longer one; the failure row's key fits
        return db.session.scalar(select(User).where(User.email == email)), email
    try:
        phone = normalize_phone(raw[:40])
    except ServiceError:
        phone = None
    if phone is None:
        return None, raw.lower()[:254]
    found = db.session.scalars(
        select(User).join(Member, Member.id == User.member_id)
        .where(Member.phone == phone, Member.deleted_at.is_(None)).limit(2)
    ).all()
    if len(found) != 1:
        return None, phone
    return found[0], found[0].email


def authenticate(email: str, password: str, address: str | None = None) -> User:
    """Check credentials from ``address`` (the client's IP), applying the lockout.

    ``email`` is the sign-in name: an email address or a member's phone
    number (``find_login``). Flushes the failure count either way: the
    caller commits even when this raises, or the lockout could be dodged.
    """
    address = (address or "unknown")[:64]
    now = utcnow()
    user, email = find_login(email)
    failure = db.session.scalar(
        select(LoginFailure).where(LoginFailure.email == email, LoginFailure.address == address)
    )
    locked = failure is not None and failure.locked_until is not None and failure.locked_until > now
    stored = user.password_hash if user is not None and user.password_hash and not locked else None
    # Exactly one hash check on every path, so the answer takes as long whatever the reason.
    matches = check_password_hash(stored or _dummy_hash(), password or "")
    if locked:
        raise LoginError(WRONG_CREDENTIALS, status=401)
    if stored is None or not matches:
        _count_failure(email, address, user, now)
        raise LoginError(WRONG_CREDENTIALS, status=401)
    if not user.active:
        raise LoginError("This account is disabled.", status=401)
    if failure is not None:
        db.session.delete(failure)
    user.last_login_at = now
    user.last_login_ip = address
    audit.record(user, "login", user, summary=f"{user.email} logged in")
    db.session.flush()
    return user


def _count_failure(email: str, address: str, user: User | None, now: datetime) -> None:
    """One more failure for (email, address); lock that address out once there are too many."""
    config = current_app.config
    failures = _bump_failures(email, address, now)
    over = failures - config["LOGIN_MAX_ATTEMPTS"]
    if over >= 0:
        minutes = min(config["LOGIN_LOCK_MINUTES"] * 2 ** min(over, 20), config["LOGIN_LOCK_MAX_MINUTES"])
        db.session.execute(
            update(LoginFailure)
            .where(LoginFailure.email == email, LoginFailure.address == address)
            .values(locked_until=now + timedelta(minutes=minutes))
        )
    # Counts of addresses that have been quiet for the longest lock are forgotten.
    forget_before = now - timedelta(minutes=config["LOGIN_LOCK_MAX_MINUTES"])
    db.session.execute(delete(LoginFailure).where(LoginFailure.last_failed_at < forget_before))
    if user is not None:
        if over >= 0:
            audit.record(user, "login.locked", user,
                         summary=f"{user.email} locked for {minutes} minutes from {address} after {failures} failures")
        else:
            audit.record(user, "login.failed", user, summary=f"Failed login for {user.email} from {address}")
    db.session.flush()


def _bump_failures(email: str, address: str, now: datetime) -> int:
    """Add one failure with a single upsert, so simultaneous attempts all count."""
    stmt = insert_on_conflict(LoginFailure).values(email=email, address=address, failures=1, last_failed_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginFailure.email, LoginFailure.address],
        set_={"failures": LoginFailure.failures + 1, "last_failed_at": now},
    ).returning(LoginFailure.failures)
    db.session.flush()
    return db.session.execute(stmt).scalar_one()


def clear_failures(user: User) -> int:
    """Forget the user's failed sign-ins from every address; returns how many addresses were locked."""
    now = utcnow()
    locked = sum(1 for f in user.login_failures if f.locked_until is not None and f.locked_until > now)
    db.session.execute(delete(LoginFailure).where(LoginFailure.email == user.email))
    db.session.expire(user, ["login_failures"])
    return locked


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


# Every API request runs this; built once. The token, its user and the user's grants in one row
# (the grants as one JSON value, ``security.grants_of``): one round trip, and the ORM builds two
# objects, not two per permission. The columns a request needs; any other loads on first use.
_TOKEN = (
    select(ApiToken, User, grants_of(User.id).label("grants"))
    .join(User, User.id == ApiToken.user_id)
    .options(load_only(ApiToken.id, ApiToken.user_id, ApiToken.expires_at, ApiToken.last_used_at,
                       ApiToken.revoked_at),
             load_only(User.id, User.email, User.active, User.member_id))
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def user_for_token(token: str) -> tuple[User, ApiToken] | None:
    """The active user behind a live token, or None; the user's grants are known for the request."""
    if not token:
        return None
    now = utcnow()
    found = db.session.execute(_TOKEN, {"token_hash": _token_hash(token), "now": now}).first()
    if found is None:
        return None
    row, user, grants = found
    if row.revoked_at is not None or (row.expires_at and row.expires_at <= now) or not user.active:
        return None
    remember_grants(user, grants)
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        _note_use(row.id, now)
    return user, row


def _note_use(token_id: int, now: datetime) -> None:
    """Record a token's use, at most once a minute, however many requests race to do it.

    Most requests that carry a token only read, so the write goes through
    ``write_aside`` (a short transaction that waits for the write lock), never
    into the reading one; the condition in the UPDATE keeps concurrent first
    uses to one change. A minute's precision is plenty, and spares busy
    clients (a gate scanning cards) a write per request.
    """
    with write_aside():
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id,
                   or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - LAST_USED_PRECISION))
            .values(last_used_at=now)
        )


def revoke_token(actor: User, row: ApiToken) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.flush()
        audit.record(actor, "token.revoke", row.user, summary=f"Revoked API token {row.id} of {row.user.email}")

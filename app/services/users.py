"""Staff and member logins: creating accounts, switching them on and off, unlocking them.

Roles are handed out by ``app.services.rbac``; this module looks after the
account itself. Two rules protect accounts from the people who manage them:

- an actor reaches a user only through ``users.update`` scope (a role or the
  member record inside the actor's area), and
- an actor may not change an account that holds a staff permission the actor
  does not hold at the same place, so a province admin cannot lock out a super
  admin (member self-service permissions do not count).

Every change is written to the audit log, attached to a unit the actor can see.
"""

from __future__ import annotations

from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select

from app.extensions import db
from app.models import Role, Unit, User
from app.models.base import utcnow
from app.security import PORTAL_PERMISSIONS, authorize, can, check_unit_choice, forget_grants, has_permission
from app.services import audit, auth, rbac
from app.services.auth import set_password
from app.services.errors import DuplicateError, Forbidden, ServiceError
from app.services.validation import FieldErrors


def normalize_login_email(raw: str | None) -> str:
    """A login email, validated and lower-cased (logins are matched case-insensitively)."""
    raw = (raw or "").strip()
    if not raw:
        raise ServiceError("Give an email address.", field="email")
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ServiceError(f"'{raw}' is not a valid email address: {exc}", field="email") from None
    return result.normalized.lower()


def _audit_unit(actor, user: User) -> int | None:
    """The unit an account change is filed under: one of the user's units the actor can see."""
    candidates = [a.unit_id for a in user.assignments if a.unit_id is not None]
    if user.member is not None:
        candidates.insert(0, user.member.unit_id)
    for unit_id in candidates:
        if actor is None or can(actor, "users.read", unit_id):
            return unit_id
    return None


def check_can_manage(actor, user: User) -> None:
    """Refuse unless ``actor`` reaches ``user`` with users.update and holds everything they hold.

    The second half keeps accounts safe from less powerful staff: whoever
    switches an account off or unlocks it must already hold every permission
    that account holds, at each place it holds it.
    """
    if actor is None:
        return
    authorize(actor, "users.update", user, message="You may not change this user.")
    now = utcnow()
    for assignment in user.assignments:
        if assignment.expires_at is not None and assignment.expires_at <= now:
            continue
        for perm in assignment.role.permissions:
            # Self-service permissions (the member role) carry no power over others.
            if perm.name in PORTAL_PERMISSIONS:
                continue
            if not can(actor, perm.name, assignment.unit):
                raise Forbidden(
                    f"{user.email} holds {perm.name}"
                    f"{' at ' + assignment.unit.name if assignment.unit else ' everywhere'}, "
                    "which you do not; only someone who holds it can change this account."
                )


def create_user(
    actor,
    email: str,
    password: str | None,
    *,
    role: Role | None = None,
    unit: Unit | None = None,
    expires_at: datetime | None = None,
) -> User:
    """Create a login, optionally with a first role at ``unit`` (global when None).

    Staff without global ``users.create`` must give a role at a unit inside
    their area: a user with neither would be outside their reach the moment
    it was created.
    """
    if actor is not None:
        if not has_permission(actor, "users.create"):
            raise Forbidden("You may not add users.")
        if not can(actor, "users.create", None):
            if role is None:
                raise ServiceError(
                    "Give the new user a role in your area; otherwise they would be out of your reach.",
                    field="role_id",
                )
            check_unit_choice(actor, unit, "users.create", refusal="You may only add users inside your own area.")
    user = User(active=True)
    errors = FieldErrors()  # a bad email and a short password are reported together
    with errors.check():
        user.email = email = normalize_login_email(email)
    if password is not None:  # None: no usable password until they follow an activation link (services.accounts)
        with errors.check():
            set_password(user, password)
    errors.raise_if_any()
    existing = db.session.scalar(select(User.id).where(User.email == email))
    if existing is not None:
        raise DuplicateError(f"A user with the email {email} already exists.", field="email", existing_id=existing)
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "user.create", user, unit_id=unit.id if unit is not None and role is not None else None,
                 summary=f"Created user {email}")
    if role is not None:
        rbac.assign_role(actor, user, role, unit, expires_at)
    return user


def set_active(actor, user: User, active: bool) -> User:
    """Switch an account on or off; an inactive account cannot log in or use the API."""
    check_can_manage(actor, user)
    if actor is not None and actor.id == user.id and not active:
        raise ServiceError("You cannot deactivate your own account.", status=409)
    if user.active == active:
        return user
    user.active = active
    if not active:
        auth.end_sessions(user)  # a cookie from before stays dead even if the account comes back
    db.session.flush()
    forget_grants()
    audit.record(
        actor,
        "user.activate" if active else "user.deactivate",
        user,
        unit_id=_audit_unit(actor, user),
        summary=f"{'Activated' if active else 'Deactivated'} {user.email}",
        changes={"active": {"before": not active, "after": active}},
    )
    return user


def unlock(actor, user: User) -> User:
    """Lift the lockouts after failed logins: forgets the failures from every address."""
    check_can_manage(actor, user)
    if not user.login_failures:
        return user
    failures = sum(f.failures for f in user.login_failures)
    locked = auth.clear_failures(user)
    db.session.flush()
    audit.record(actor, "user.unlock", user, unit_id=_audit_unit(actor, user),
                 summary=f"Unlocked {user.email}",
                 changes={"failed_logins": {"before": failures, "after": 0},
                          "locked_addresses": {"before": locked, "after": 0}})
    return user

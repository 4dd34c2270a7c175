"""Joining through the portal, email verification, and the staff's decision on pending members.

A person who joins at ``/join`` becomes a *pending* member (the registry's
own create path, ``members.create_member``, with its cleaning and duplicate
rules) with a portal login (the member role, linked by ``user.member_id``)
and the consent they gave (time and privacy notice version). A mail with a
signed, expiring, single-use link (``links``, purpose ``verify-email``)
proves the mailbox is theirs. Staff who may change members in the member's
unit (``members.update``, the right ``members.change_status`` asks for
anyway; no new permission, so existing roles need no data migration)
approve them (the member becomes active and gets a welcome mail) or turn
them down with a reason (mailed to them).

Why a rejection withdraws the record (``deleted_at``) instead of a status:
the member lifecycle has no "rejected" status, and an application that was
turned down is not a member; withdrawn, it leaves every list, count and
export, yet stays on record for the audit trail and can be restored by
someone holding ``members.delete``. Its login is switched off. A person
turned down cannot join again with the same details (the duplicate rule
still sees the withdrawn record); staff restore it instead.

Duplicates answer one message that names neither the field nor the holder:
whoever is trying should not learn that a given ID, phone or address
belongs to someone. Rules live here; the services flush and the caller
(the portal view, the console, the API) commits once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import MailMessage, Member, Unit, User
from app.models.base import utcnow
from app.security import authorize, permits, scoped
from app.services import (
    audit,
    auth,
    links,
    mail,
    member_search,
    notifications,
    rbac,
    referrals,
    users,
)
from app.services import members as member_service
from app.services.errors import DuplicateError, ServiceError
from app.services.inputs import parse_id
from app.services.validation import FieldErrors

PERMISSION = "members.update"  # approving or turning down a pending member
VERIFY = "verify-email"
VERIFY_MAIL = "portal.verify-email"
WELCOME_MAIL = "portal.welcome"
REJECTED_MAIL = "portal.rejected"
# What a person joining gives; all required (staff may leave most of them empty, a joiner may not).
MEMBER_FIELDS = ("first_name", "last_name", "date_of_birth", "national_id", "phone", "email", "address")
REQUIRED = {"date_of_birth": "Date of birth", "national_id": "National ID number", "phone": "Phone number",
            "email": "Email address", "address": "Address"}
REASON_MAX = 1000

DUPLICATE_MESSAGE = (
    "Someone is already registered with this national ID, phone number or email address. "
    "If that is you, sign in (or ask for a new password) instead of joining again; "
    "otherwise, please contact your branch."
)


class DuplicateApplication(ServiceError):
    """The national ID, phone or email is taken: one message, naming neither the field nor the holder."""

    def __init__(self) -> None:
        super().__init__(DUPLICATE_MESSAGE, status=409)


@dataclass(frozen=True)
class Joined:
    member: Member
    user: User


# --- joining ------------------------------------------------------------------------------


def ward_label() -> str:
    """The name of the lowest geography level ("ward"), for messages."""
    levels = current_app.config["UNIT_LEVELS"]
    return levels[-1] if levels else "unit"


def children_of(parent: Unit | None) -> list[Unit]:
    """The units right below ``parent`` (the top level for None), by name: one list of the ward picker.

    The geography's names are public (the join page shows them to anyone).
    """
    where = Unit.parent_id.is_(None) if parent is None else Unit.parent_id == parent.id
    return list(db.session.scalars(select(Unit).where(where).order_by(Unit.name, Unit.id)))


def ward_chain(ids: list[Any]) -> list[Unit]:
    """The units picked from the top level down, each a child of the one before.

    ``ids[k]`` is the choice at level k, as sent; the chain stops at the first
    missing, malformed or misplaced choice (a district changed after its
    ward was picked drops the ward), so what the page shows always holds together.
    """
    chain: list[Unit] = []
    for raw in ids:
        pk = parse_id(raw)
        unit = db.session.get(Unit, pk) if pk is not None else None
        if unit is None or unit.parent_id != (chain[-1].id if chain else None):
            break
        chain.append(unit)
    return chain


def chosen_ward(unit_id: Any) -> Unit:
    """The unit a joiner picked: it must exist and be a leaf of the tree (a ward, not a province)."""
    pk = parse_id(unit_id)
    unit = db.session.get(Unit, pk) if pk is not None else None
    if unit is None:
        raise ServiceError(f"Choose your {ward_label()}.", field="unit_id")
    if db.session.scalar(select(func.count(Unit.id)).where(Unit.parent_id == unit.id)):
        raise ServiceError(f"Choose your {ward_label()} too, not only the {unit.level_name}.", field="unit_id")
    return unit


def check_application(data: dict[str, Any]) -> dict[str, Any]:
    """Every rule on what the person typed, each field's message at once (``ValidationErrors``).

    No writes and no look-ups of other people (duplicates are ``join``'s):
    the page calls this too when its own form checks failed, so one submit
    lists everything. Returns the member's cleaned values (with ``unit_id``).
    """
    errors = FieldErrors()
    values: dict[str, Any] = {}
    for key, label in REQUIRED.items():
        if not str(data.get(key) or "").strip():
            errors.add(key, f"{label} is required.")
    with errors.check():
        values = member_service.clean({key: data.get(key) for key in MEMBER_FIELDS}, partial=True)
    with errors.check():
        values["unit_id"] = chosen_ward(data.get("unit_id")).id
    with errors.check():
        auth.set_password(User(), data.get("password") or "")  # the login's own rule (length)
    if not data.get("consent"):
        errors.add("consent", "Please read the privacy notice and agree to it to join.")
    with errors.check():
        referrals.check_join_code(data.get("referral_code"), national_id=values.get("national_id"),
                                  phone=values.get("phone"), email=values.get("email"))
    errors.raise_if_any()
    return values


def _refuse_duplicates(values: dict[str, Any]) -> None:
    try:
        member_service.check_duplicates(None, national_id=values.get("national_id"), phone=values.get("phone"),
                                        email=values.get("email"))
    except DuplicateError:
        raise DuplicateApplication() from None
    if db.session.scalar(select(User.id).where(User.email == values["email"])) is not None:
        raise DuplicateApplication()


def join(data: dict[str, Any]) -> Joined:
    """A pending member, their portal login and the verification mail, all or nothing.

    ``data`` holds the member fields, ``unit_id``, ``password`` and
    ``consent`` (truthy), and optionally ``referral_code`` (typed, or from
    the join link: ``referral_source`` "link"). The consent is stored with the time and
    ``PRIVACY_NOTICE_VERSION``. Raises ``ValidationErrors`` (every field at
    fault) or ``DuplicateApplication``; a duplicate that slips in between the
    check and the insert (two tries at once) answers the same.
    """
    values = check_application(data)
    _refuse_duplicates(values)
    try:
        with db.session.begin_nested():
            member = member_service.create_member(
                None, {**values, "status": "pending", "status_reason": "Joined through the portal"})
            member.consent_at = utcnow()
            member.consent_version = current_app.config["PRIVACY_NOTICE_VERSION"]
            user = users.create_user(None, values["email"], data.get("password") or "")
            user.member = member
            rbac.assign_role(None, user, rbac.role_by_name("member"), None)
            db.session.flush()
    except (DuplicateError, IntegrityError):
        raise DuplicateApplication() from None
    # Who brought them: the code (checked above), else a prospect recorded with their phone or email.
    referrals.record_join(member, data.get("referral_code"),
                          source="link" if data.get("referral_source") == "link" else "code")
    audit.record(None, "member.join", member, summary=f"{member.full_name} joined through the portal",
                 changes={"consent_version": member.consent_version})
    send_verification(member, user)
    return Joined(member, user)


def send_verification(member: Member, user: User | None = None) -> MailMessage:
    """Mail a new verification link to the member's address (earlier links stop working)."""
    hours = current_app.config["VERIFY_EMAIL_HOURS"]
    token = links.issue(VERIFY, member=member, hours=hours, data={"email": member.email})
    return mail.send_mail(VERIFY_MAIL, member.email, {"link": mail.link_to("portal.verify_email", token=token),
                                                      "hours": int(hours) if hours == int(hours) else hours},
                          member=member, user=user, sensitive=True)


def check_verification(token: str | None) -> None:
    """Is this verification link still usable? (Raises the ``links`` errors; uses nothing up.)"""
    links.check(VERIFY, token)


def verify_email(token: str | None) -> Member:
    """Follow a verification link: the member's address counts as theirs from now (the link is used up).

    Raises ``links.LinkInvalid`` / ``LinkExpired`` / ``LinkUsed``; a link for
    an address the member no longer has (changed since) is invalid.
    """
    link = links.redeem(VERIFY, token)
    member = link.member
    if member is None or member.deleted_at is not None or (link.data or {}).get("email") != member.email:
        raise links.LinkInvalid("This link was for an address that is no longer on record. Ask for a new one.")
    if member.email_verified_at is None:
        member.email_verified_at = utcnow()
        db.session.flush()
        audit.record(None, "member.verify-email", member, summary=f"{member.full_name} confirmed {member.email}")
    return member


def resend_verification(email: str | None) -> None:
    """Send a new link if ``email`` is a pending, unverified application's; nothing otherwise.

    The caller answers the same either way, so the form reveals nobody. A
    malformed address is a field error (that reveals nothing either).
    """
    address = member_service.normalize_email(email)
    if address is None:
        raise ServiceError("Give the email address you joined with.", field="email")
    member = db.session.scalars(
        select(Member).where(Member.email == address, Member.deleted_at.is_(None), Member.status == "pending",
                             Member.email_verified_at.is_(None)).limit(1)).first()
    if member is not None:
        send_verification(member, _login_of(member))


def _login_of(member: Member) -> User | None:
    return db.session.scalar(select(User).where(User.member_id == member.id))


# --- the approvals queue --------------------------------------------------------------------


def pending_members(actor: Any, q: str = "") -> Select:
    """Live pending members the actor may approve (``members.update`` scope), oldest first."""
    clauses = member_search.list_clauses(q=q, status=["pending"])
    return scoped(select(Member).where(*clauses), actor, PERMISSION, Member).order_by(Member.created_at, Member.id)


def pending_page(actor: Any, q: str, page: int, per_page: int) -> tuple[list[Member], int]:
    """One page (from 0) of ``pending_members`` and their total."""
    stmt = pending_members(actor, q)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(db.session.scalars(stmt.offset(page * per_page).limit(per_page))) if page * per_page < total else []
    return rows, total


def logins_of(members: Iterable[Member]) -> dict[int, User]:
    """The portal logins of ``members`` by member id (one query), for the queue's "has a login" column."""
    ids = [m.id for m in members]
    if not ids:
        return {}
    return {u.member_id: u for u in db.session.scalars(select(User).where(User.member_id.in_(ids)))}


def _check_pending(member: Member) -> None:
    if member.status != "pending":
        raise ServiceError(f"{member.full_name} is not waiting for approval (their status is {member.status}).",
                           status=409)


def approve(actor: Any, member: Member, note: str | None = None) -> Member:
    """Activate a pending member (the status lifecycle, so their card follows) and mail them a welcome.

    ``note`` (optional) is kept in the status history after "Approved".
    """
    authorize(actor, PERMISSION, member, message="You may not approve members here.")
    _check_pending(member)
    note = (note or "").strip()[:REASON_MAX]
    change = member_service.change_status(actor, member, "active", f"Approved: {note}" if note else "Approved")
    audit.record(actor, "member.approve", member, summary=f"Approved {member.full_name}")
    mail.send_mail(WELCOME_MAIL, member.email, {"has_login": _login_of(member) is not None}, member=member,
                   actor=actor, key=f"{WELCOME_MAIL}:{member.id}:{change.id}")
    notifications.notify(member, "membership.approved", "Your membership is approved",
                         f"Welcome! Your membership number is {member.membership_number}.", "/")
    return member


def approve_many(actor: Any, ids: Iterable[Any]) -> tuple[list[Member], int]:
    """Approve every pending member of ``ids`` the actor may approve; (approved, how many were skipped).

    Ids that name nobody, someone outside the actor's scope or someone not
    pending are skipped, not refused: a bulk action never reveals what lies
    outside the actor's area, and one stale row does not spoil the rest.
    """
    approved: list[Member] = []
    skipped = 0
    for raw in dict.fromkeys(str(i).strip() for i in ids):
        pk = parse_id(raw)
        member = db.session.get(Member, pk) if pk is not None else None
        if (member is None or member.deleted_at is not None or member.status != "pending"
                or not permits(actor, PERMISSION, member)):
            skipped += 1
            continue
        approved.append(approve(actor, member))
    return approved, skipped


def reject(actor: Any, member: Member, reason: str | None) -> Member:
    """Turn down a pending application with a reason: mailed to them, record withdrawn, login off."""
    authorize(actor, PERMISSION, member, message="You may not turn down members here.")
    _check_pending(member)
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give the reason: it is sent to the person who applied.", field="reason")
    if len(reason) > REASON_MAX:
        raise ServiceError(f"The reason is too long ({REASON_MAX} characters at most).", field="reason")
    now = utcnow()
    member.rejection_reason = reason
    member.deleted_at = now
    member.deleted_by_id = member.updated_by_id = getattr(actor, "id", None)
    login = _login_of(member)
    if login is not None:
        login.active = False
        auth.end_sessions(login)
    db.session.flush()
    referrals.on_member_rejected(member, f"The application was turned down: {reason}")
    audit.record(actor, "member.reject", member, summary=f"Turned down {member.full_name}: {reason}",
                 changes={"reason": reason})
    mail.send_mail(REJECTED_MAIL, member.email, {"reason": reason}, member=member, actor=actor,
                   key=f"{REJECTED_MAIL}:{member.id}:{int(now.timestamp())}")
    return member

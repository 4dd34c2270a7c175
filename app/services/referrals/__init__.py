"""Referrals (issue 13): codes, who brought whom, credit that cannot be gamed, and the points ledger.

The lifecycle of a ``Referral`` (internal status names, app/models/referrals.py):

- ``pending``: a member recorded a prospect (``record_prospect``) who has not joined yet;
- ``registered``: the person joined, with a code or link (``record_join`` creates the
  referral in this state) or as a recorded prospect (matched by phone or email);
- ``credited``: the referred member became active (``on_member_activated``): the
  referrer's points are awarded in the ledger, and only then;
- ``expired``: still pending REFERRAL_EXPIRY_DAYS after it was recorded (``expire_sweep``);
- ``rejected``: the join was rejected (``on_member_rejected``), another member's referral
  came first, or a credit was reversed (``reverse_credit``: revoked by staff, expulsion,
  a duplicate) with a reversal entry in the ledger.

Gaming guards: nobody refers themselves (the same member, or one sharing their national
ID, phone or email); a new member has one referrer at most, the first valid referral
wins (and the unique ``referred_member_id`` makes the database refuse a second); the
same prospect cannot be recorded twice; points come from the ledger only, where an award
is undone by a reversal entry, never edited, so a balance is always the ledger's sum.

Where it is wired: joining checks a typed code with every other field
(``check_join_code``) and records the referral with the new member
(``record_join``); ``members.change_status`` calls ``follow_member_status``
(active credits, expelled reverses); a rejected application and a deleted
record (a duplicate, or entered in error) close or reverse theirs; the
scheduler runs ``expire_sweep``. Staff lists and edits are in ``.staff``,
figures in ``.stats``, a member's own view in ``.mine``.

Every function flushes and never commits: the view, task or CLI command that calls it
commits once.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.database import in_values
from app.extensions import db
from app.models import Member, PointsEntry, Referral, ReferralCode
from app.models.base import utcnow
from app.models.referrals import CODE_ALPHABET, CODE_LENGTH
from app.security import authorize
from app.services import audit, mail, notifications
from app.services.errors import DuplicateError, ServiceError, ValidationErrors
from app.services.members import normalize_email, normalize_phone

# Only active members recruit: a pending applicant, or a member who lapsed, resigned or was
# expelled, holds a code that no longer earns anything (the join form calls it expired).
REFERRER_STATUSES = ("active",)
OPEN_STATUSES = ("pending", "registered")  # not yet credited, expired or rejected
CODE_ATTEMPTS = 10  # random collisions are rare (31^6 codes); ten in a row mean something else is wrong
_SEPARATORS = re.compile(r"[\s\-_.]+")
_CODE_RE = re.compile(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")
FIELD = "referral_code"
# Status and source names as people read them (the stored ones are the API's).
STATUS_LABELS = {"pending": "Invited", "registered": "Joined", "credited": "Credited", "expired": "Expired",
                 "rejected": "Rejected"}
SOURCE_LABELS = {"link": "Join link", "code": "Code typed", "prospect": "Invited in the portal"}
INVITE_MAIL = "referrals.invite"
CREDIT_NOTICE = "referral.credited"


# --- codes -----------------------------------------------------------------------------


def normalise_code(raw: str | None) -> str | None:
    """The stored form of a typed code, None when nothing was typed; ``ServiceError`` when malformed.

    Upper case (codes are case-insensitive), spaces and dashes dropped (people
    copy "ABC-234" or "abc 234"). The alphabet has no 0/O or 1/I/L, so a code
    containing one is a typo, reported as such rather than looked up.
    """
    if raw is None:
        return None
    code = _SEPARATORS.sub("", str(raw)).upper()
    if not code:
        return None
    if not _CODE_RE.fullmatch(code):
        raise ServiceError(
            f"'{str(raw).strip()[:20]}' is not a referral code: a code is {CODE_LENGTH} letters and digits "
            "(without 0, O, 1, I or L).", field=FIELD)
    return code


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def code_for(member: Member) -> str:
    """The member's referral code, created the first time it is asked for.

    Lazy, because most members never share one. Collision-safe: each attempt
    inserts inside a savepoint, so a code someone else holds (or a second
    request creating this member's code at the same moment) only retries,
    never breaks the caller's transaction.
    """
    existing = db.session.get(ReferralCode, member.id)
    if existing is not None:
        return existing.code
    for _ in range(CODE_ATTEMPTS):
        candidate = _new_code()
        if db.session.scalar(select(ReferralCode.member_id).where(ReferralCode.code == candidate)) is not None:
            continue
        try:
            with db.session.begin_nested():
                db.session.add(ReferralCode(member_id=member.id, code=candidate))
        except IntegrityError:
            # Either the code was taken a moment ago, or this member's code was just created elsewhere.
            mine = db.session.scalar(select(ReferralCode.code).where(ReferralCode.member_id == member.id))
            if mine is not None:
                return mine
            continue
        return candidate
    raise ServiceError("A referral code could not be created; please try again.", status=503)


def find_by_code(raw: str | None) -> Member | None:
    """The member whose code this is (any status), None for no code or an unknown one; malformed raises."""
    code = normalise_code(raw)
    if code is None:
        return None
    return db.session.scalar(
        select(Member).join(ReferralCode, ReferralCode.member_id == Member.id).where(ReferralCode.code == code))


def check_code(raw: str | None) -> tuple[str, Member]:
    """A code that can be used now and its referrer, or ``ServiceError`` saying what is wrong with it.

    For the join form and the API's validation: unknown, malformed and
    expired (the referrer is no longer an active member) each get their own
    message, and the person can still join without a code.
    """
    code = normalise_code(raw)
    if code is None:
        raise ServiceError("Enter a referral code.", field=FIELD)
    referrer = find_by_code(code)
    if referrer is None:
        raise ServiceError(f"There is no referral code {code}. Check it, or join without one.", field=FIELD)
    if referrer.is_deleted or referrer.status not in REFERRER_STATUSES:
        raise ServiceError(f"The referral code {code} is no longer valid. You can join without one.", field=FIELD)
    return code, referrer


def check_join_code(raw: str | None, *, national_id: str | None = None, phone: str | None = None,
                    email: str | None = None) -> tuple[str, Member] | None:
    """The join form's check of a typed code, before anyone is created; None when no code was typed.

    The same messages as ``check_code``, and a code of someone with the
    joiner's own national ID, phone or email is refused as self-referral.
    """
    if normalise_code(raw) is None:
        return None
    code, referrer = check_code(raw)
    why = _same_person(referrer, national_id=national_id, phone=phone, email=email)
    if why:
        raise ServiceError(why, field=FIELD)
    return code, referrer


# --- guards ----------------------------------------------------------------------------


def _same_person(referrer: Member, *, member: Member | None = None, national_id: str | None = None,
                 phone: str | None = None, email: str | None = None) -> str | None:
    """Why ``referrer`` and the referred person look like one person (None: they do not)."""
    if member is not None:
        if member.id == referrer.id:
            return "You cannot refer yourself."
        national_id, phone, email = member.national_id, member.phone, member.email
    if national_id and referrer.national_id and national_id == referrer.national_id:
        return "You cannot refer yourself: the national ID is the referrer's."
    if phone and referrer.phone and phone == referrer.phone:
        return "You cannot refer yourself: the phone number is the referrer's."
    if email and referrer.email and email.lower() == referrer.email.lower():
        return "You cannot refer yourself: the email address is the referrer's."
    return None


def _referral_of(member: Member) -> Referral | None:
    """The referral that brought ``member`` in (one at most: unique referred_member_id)."""
    return db.session.scalar(select(Referral).where(Referral.referred_member_id == member.id))


def _contact_clause(phone: str | None, email: str | None) -> ColumnElement[bool] | None:
    terms = []
    if phone:
        terms.append(Referral.prospect_phone == phone)
    if email:
        terms.append(Referral.prospect_email == email.lower())
    return or_(*terms) if terms else None


def _flush_unique(message: str) -> None:
    """Flush in a savepoint; a unique index refusing the row (a concurrent second referrer) is a DuplicateError."""
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise DuplicateError(message, field=FIELD) from None


# --- recording -------------------------------------------------------------------------


def record_join(new_member: Member, code: str | None, *, source: str = "code",
                now: datetime | None = None) -> Referral | None:
    """Record who brought a member who has just joined; the referral that counts, or None.

    ``code`` is what they typed or what the join link carried (``source``
    "link" or "code"); None or empty means no code, and then only a
    recorded prospect matching their phone or email can count. A bad code
    raises ``ServiceError`` before anything is written (unknown, malformed,
    no longer valid, self-referral, already referred by someone else): the
    caller shows the message, lets the person join regardless and may call
    again with no code so a recorded prospect still counts.

    The first valid referral wins: the earliest pending prospect matching the
    new member, else the code. Losers are kept as ``rejected`` with the reason,
    so the referrer sees what happened and the funnel stays honest.
    """
    if source not in ("code", "link"):
        raise ServiceError(f"Unknown referral source {source!r}.", field="source")
    now = now or utcnow()
    referrer: Member | None = None
    normalised: str | None = None
    if normalise_code(code) is not None:
        normalised, referrer = check_code(code)
        why = _same_person(referrer, member=new_member)
        if why:
            raise ServiceError(why, field=FIELD)
    existing = _referral_of(new_member)
    if existing is not None:
        if referrer is None or existing.referrer_id == referrer.id:
            return existing  # a retry of the same join: nothing new
        raise DuplicateError("This member was already referred by someone else; the first referral counts.",
                             field=FIELD, existing_id=existing.id)

    prospects: list[Referral] = []
    contact = _contact_clause(new_member.phone, new_member.email)
    if contact is not None:
        prospects = [p for p in db.session.scalars(
            select(Referral).where(Referral.status == "pending", Referral.referred_member_id.is_(None), contact)
            .order_by(Referral.created_at, Referral.id).with_for_update())
            if p.referrer_id != new_member.id and not _same_person(p.referrer, member=new_member)]

    if prospects:
        winner = prospects[0]
        winner.referred_member_id = new_member.id
        winner.status, winner.registered_at = "registered", now
        if referrer is not None and referrer.id == winner.referrer_id:
            winner.code = normalised
        lost = "Joined through another member's referral, recorded earlier."
        for other in prospects[1:]:
            other.status, other.reason, other.closed_at = "rejected", lost, now
        if referrer is not None and all(p.referrer_id != referrer.id for p in prospects):
            db.session.add(Referral(referrer_id=referrer.id, code=normalised, source=source, status="rejected",
                                    prospect_name=new_member.full_name, reason=lost, created_at=now,
                                    closed_at=now))
    elif referrer is not None:
        winner = Referral(referrer_id=referrer.id, referred_member_id=new_member.id, code=normalised,
                          source=source, status="registered", created_at=now, registered_at=now)
        db.session.add(winner)
    else:
        return None
    _flush_unique("This member was already referred by someone else; the first referral counts.")
    return winner


def check_prospect(referrer: Member, name: Any, phone: Any, email: Any, *,
                   excluding: Referral | None = None) -> tuple[str, str | None, str | None]:
    """The invitation's clean (name, phone, email), or why it cannot be recorded.

    Every problem with the input is reported at once (``ValidationErrors``),
    as forms show them. Refused: a referrer who is not an active member, the
    referrer's own contact details, someone already registered with that phone
    or email (they need no invitation), and a person already invited and
    still pending (by this member or another: the first invitation counts).
    ``excluding`` is the invitation being corrected, which must not clash with itself.
    """
    errors: dict[str, str] = {}
    name = str(name or "").strip()
    if not name:
        errors["name"] = "Enter the person's name."
    elif len(name) > 160:
        errors["name"] = "A name is at most 160 characters."
    clean_phone = clean_email = None
    try:
        clean_phone = normalize_phone(phone)
    except ServiceError as exc:
        errors["phone"] = exc.message
    try:
        clean_email = normalize_email(email)
    except ServiceError as exc:
        errors["email"] = exc.message
    if not clean_phone and not clean_email and "phone" not in errors and "email" not in errors:
        errors["phone"] = "Enter a phone number or an email address."
    if errors:
        raise ValidationErrors(errors)
    if referrer.is_deleted or referrer.status not in REFERRER_STATUSES:
        raise ServiceError("Only active members can record referrals.")
    why = _same_person(referrer, phone=clean_phone, email=clean_email)
    if why:
        raise ServiceError(why, field="phone" if clean_phone == referrer.phone and clean_phone else "email")
    member_terms = []
    if clean_phone:
        member_terms.append(Member.phone == clean_phone)
    if clean_email:
        member_terms.append(Member.email == clean_email)
    if db.session.scalar(select(Member.id).where(Member.deleted_at.is_(None), or_(*member_terms)).limit(1)):
        raise DuplicateError("Someone with this phone number or email address is already registered.",
                             field="phone" if clean_phone else "email")
    pending = select(Referral).where(Referral.status == "pending", Referral.referred_member_id.is_(None),
                                     _contact_clause(clean_phone, clean_email))
    if excluding is not None:
        pending = pending.where(Referral.id != excluding.id)
    earlier = db.session.scalar(pending.order_by(Referral.id).limit(1))
    if earlier is not None:
        message = ("You have already recorded this person." if earlier.referrer_id == referrer.id
                   else "Another member has already invited this person.")
        raise DuplicateError(message, field="phone" if clean_phone else "email", existing_id=earlier.id)
    return name, clean_phone, clean_email


def record_prospect(referrer: Member, name: Any, phone: Any, email: Any, *,
                    now: datetime | None = None) -> Referral:
    """A member records someone they invited (name, and phone or email): a pending referral.

    Checked by ``check_prospect``; at most REFERRAL_PROSPECTS_PER_DAY a day
    per member (429), so the invitation mail cannot be turned into a way of
    mailing strangers in bulk. With an email address, the invitation is
    mailed through the queue after the caller commits.
    """
    name, clean_phone, clean_email = check_prospect(referrer, name, phone, email)
    now = now or utcnow()
    cap = int(current_app.config.get("REFERRAL_PROSPECTS_PER_DAY", 20))
    today = db.session.scalar(select(func.count()).select_from(Referral).where(
        Referral.referrer_id == referrer.id, Referral.source == "prospect",
        Referral.created_at >= now - timedelta(days=1))) or 0
    if today >= cap:
        raise ServiceError(f"You can record at most {cap} people a day; please try again tomorrow.", status=429)
    referral = Referral(referrer_id=referrer.id, prospect_name=name, prospect_phone=clean_phone,
                        prospect_email=clean_email, source="prospect", status="pending", created_at=now)
    db.session.add(referral)
    db.session.flush()
    if clean_email:
        send_invitation(referral)
    return referral


def join_link(code: str) -> str:
    """The join link for a code, on MUSTER_PUBLIC_URL (never the Host header): shared, printed and mailed."""
    return mail.link_to("portal.join", ref=code)


def send_invitation(referral: Referral) -> None:
    """Mail the invited person the referrer's join link (delivered by the queue after the commit, once)."""
    code = code_for(referral.referrer)
    mail.send_mail(INVITE_MAIL, referral.prospect_email,
                   {"name": referral.prospect_name, "referrer_first_name": referral.referrer.first_name,
                    "link": join_link(code), "code": code,
                    "days": int(current_app.config.get("REFERRAL_EXPIRY_DAYS", 60))},
                   key=f"{INVITE_MAIL}:{referral.id}:{referral.prospect_email}")


# --- the referred member's fate ----------------------------------------------------------


def on_member_activated(member: Member, *, now: datetime | None = None) -> Referral | None:
    """The referred member is now active: their open referral is credited and the referrer's points awarded.

    Credit waits for activation so that joining alone (perhaps a fake or
    duplicate application) earns nothing. Idempotent: a credited referral is
    returned unchanged (the unique (referral, kind) in the ledger backs this
    up). A member who is not active, or was referred by nobody, gives None.
    """
    if member.status != "active" or member.is_deleted:
        return None
    referral = _referral_of(member)
    if referral is None or referral.status not in OPEN_STATUSES:
        return referral if referral is not None and referral.status == "credited" else None
    now = now or utcnow()
    referral.status, referral.credited_at = "credited", now
    referral.registered_at = referral.registered_at or now
    points = int(current_app.config.get("REFERRAL_POINTS", 10))
    db.session.add(PointsEntry(member_id=referral.referrer_id, referral_id=referral.id, points=points,
                               kind="award", reason=f"Referred {member.full_name}, now an active member.",
                               created_at=now))
    db.session.flush()
    notifications.notify(referral.referrer, CREDIT_NOTICE, f"{points} points: {member.first_name} is now a member",
                         f"{member.full_name}, whom you referred, is now an active member.", "/referrals")
    return referral


def on_member_rejected(member: Member, reason: str | None = None, *, now: datetime | None = None) -> Referral | None:
    """The referred member's application was rejected (or found a duplicate before approval): rejected, no points."""
    referral = _referral_of(member)
    if referral is None or referral.status not in OPEN_STATUSES:
        return None
    referral.status, referral.closed_at = "rejected", now or utcnow()
    referral.reason = (reason or "").strip() or "The application was rejected."
    db.session.flush()
    return referral


def _reverse(actor: Any, referral: Referral, reason: str, now: datetime | None) -> PointsEntry | None:
    """Undo a credit: a reversal entry of the award's points, the referral rejected with the reason."""
    if referral.status != "credited":
        raise ServiceError("Only a credited referral can have its credit reversed.")
    now = now or utcnow()
    award = db.session.scalar(select(PointsEntry).where(PointsEntry.referral_id == referral.id,
                                                        PointsEntry.kind == "award"))
    entry = None
    if award is not None:
        entry = PointsEntry(member_id=award.member_id, referral_id=referral.id, points=-award.points,
                            kind="reversal", reason=reason, actor_id=getattr(actor, "id", None), created_at=now)
        db.session.add(entry)
    referral.status, referral.reason, referral.closed_at = "rejected", reason, now
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise ServiceError("This credit has already been reversed.", status=409) from None
    if entry is not None:
        notifications.notify(referral.referrer, CREDIT_NOTICE, f"{-entry.points} points taken back",
                             f"The credit for a referral was reversed: {reason}", "/referrals")
    return entry


def reverse_credit(actor: Any, referral: Referral, reason: str | None, *,
                   now: datetime | None = None) -> PointsEntry | None:
    """Staff revoke a credit (or the system, ``actor`` None, on expulsion or a duplicate), with a reason.

    The award stays in the ledger and a reversal entry cancels it, so the
    history shows both and every balance still equals the sum of its
    entries. Staff need ``referrals.update`` where the referrer belongs.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give a reason for reversing the credit.", field="reason")
    if actor is not None:
        authorize(actor, "referrals.update", referral.referrer, message="You may not revoke referral credit here.")
    entry = _reverse(actor, referral, reason, now)
    if actor is not None:
        audit.record(actor, "referral.revoke", referral, summary=f"Credit reversed: {reason}",
                     changes={"status": {"before": "credited", "after": "rejected"}, "reason": reason})
    return entry


def on_member_expelled(member: Member, *, actor: Any = None, now: datetime | None = None) -> PointsEntry | None:
    """The referred member was expelled: the credit their referrer earned is reversed (no permission asked)."""
    referral = _referral_of(member)
    if referral is None or referral.status != "credited":
        return None
    return _reverse(actor, referral, f"{member.full_name} was expelled.", now)


def on_member_deleted(member: Member, *, actor: Any = None, now: datetime | None = None) -> Referral | None:
    """The referred member's record was deleted (a duplicate, or entered in error): no credit stands.

    An open referral is rejected; a credited one is reversed in the ledger.
    Restoring the record later does not pay again: the reversal is history.
    """
    referral = _referral_of(member)
    if referral is None:
        return None
    reason = f"{member.full_name}'s record was removed (a duplicate or entered in error)."
    if referral.status == "credited":
        _reverse(actor, referral, reason, now)
        return referral
    return on_member_rejected(member, reason, now=now)


def follow_member_statuses(statuses: dict[int, str]) -> None:
    """``follow_member_status`` for many members at once (imports): one query finds the few referred ones."""
    ids = [member_id for member_id, new in statuses.items() if new in ("active", "expelled")]
    if not ids:
        return
    referred = db.session.scalars(select(Member).join(Referral, Referral.referred_member_id == Member.id)
                                  .where(in_values(Referral.referred_member_id, ids)))
    for member in referred:
        follow_member_status(member, None, statuses[member.id])


def follow_member_status(member: Member, old: str | None, new: str) -> None:
    """Called by ``members.change_status``: becoming active credits the referral, expulsion reverses it."""
    if new == old:
        return
    if new == "active":
        on_member_activated(member)
    elif new == "expelled":
        on_member_expelled(member)


# --- figures and the clock ---------------------------------------------------------------


def balance(member: Member) -> int:
    """A member's points: always the sum of their ledger entries, never a stored total."""
    return int(db.session.scalar(
        select(func.coalesce(func.sum(PointsEntry.points), 0)).where(PointsEntry.member_id == member.id)) or 0)


def expire_sweep(now: datetime) -> dict[str, int]:
    """Pending referrals older than REFERRAL_EXPIRY_DAYS expire; one UPDATE, idempotent (a second run finds none).

    Only ``pending`` ones: a person who joined (registered) waits for staff,
    not for the clock.
    """
    days = int(current_app.config.get("REFERRAL_EXPIRY_DAYS", 60))
    db.session.flush()
    result = db.session.execute(
        update(Referral)
        .where(Referral.status == "pending", Referral.created_at < now - timedelta(days=days))
        .values(status="expired", closed_at=now, updated_at=now,
                reason=f"Nobody joined within {days} days.")
        .execution_options(synchronize_session=False))
    count = result.rowcount or 0
    if count:
        db.session.expire_all()  # loaded referrals must not keep showing "pending"
    return {"referrals_expired": count}

"""Accounts of members and staff alike: forgotten passwords, changing one, and first passwords (activation).

Three mailed links, all made and checked by ``app.services.links`` (signed,
expiring, single-use, the newest of a purpose replacing the older):

- ``reset-password`` ("Forgot password", RESET_HOURS): asked for by anyone
  with an email or a phone number. The answer never says whether an
  account exists, and an unknown name costs about what a known one does
  (the same lookups and a mail rendered, only not recorded), so the page
  cannot be used to find out who has an account. A successful reset lifts
  the lockout after failed sign-ins, and ends every session and API token:
  whoever knew the old password is out.
- ``activate`` (ACTIVATION_HOURS): sent by staff to a member they may
  update (one, the ticked rows of the member list, or a whole filtered list
  through a job), and to new staff users created without a password. A
  member without a login gets one (the global ``member`` role, no usable
  password) when the link is sent; a member without an email is skipped and
  counted, so the console can say how many.
- Changing one's password while signed in needs the current one; it ends
  the user's other sessions and revokes their API tokens (the caller signs
  the current browser in again with the new session token).

Services flush, never commit; the caller commits the link together with the
mail that carries it (the mail is enqueued after that commit).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash

from app.extensions import db
from app.models import ApiToken, Job, MailMessage, Member, OneTimeLink, User
from app.models.base import utcnow
from app.security import authorize, permits, scoped
from app.services import audit, jobs, links, rbac
from app.services import mail as mail_service
from app.services.auth import _dummy_hash, check_password_rules, clear_failures, find_login, set_password
from app.services.errors import ServiceError
from app.services.validation import FieldErrors

RESET_KIND = "account.reset-password"
ACTIVATE_KIND = "account.activate"
# A reset mail is one-off (never behind a bulk run), but one account gets a few an hour at most,
# so nobody can fill a person's inbox through the public form.
RESET_MAILS_PER_HOUR = 3
# Members no mail should invite to sign in.
NOT_INVITED = frozenset({"deceased", "expelled"})
# Up to this many members are sent activation links in the request; more go through a job.
INLINE_ACTIVATIONS = 300
ACTIVATION_JOB = "members.send_activation"
JOB_BATCH = 200


# --- forgotten password -----------------------------------------------------------------


def request_reset(login: str | None, address: str | None = None) -> MailMessage | None:
    """Mail a reset link to the account ``login`` (email or phone) names, if there is one that may sign in.

    Returns the message (or None) for tests and logs only: the page shows the
    same answer either way. ``address`` is the client's IP, for the audit log.
    """
    user, _key = find_login(login)
    hours = current_app.config["RESET_HOURS"]
    context = {"hours": hours_text(hours)}
    if user is None or not user.active or _recent_resets(user) >= RESET_MAILS_PER_HOUR:
        # The same work as sending, minus the row: a hash-sized token and the rendered mail.
        links_token = secrets.token_urlsafe(48)
        mail_service.render(RESET_KIND, {**context, "link": links_token, "user": None, "member": None, "to": ""})
        return None
    token = links.issue("reset-password", user=user, hours=hours)
    message = mail_service.send_mail(
        RESET_KIND, user.email, {**context, "link": mail_service.link_to("accounts.reset", token=token)},
        user=user, member=user.member, key=f"password-reset:{user.id}:{secrets.token_hex(8)}", sensitive=True)
    audit.record(None, "password.reset_requested", user, unit_id=_unit_of(user),
                 summary=f"Password reset link sent to {user.email}" + (f" (asked from {address})" if address else ""))
    return message


def _recent_resets(user: User) -> int:
    since = utcnow() - timedelta(hours=1)
    return db.session.scalar(
        select(func.count()).select_from(MailMessage)
        .where(MailMessage.user_id == user.id, MailMessage.kind == RESET_KIND, MailMessage.created_at >= since)
    ) or 0


def check_link(purpose: str, token: str | None) -> OneTimeLink:
    """The live link (LinkInvalid, LinkExpired or LinkUsed otherwise), for showing its form."""
    link = links.check(purpose, token)
    if link.user is None or not link.user.active:
        raise links.LinkInvalid("This link is not valid any more. Ask for a new one.")
    return link


def set_password_by_link(purpose: str, token: str | None, password: str | None, confirm: str | None) -> User:
    """Redeem a reset or activation link with a new password (checked and confirmed first).

    The password is checked before the link is used up, so a typo does not
    cost the person their link. Success lifts lockouts and ends every session
    and API token of the user.
    """
    check_link(purpose, token)
    _check_new_password(password, confirm)
    link = links.redeem(purpose, token)
    user = link.user
    set_password(user, password or "")
    revoke_tokens(user)
    unlocked = clear_failures(user)
    if purpose == "activate" and link.member is not None and user.member_id is None:
        user.member = link.member
    db.session.flush()
    if purpose == "reset-password":
        _security_notice(user, "Your password was reset")
    action = "password.reset" if purpose == "reset-password" else "account.activated"
    audit.record(user, action, user, unit_id=_unit_of(user),
                 summary=(f"{user.email} set a new password with a reset link" if purpose == "reset-password"
                          else f"{user.email} set their first password")
                 + (f"; {unlocked} locked address(es) unlocked" if unlocked else ""))
    return user


# --- changing one's password ---------------------------------------------------------


def change_password(user: User, current: str | None, new: str | None, confirm: str | None) -> User:
    """Change a signed-in user's password: the current one is needed; other sessions and API tokens end.

    Every field's problem is reported at once. The caller signs the current
    browser in again with the user's new session token.
    """
    errors = FieldErrors()
    with errors.check():
        # Always one hash check, like a sign-in.
        if not check_password_hash(user.password_hash or _dummy_hash(), current or "") or not user.password_hash:
            raise ServiceError("This is not your current password.", field="current_password")
    with errors.check():
        _check_new_password(new, confirm)
    errors.raise_if_any()
    if check_password_hash(user.password_hash, new or ""):
        raise ServiceError("The new password is the one you have now: choose another.", field="password")
    set_password(user, new or "")
    revoked = revoke_tokens(user)
    db.session.flush()
    audit.record(user, "password.change", user, unit_id=_unit_of(user),
                 summary=f"{user.email} changed their password" + (f"; {revoked} API token(s) revoked" if revoked else ""))
    _security_notice(user, "Your password was changed")
    return user


def _security_notice(user: User, title: str) -> None:
    """A required portal notice (it cannot be switched off), so a change the member did not make is seen."""
    if user.member is not None:
        from app.services import notifications  # late: notifications imports the mail package

        notifications.notify(user.member, "account.security", title,
                             "If this was not you, reset your password now and tell your organisation.",
                             "/password/forgot")


def _check_new_password(password: str | None, confirm: str | None) -> None:
    """The rules of ``auth.set_password`` plus the confirmation, both messages at once."""
    errors = FieldErrors()
    with errors.check():
        check_password_rules(password)
    with errors.check():
        if (password or "") != (confirm or ""):
            raise ServiceError("The two passwords are not the same.", field="confirm")
    errors.raise_if_any()


def revoke_tokens(user: User) -> int:
    """Revoke every live API token of the user; returns how many."""
    return db.session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount or 0


# --- activation links -----------------------------------------------------------------


@dataclass
class ActivationOutcome:
    """What a send did: how many links went out, and why the others did not."""

    sent: int = 0
    no_email: int = 0
    not_invited: int = 0
    taken: int = 0  # the member's email belongs to another login
    logins_created: int = 0
    messages: list[int] = field(default_factory=list, repr=False)

    def add(self, other: ActivationOutcome) -> None:
        for name in ("sent", "no_email", "not_invited", "taken", "logins_created"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.messages.extend(other.messages)

    def summary(self) -> str:
        """One sentence for a flash message or a job's result."""
        parts = [f"Activation link sent to {self.sent} member{'s' if self.sent != 1 else ''}."]
        if self.no_email:
            parts.append(f"{self.no_email} skipped: no email address.")
        if self.taken:
            parts.append(f"{self.taken} skipped: their email belongs to another login.")
        if self.not_invited:
            parts.append(f"{self.not_invited} skipped: deceased or expelled.")
        return " ".join(parts)


def send_member_activation(actor, member: Member, *, bulk: bool = False) -> ActivationOutcome:
    """Mail ``member`` a link to set their first password; needs ``members.update`` over the member.

    A member without a login gets one now (their email, the member role, no
    usable password until the link is used). A member who has a login
    already gets the link at the login's email (it sets a new password).
    """
    authorize(actor, "members.update", member, message="You may not send links to this member.")
    outcome = ActivationOutcome()
    if member.status in NOT_INVITED:
        outcome.not_invited = 1
        return outcome
    user = db.session.scalar(select(User).where(User.member_id == member.id))
    if user is None:
        if not member.email:
            outcome.no_email = 1
            return outcome
        email = member.email.strip().lower()
        if db.session.scalar(select(User.id).where(User.email == email)) is not None:
            outcome.taken = 1
            return outcome
        user = User(email=email, password_hash="", active=True, member=member)
        db.session.add(user)
        db.session.flush()
        rbac.assign_role(None, user, rbac.role_by_name("member"), None)
        outcome.logins_created = 1
        audit.record(actor, "user.create", user, unit_id=member.unit_id,
                     summary=f"Created a portal login {email} for {member.full_name} ({member.membership_number})")
    elif not user.active:
        outcome.not_invited = 1
        return outcome
    message = _send_activation(actor, user, member, bulk=bulk)
    outcome.sent = 1
    outcome.messages.append(message.id)
    return outcome


def send_user_activation(actor, user: User) -> MailMessage:
    """Mail a staff (or any) login a link to set its password, at the login's own email.

    An account that has a password is managed: ``users.update`` over it and
    every permission it holds (``users.check_can_manage``). One without a
    password yet (just created, never activated) may also be invited by
    whoever may create users where it lives (``users.create``).
    """
    from app.services.users import check_can_manage  # late: users imports auth, which this module does too

    if user.password_hash or not permits(actor, "users.create", user):
        check_can_manage(actor, user)
    if not user.active:
        raise ServiceError("This account is deactivated: activate it before sending a link.", status=409)
    return _send_activation(actor, user, user.member, bulk=False)


def _send_activation(actor, user: User, member: Member | None, *, bulk: bool) -> MailMessage:
    hours = current_app.config["ACTIVATION_HOURS"]
    token = links.issue("activate", user=user, member=member, hours=hours)
    message = mail_service.send_mail(
        ACTIVATE_KIND, user.email,
        {"link": mail_service.link_to("accounts.activate", token=token), "hours": hours_text(hours),
         "sent_by": getattr(actor, "email", "")},
        user=user, member=member, actor=actor, bulk=bulk, sensitive=True,
        key=f"activate:{user.id}:{secrets.token_hex(8)}")
    audit.record(actor, "account.activation_sent", user,
                 unit_id=member.unit_id if member is not None else _unit_of(user),
                 summary=f"Sent an activation link to {user.email}")
    return message


def send_many_activations(actor, member_ids: Iterable[int]) -> ActivationOutcome:
    """Activation links for the members among ``member_ids`` the actor may update (others ignored).

    Mails are bulk (sent at MUSTER_MAIL_RATE at most). Each member is its own
    savepoint, so one refusal does not undo the others.
    """
    wanted = sorted({int(i) for i in member_ids})  # ids from a list page or a job's params
    outcome = ActivationOutcome()
    for start in range(0, len(wanted), 500):
        stmt = scoped(select(Member).where(Member.id.in_(wanted[start:start + 500]), Member.deleted_at.is_(None))
                      .order_by(Member.id), actor, "members.update", Member)
        for member in db.session.scalars(stmt).all():
            outcome.add(send_member_activation(actor, member, bulk=True))
    return outcome


def start_activation_job(actor, member_ids: Iterable[int], *, what: str) -> Job:
    """A job sending activation links to many members (a whole filtered list); the caller commits and submits.

    The ids are fixed now (the list as the actor saw it); the job scopes them
    again with the actor's rights when it runs, and resumes after the last
    member it committed if its worker dies.
    """
    ids = sorted({int(i) for i in member_ids})
    if not ids:
        raise ServiceError("There are no members in this list.")
    return jobs.create_job(actor, ACTIVATION_JOB, {"member_ids": ids, "next": 0, "result": {}},
                           title=f"Send activation links to {what}")


@jobs.handler(ACTIVATION_JOB)
def run_activation_job(ctx: jobs.JobContext) -> dict:
    actor = db.session.get(User, ctx.job.created_by_id) if ctx.job.created_by_id else None
    if actor is None or not actor.active:
        raise ServiceError("The user who started this can no longer act.")
    ids: list[int] = list(ctx.params["member_ids"])
    start = int(ctx.params.get("next") or 0)
    total = ActivationOutcome(**{k: v for k, v in (ctx.params.get("result") or {}).items()})
    ctx.progress(start, len(ids))
    for offset in range(start, len(ids), JOB_BATCH):
        batch = ids[offset:offset + JOB_BATCH]
        total.add(send_many_activations(actor, batch))
        result = {k: getattr(total, k) for k in ("sent", "no_email", "not_invited", "taken", "logins_created")}
        ctx.job.params = {**ctx.params, "next": offset + len(batch), "result": result}  # a new dict: JSON columns
        ctx.params = ctx.job.params
        ctx.progress(offset + len(batch), len(ids), message=total.summary())  # commits the batch and its mail
    return {"summary": total.summary(),
            **{k: getattr(total, k) for k in ("sent", "no_email", "not_invited", "taken", "logins_created")}}


def _unit_of(user: User) -> int | None:
    return user.member.unit_id if user.member is not None else None


def hours_text(hours: float) -> str:
    """"2 hours", "3 days": how long a link works, for the mail."""
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)} days"
    if hours == int(hours):
        return f"{int(hours)} hour{'s' if hours != 1 else ''}"
    return f"{round(hours * 60)} minutes"

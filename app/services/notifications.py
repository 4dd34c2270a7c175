"""Portal notifications and mail preferences (issue 12): the one place that creates, reads and opts out.

Who calls what:

- Staff actions on a member (approval, a change request decided, a card
  issued, a place from the waiting list) and reminders call ``notify``
  (flushes, never commits: the caller commits it with the action).
  Bulk paths (a print run issuing thousands of cards) call ``notify_many``,
  one INSERT for the batch.
- Anything that mails a member about an *optional* kind asks ``wants_email``
  first and passes ``unsubscribe_url`` to ``mail.send_mail`` (or calls
  ``send_optional_mail``, which does both), so every optional mail carries a
  one-click unsubscribe link in its footer and ``List-Unsubscribe`` /
  ``List-Unsubscribe-Post`` headers (RFC 2369, RFC 8058).
- ``REQUIRED_KINDS`` (card revoked, account security) are always mailed; a
  member cannot switch them off and no unsubscribe link is made for them.

Unsubscribe links are itsdangerous signatures (SECRET_KEY, salt
``muster.unsubscribe``) over (member id, kind): no expiry and no single use,
because a link in a mail from last year must still work with one click, and
following it twice is harmless (the choice is idempotent). Mail scanners that
open links do nothing: GET only shows a button; the POST (or the mail
program's RFC 8058 one-click POST) unsubscribes.

The portal and ``/api/v1/me/notifications`` only ever read the signed-in
member's own notifications (``self_service.own_member`` decides who that is,
through app/security.py); another member's id answers 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, func, insert, select, update

from app.extensions import db
from app.models import MailMessage, Member
from app.models.base import utcnow
from app.models.notifications import MailPreference, Notification
from app.services.errors import NotFound, ServiceError
from app.services.inputs import parse_id
from app.services.mail import link_to, send_mail

UNSUBSCRIBE_SALT = "muster.unsubscribe"
TITLE_MAX = 200
LINK_MAX = 500


@dataclass(frozen=True)
class Kind:
    """One kind of notification: what members see in their preferences."""

    label: str
    description: str
    required: bool = False  # always mailed; cannot be switched off

    @property
    def optional(self) -> bool:
        return not self.required


# Internal names (matched in code); labels may change freely.
KINDS: dict[str, Kind] = {
    "membership.approved": Kind("Membership approved", "When your application is approved (the welcome message)."),
    "request.decided": Kind("Change requests", "When staff approve or turn down a change you asked for."),
    "card.issued": Kind("New cards", "When a membership card is issued to you."),
    "event.promoted": Kind("Waiting lists", "When you get a place at an event from its waiting list."),
    "reminder.renewal": Kind("Renewal reminders", "Before and after your card expires, until you renew."),
    "reminder.event": Kind("Event reminders", "Before an event you registered for starts."),
    "referral.credited": Kind("Referral points", "When someone you referred becomes a member, or a credit is reversed."),
    "card.revoked": Kind("Card revoked", "When your membership card is revoked.", required=True),
    "account.security": Kind("Account security", "Password changes, sign-in links and other security notices.",
                             required=True),
}
REQUIRED_KINDS: frozenset[str] = frozenset(k for k, v in KINDS.items() if v.required)
OPTIONAL_KINDS: tuple[str, ...] = tuple(k for k, v in KINDS.items() if not v.required)


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"Not a notification kind: {kind!r} (see notifications.KINDS).") from None


# --- creating -----------------------------------------------------------------------------


def _clean_link(link: str | None) -> str | None:
    """A portal path or an absolute URL on MUSTER_PUBLIC_URL; anything else is a programming error."""
    if not link:
        return None
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    if not ((link.startswith("/") and not link.startswith("//")) or link == base or link.startswith(base + "/")):
        raise ValueError(f"A notification links inside the portal, not to {link!r}.")
    return link[:LINK_MAX]


def notify(member: Member, kind: str, title: str, message: str = "", link: str | None = None) -> Notification:
    """Record a notification for ``member`` (shown in the portal bell); flushes, the caller commits.

    ``kind`` is a key of ``KINDS``; ``link`` a portal path such as ``/card``.
    It does not mail anyone: mail is the caller's (with ``wants_email``).
    """
    _kind(kind)
    note = Notification(member_id=member.id, kind=kind, title=(title or "").strip()[:TITLE_MAX] or KINDS[kind].label,
                        message=message or "", link=_clean_link(link), created_at=utcnow())
    db.session.add(note)
    db.session.flush()
    return note


def notify_many(rows: Iterable[tuple[int, str, str, str | None]], kind: str) -> int:
    """One INSERT for many notifications of one kind: ``rows`` are (member_id, title, message, link).

    For bulk paths (a print run issuing a thousand cards, the seed) where a
    flush per row would cost more than the action itself. Returns how many.
    """
    _kind(kind)
    now = utcnow()
    values = [{"member_id": member_id, "kind": kind, "title": (title or KINDS[kind].label)[:TITLE_MAX],
               "message": message or "", "link": _clean_link(link), "created_at": now}
              for member_id, title, message, link in rows]
    if values:
        db.session.execute(insert(Notification), values)
    return len(values)


# --- reading ------------------------------------------------------------------------------


def unread_count(member: Member) -> int:
    """The bell's number: one count over the (member_id, read_at) index."""
    return db.session.scalar(
        select(func.count()).select_from(Notification)
        .where(Notification.member_id == member.id, Notification.read_at.is_(None))
    ) or 0


def for_member(member: Member, *, unread_only: bool = False) -> Select:
    """The member's notifications, newest first (a SELECT to page)."""
    stmt = select(Notification).where(Notification.member_id == member.id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return stmt.order_by(Notification.created_at.desc(), Notification.id.desc())


def page(member: Member, offset: int, limit: int, *, unread_only: bool = False) -> tuple[list[Notification], int]:
    """(one page of the member's notifications, how many in all) for the portal's list and the API."""
    stmt = for_member(member, unread_only=unread_only)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    return list(db.session.scalars(stmt.limit(limit).offset(offset))), total


def load_own(member: Member, notification_id: Any) -> Notification:
    """One of ``member``'s own notifications; NotFound for anything else (another member's looks missing)."""
    pk = parse_id(notification_id)
    note = db.session.scalar(
        select(Notification).where(Notification.id == pk, Notification.member_id == member.id)
    ) if pk is not None else None
    if note is None:
        raise NotFound()
    return note


def mark_read(note: Notification) -> Notification:
    """Mark one notification read (again is harmless: the first time stands)."""
    if note.read_at is None:
        note.read_at = utcnow()
        db.session.flush()
    return note


def mark_all_read(member: Member) -> int:
    """Mark every unread notification of ``member`` read, in one UPDATE; returns how many."""
    result = db.session.execute(
        update(Notification)
        .where(Notification.member_id == member.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    return result.rowcount or 0


# --- mail preferences ---------------------------------------------------------------------


def _choices(member: Member) -> dict[str, bool]:
    rows = db.session.execute(
        select(MailPreference.kind, MailPreference.email).where(MailPreference.member_id == member.id)
    )
    return {kind: email for kind, email in rows}


def wants_email(member: Member, kind: str) -> bool:
    """Does ``member`` get mail of ``kind``? Required kinds: always; optional ones: unless switched off."""
    if _kind(kind).required:
        return True
    email = db.session.scalar(
        select(MailPreference.email).where(MailPreference.member_id == member.id, MailPreference.kind == kind)
    )
    return True if email is None else bool(email)


@dataclass(frozen=True)
class Preference:
    kind: str
    label: str
    description: str
    required: bool
    email: bool


def preferences(member: Member) -> list[Preference]:
    """Every kind with the member's choice (required kinds always on), in ``KINDS`` order."""
    choices = _choices(member)
    return [Preference(k, v.label, v.description, v.required, True if v.required else choices.get(k, True))
            for k, v in KINDS.items()]


def set_email(member: Member, kind: str, email: bool, *, source: str = "portal") -> None:
    """Record the member's choice for one kind; a required kind cannot be switched off (ServiceError)."""
    if kind not in KINDS:
        raise ServiceError("There is no such kind of notice.", field="kind")
    if KINDS[kind].required:
        if not email:
            raise ServiceError(f"“{KINDS[kind].label}” notices cannot be switched off.", field=kind)
        return
    row = db.session.scalar(
        select(MailPreference).where(MailPreference.member_id == member.id, MailPreference.kind == kind)
    )
    if row is None:
        db.session.add(MailPreference(member_id=member.id, kind=kind, email=bool(email), source=source))
    elif row.email != bool(email):
        row.email = bool(email)
        row.source = source
    db.session.flush()


def set_preferences(member: Member, emailed: Iterable[str], *, source: str = "portal") -> None:
    """The preferences form: ``emailed`` are the optional kinds ticked; every other optional kind is off.

    Required kinds are on whatever is sent (the form shows them ticked and disabled).
    """
    ticked = set(emailed)
    unknown = ticked - set(KINDS)
    if unknown:
        raise ServiceError("There is no such kind of notice.", field="kinds")
    for kind in OPTIONAL_KINDS:
        set_email(member, kind, kind in ticked, source=source)


# --- unsubscribe links --------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(member: Member, kind: str) -> str:
    if _kind(kind).required:
        raise ValueError(f"{kind!r} is a required kind: it has no unsubscribe link.")
    return _serializer().dumps([member.id, kind])


def unsubscribe_url(member: Member, kind: str) -> str:
    """The absolute, signed, one-click link that switches off mail of ``kind`` for ``member``.

    No sign-in, no expiry, not single-use (see the module docstring).
    ValueError for a required kind: those mails carry no unsubscribe link.
    """
    return link_to("portal.unsubscribe", token=unsubscribe_token(member, kind))


@dataclass(frozen=True)
class UnsubscribeTarget:
    member: Member
    kind: str

    @property
    def label(self) -> str:
        return KINDS[self.kind].label


def read_unsubscribe_token(token: str) -> UnsubscribeTarget:
    """Whom and what a link is for; ServiceError (400) for a tampered or foreign token, 404 for a gone member."""
    try:
        member_id, kind = _serializer().loads(token or "")
    except (BadSignature, ValueError, TypeError):
        raise ServiceError("This unsubscribe link is not valid. Copy the whole link from the email, "
                           "or sign in and change your preferences.", status=400) from None
    pk = parse_id(member_id)
    if not isinstance(kind, str) or kind not in KINDS or KINDS[kind].required or pk is None:
        raise ServiceError("This unsubscribe link is not valid.", status=400)
    member = db.session.get(Member, pk)
    if member is None or member.deleted_at is not None:
        raise NotFound()
    return UnsubscribeTarget(member, kind)


def unsubscribe(token: str) -> UnsubscribeTarget:
    """Follow a link: mail of that kind is switched off for that member (again: no change)."""
    target = read_unsubscribe_token(token)
    set_email(target.member, target.kind, False, source="unsubscribe link")
    return target


# --- optional mail ------------------------------------------------------------------------


def send_optional_mail(member: Member, kind: str, mail_kind: str, context: dict[str, Any] | None = None,
                       **options: Any) -> MailMessage:
    """``mail.send_mail`` for a notice of ``kind``: with its unsubscribe link, or not at all when opted out.

    A member who switched the kind off gets a *suppressed* row ("Opted out"),
    so the console shows why nothing went. Required kinds go out as usual.
    ``options`` are send_mail's (key, actor, bulk, to...).
    """
    options.setdefault("member", member)
    if _kind(kind).required:
        return send_mail(mail_kind, options.pop("to", None), context, **options)
    link = unsubscribe_url(member, kind)
    return send_mail(mail_kind, options.pop("to", None), context, unsubscribe_url=link, suppress="" if wants_email(member, kind) else "Opted out.", **options)


def latest(member: Member, limit: int = 5) -> list[Notification]:
    """The few newest, for a dropdown or the dashboard."""
    return list(db.session.scalars(for_member(member).limit(limit)))


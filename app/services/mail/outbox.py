"""The outbox: record a message in the caller's transaction, deliver it once that commits.

``send_mail`` renders and records a row (it flushes, never commits) and asks
for delivery with ``remember``. The request is kept on the session and
carried out **after the caller's commit** (app/transaction_outcome.py): the worker
that picks the task up is sure to find the committed row, and a transaction
that rolls back (a broken rule later in the same request) sends nothing. A
savepoint that rolls back drops the requests made inside it. Callers do
nothing extra: committing is enough, and forgetting cannot strand a message.

If enqueueing fails after the commit (the queue's store unreachable), the
error is logged, not raised (the caller's work did commit), and the row
stays queued: the sweep (``due_messages``, run every minute by
app/tasks/mail.py) re-enqueues queued messages that nobody picked up.
A duplicate enqueue is harmless: delivery claims the row first.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_mailman import make_msgid
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import MailMessage, Member, User
from app.models.base import utcnow
from app.services.mail.render import render
from app.transaction_outcome import on_commit

log = logging.getLogger(__name__)

# --- after-commit delivery ---------------------------------------------------------------


def remember(message: MailMessage, delay: float = 0.0) -> None:
    """Deliver ``message`` (flushed) ``delay`` seconds after the current transaction commits."""
    message_id, delay = message.id, max(delay, 0.0)
    on_commit(lambda: _enqueue(message_id, delay), key=("mail", message_id))


def _enqueue(message_id: int, delay: float) -> None:
    from app.tasks.mail import enqueue_delivery  # late: tasks import the services

    try:
        enqueue_delivery(message_id, delay)
    except Exception:  # noqa: BLE001 - the commit happened; the sweep retries (module docstring)
        log.exception("could not enqueue delivery of mail message %s; the sweep will", message_id)


# --- recording ----------------------------------------------------------------------------


def address_for(to: str | None, member: Member | None, user: User | None) -> tuple[str, str]:
    """(the address to use, why none can be used or "")."""
    raw = (to if to is not None else (member.email if member is not None and member.email else
                                      user.email if user is not None else "")) or ""
    raw = raw.strip()
    if not raw:
        return "", "No email address."
    try:
        return validate_email(raw, check_deliverability=False).normalized, ""
    except EmailNotValidError as exc:
        return raw[:254], f"Not a valid email address: {exc}"


def _message_id() -> str:
    host = urlsplit(current_app.config["PUBLIC_URL"]).hostname or "localhost"
    return make_msgid(domain=host)


def send_mail(kind: str, to: str | None, context: dict[str, Any] | None = None, *, key: str | None = None,
              member: Member | None = None, user: User | None = None, actor: User | None = None,
              bulk: bool = False, sensitive: bool = False, unsubscribe_url: str | None = None,
              suppress: str = "") -> MailMessage:
    """Render mail ``kind`` for ``to`` and record it; it is delivered after the caller commits.

    - ``to`` None: the member's address, else the user's. No usable address:
      the row is recorded as *suppressed* with the reason, and nothing is sent.
    - ``key``: the idempotency key (``password-reset:<user>:<nonce>``,
      ``event-reminder:<event>:<member>``). When a message with that key
      exists, nothing is rendered or recorded and that first row is returned,
      whatever its status: a second enqueue is a no-op. Without a key every
      call is a new message.
    - ``member``/``user``: whom it concerns; the console shows it to staff
      who may read that member (app/security.py), and mail about no member
      only to staff who read members everywhere.
    - ``bulk``: one of many (reminders, notices): sent at MUSTER_MAIL_RATE
      at most. One-off mail (a password reset) never waits behind a bulk run.
    - ``sensitive``: holds a one-time secret; the console never shows its
      body and the body is erased once the message is sent.
    - ``unsubscribe_url``: an optional notice's one-click link
      (app/services/notifications.py): sent as ``List-Unsubscribe`` and
      ``List-Unsubscribe-Post`` headers (RFC 2369, RFC 8058) and given to the
      templates, whose footer shows it.
    - ``suppress``: a reason not to send at all ("Opted out."): the row is
      recorded as suppressed with it, so the console says why.

    ``context`` is the templates' (plus ``member``, ``user`` and ``to``).
    Raises ValueError when the kind has no templates (a programming error).
    """
    key = (key or f"{kind}:{uuid.uuid4().hex}").strip()
    if not key or len(key) > 200:
        raise ValueError("An idempotency key has 1 to 200 characters.")
    first = _by_key(key)
    if first is not None:
        log.info("mail %s not sent again: key %r is message %s (%s)", kind, key, first.id, first.status)
        return first
    address, problem = address_for(to, member, user)
    problem = problem or suppress
    rendered = render(kind, {"member": member, "user": user, "to": address, "unsubscribe_url": unsubscribe_url,
                             **(context or {})})
    message = MailMessage(
        kind=kind, to_address=address, subject=rendered.subject, body_text=rendered.text, body_html=rendered.html,
        message_id=_message_id(), idempotency_key=key, bulk=bulk, sensitive=sensitive, member=member, user=user,
        queued_by=actor, status="suppressed" if problem else "queued", reason=problem,
        list_unsubscribe=(unsubscribe_url or None),
        next_attempt_at=None if problem else utcnow(), created_at=utcnow(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        # Another transaction recorded the same key between our look and our insert: theirs stands.
        first = _by_key(key)
        if first is None:
            raise
        return first
    if message.status == "queued":
        remember(message)
    return message


def _by_key(key: str) -> MailMessage | None:
    return db.session.scalar(select(MailMessage).where(MailMessage.idempotency_key == key))


def due_messages(grace_seconds: float = 60, limit: int = 500) -> list[int]:
    """Ids of queued messages due for ``grace_seconds`` already and held by nobody: their task was lost.

    (The enqueue after commit failed, or the worker died holding the claim.)
    The grace keeps the sweep off messages whose task is simply still waiting.
    """
    now = utcnow()
    stmt = (
        select(MailMessage.id)
        .where(MailMessage.status == "queued",
               MailMessage.next_attempt_at <= now - timedelta(seconds=grace_seconds),
               or_(MailMessage.claimed_until.is_(None), MailMessage.claimed_until < now))
        .order_by(MailMessage.next_attempt_at, MailMessage.id)
        .limit(limit)
    )
    return list(db.session.scalars(stmt))

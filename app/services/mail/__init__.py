"""Outgoing mail (issue #10): one ``send_mail`` for every kind of message, delivered by the queue.

Usage, from any service (it flushes; the caller commits, and delivery is
enqueued once that commit is done)::

    from app.services import mail

    mail.send_mail("password-reset", user.email, {"link": link}, user=user,
                   key=f"password-reset:{user.id}:{nonce}", sensitive=True)

Modules: ``render`` (templates/email/<kind>.txt and .html, links from
MUSTER_PUBLIC_URL), ``outbox`` (the row, idempotency, enqueue after commit),
``delivery`` (claim, send, retry or fail), ``ratelimit`` (MUSTER_MAIL_RATE
across workers), ``eml`` (the file backend used without MAIL_SERVER).
This module adds what the console and the CLI do: who sees which mail,
retrying a failed message, sending a test email.

Who sees mail: a message about a member is member data, shown to staff who
may read that member (``members.read`` over the member's unit, through
app/security.py); a message about no member (a test email, mail about a
staff login) only to staff who read members everywhere (global admins and
super admins). Retrying and test emails send mail, so they need
``members.update`` (over the member; everywhere for a test email).
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from flask import current_app
from sqlalchemy import Select, select

from app.config import EML_BACKEND
from app.extensions import db
from app.models import MailMessage, User
from app.models.base import utcnow
from app.security import authorize, authorize_everywhere, load_for, scoped
from app.services import audit
from app.services.errors import ServiceError
from app.services.mail.outbox import address_for, due_messages, remember, send_mail
from app.services.mail.render import absolute_url, link_to, render

__all__ = [
    "absolute_url", "backend_label", "check_may_send_test", "due_messages", "link_to", "load_message", "remember", "render", "retry",
    "send_mail", "send_test", "visible_messages",
]

READ = "members.read"
SEND = "members.update"


def visible_messages(actor: User | None) -> Select:
    """Messages ``actor`` may see, newest first (a SELECT to filter, count and page)."""
    stmt = select(MailMessage).order_by(MailMessage.created_at.desc(), MailMessage.id.desc())
    return scoped(stmt, actor, READ, MailMessage)


def load_message(actor: User | None, message_id: Any) -> MailMessage:
    """One message ``actor`` may see; NotFound otherwise (out of scope looks like missing)."""
    return load_for(actor, MailMessage, message_id, READ)


def retry(actor: User | None, message: MailMessage) -> MailMessage:
    """Queue a failed message again, with a fresh set of attempts; sent after the caller commits."""
    authorize(actor, SEND, message, message="You may not send mail about this member again.")
    if message.status != "failed":
        raise ServiceError("Only a failed message can be sent again.", status=409)
    previous = message.reason
    message.status = "queued"
    message.attempts = 0
    message.next_attempt_at = utcnow()
    message.claimed_by = message.claimed_until = None
    message.reason = f"Queued again by {actor.email if actor else 'the system'}. Before: {previous}"[:1000]
    db.session.flush()
    audit.record(actor, "mail.retry", message, summary=f"Queued {message} again",
                 unit_id=message.member.unit_id if message.member else None)
    remember(message)
    return message


def check_may_send_test(actor: User | None) -> None:
    """Forbidden unless ``actor`` may send a test email (``members.update`` everywhere)."""
    authorize_everywhere(actor, SEND, message="Only staff who manage members everywhere may send test emails.")


def backend_label() -> str:
    """Where mail goes, in words for the console and the CLI (no password)."""
    state = current_app.extensions["mailman"]
    backend = state.backend if isinstance(state.backend, str) else type(state.backend).__name__
    if backend == "smtp":
        security = " (SSL)" if state.use_ssl else " (STARTTLS)" if state.use_tls else ""
        return f"the SMTP server {state.server}:{state.port}{security}"
    if backend == EML_BACKEND:
        return f".eml files in {state.file_path}"
    return f"the {backend} backend"


def send_test(actor: User | None, to: str) -> MailMessage:
    """Queue the ``test`` mail to ``to`` (the console's button, ``flask mail send-test``)."""
    check_may_send_test(actor)
    address, problem = address_for(to, None, None)
    if problem:
        raise ServiceError(problem, field="to")
    sent_at = utcnow().astimezone(timezone.utc).strftime("%d %B %Y at %H:%M UTC")
    message = send_mail("test", address, {"sent_by": actor.email if actor else "", "sent_at": sent_at},
                        actor=actor)
    audit.record(actor, "mail.test", message, summary=f"Sent a test email to {address}")
    return message

"""Delivery of one recorded message: claim it, hand it to the mail server, record what happened.

The task (app/tasks/mail.py) strings these together and commits between
them; nothing here commits. Exactly once:

1. ``claim`` is a compare-and-set on the row (queued, due, held by nobody or
   by a claim that lapsed): of two workers given the same id (a duplicate
   enqueue, the sweep racing the task) one wins and the other does nothing.
   The claim is committed before the mail server is contacted.
2. ``transmit`` sends through Flask-Mailman (multipart: the text body and an
   HTML alternative; the Message-ID recorded with the row, so a retry sends
   the same one). A failure is sorted into ``Transient`` (connection refused
   or lost, timeouts, 4xx answers: try again later) or ``Permanent`` (5xx
   answers, a message that cannot be built).
3. ``record_sent`` / ``record_retry`` / ``record_failed`` / ``defer``
   release the claim with the outcome.

A worker killed between the server's "250 OK" and the commit of ``sent``
leaves a claim that lapses after MAIL_CLAIM_SECONDS; the sweep then sends
the message again. That window (milliseconds) is the only way a message
goes twice: SMTP has no two-phase commit, and sending again beats losing it.
"""

from __future__ import annotations

import random
import smtplib
import socket
import uuid
from datetime import timedelta

from flask import current_app
from flask_mailman import BadHeaderError, EmailMultiAlternatives
from sqlalchemy import func, or_, select, update

from app.extensions import db, mail
from app.models import MailMessage
from app.models.base import utcnow
from app.services.mail.ratelimit import rate


class DeliveryError(Exception):
    """Sending failed; ``reason`` says how, in words for the console."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:1000]


class Transient(DeliveryError):
    """Worth trying again later: the server was unreachable or said 4xx."""


class Permanent(DeliveryError):
    """Trying again will not help: the server said 5xx, or the message cannot be built."""


def worker_token() -> str:
    """Names one delivery attempt in ``claimed_by`` (host and a random part)."""
    return f"{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"


def claim(message_id: int, owner: str) -> MailMessage | None:
    """Take the message for delivery if it is queued, due and not held; None when someone else has it."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["MAIL_CLAIM_SECONDS"])
    result = db.session.execute(
        update(MailMessage)
        .where(MailMessage.id == message_id, MailMessage.status == "queued",
               or_(MailMessage.next_attempt_at.is_(None), MailMessage.next_attempt_at <= now),
               or_(MailMessage.claimed_until.is_(None), MailMessage.claimed_until < now))
        .values(claimed_by=owner, claimed_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    message = db.session.get(MailMessage, message_id, populate_existing=True)
    return message


def build(message: MailMessage) -> EmailMultiAlternatives:
    """The Flask-Mailman message for a row: text body, HTML alternative, the row's Message-ID."""
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body_text,
        from_email=current_app.config["MAIL_DEFAULT_SENDER"],
        to=[message.to_address],
        headers={
            "Message-ID": message.message_id,
            # Automatic mail: out-of-office replies and auto-responders must not answer it (RFC 3834).
            "Auto-Submitted": "auto-generated",
            "X-Muster-Kind": message.kind,
        },
    )
    if message.list_unsubscribe:
        # One click from the mail program, no sign-in (RFC 2369, RFC 8058): app/services/notifications.py.
        email.extra_headers["List-Unsubscribe"] = f"<{message.list_unsubscribe}>"
        email.extra_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if message.body_html:
        email.attach_alternative(message.body_html, "text/html")
    return email


def transmit(message: MailMessage) -> None:
    """Hand the message to the configured backend; raises ``Transient`` or ``Permanent`` on failure."""
    try:
        email = build(message)
        connection = mail.get_connection()
        if connection.send_messages([email]) != 1:
            raise Permanent("The mail backend accepted nothing (no recipient?).")
    except DeliveryError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()), (550, b"recipient refused"))
        raise _by_code(code, text, "The server refused the recipient") from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused, auth, HELO...
        raise _by_code(exc.smtp_code, exc.smtp_error, "The server refused the message") from exc
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPException) as exc:
        raise Transient(f"The mail server dropped the connection: {exc}") from exc
    except (BadHeaderError, UnicodeError, ValueError) as exc:
        raise Permanent(f"The message could not be built: {exc}") from exc
    except TimeoutError as exc:
        raise Transient("The mail server did not answer in time.") from exc
    except ConnectionRefusedError as exc:
        raise Transient(f"The mail server refused the connection ({_server()}).") from exc
    except OSError as exc:  # unreachable host, DNS failure, TLS trouble, a full disk for .eml files
        raise Transient(f"Could not reach the mail server ({_server()}): {exc}") from exc


def _server() -> str:
    state = current_app.extensions["mailman"]
    return f"{state.server}:{state.port}"


def _by_code(code: int, text, what: str) -> DeliveryError:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    reason = f"{what}: {code} {' '.join(str(text).split())}".strip()
    return Transient(reason) if 400 <= int(code) < 500 else Permanent(reason)


def _release(message: MailMessage) -> None:
    message.claimed_by = None
    message.claimed_until = None


def record_sent(message: MailMessage) -> None:
    message.attempts += 1
    message.status = "sent"
    message.reason = ""
    message.sent_at = utcnow()
    message.next_attempt_at = None
    if message.sensitive:  # the one-time link has done its job; it is not kept readable
        message.body_text = message.body_html = ""
        message.reason = "Content erased after sending: it held a one-time link."
    _release(message)
    db.session.flush()


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: MAIL_RETRY_SECONDS doubling per attempt, capped, +-10%."""
    config = current_app.config
    delay = min(config["MAIL_RETRY_SECONDS"] * (2 ** max(attempts - 1, 0)), config["MAIL_RETRY_MAX_SECONDS"])
    return delay * random.uniform(0.9, 1.1)


def record_retry(message: MailMessage, reason: str) -> float | None:
    """A passing failure: try again after a back-off (seconds returned), or fail after MAIL_MAX_ATTEMPTS."""
    message.attempts += 1
    if message.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]:
        record_failed(message, f"Gave up after {message.attempts} attempts. Last: {reason}", counted=True)
        return None
    delay = backoff(message.attempts)
    message.reason = f"Attempt {message.attempts} failed, trying again: {reason}"
    message.next_attempt_at = utcnow() + timedelta(seconds=delay)
    _release(message)
    db.session.flush()
    return delay


def record_failed(message: MailMessage, reason: str, *, counted: bool = False) -> None:
    if not counted:
        message.attempts += 1
    message.status = "failed"
    message.reason = reason
    message.next_attempt_at = None
    _release(message)
    db.session.flush()


def defer(message: MailMessage, wait: float) -> float:
    """Over the bulk rate: put the message back without counting an attempt; returns its wait.

    The wait grows with the bulk messages queued before this one, so a run of
    a thousand wakes a few at a time at the rate, not all at every window.
    """
    rate = _rate_per_second()
    if rate:
        ahead = db.session.scalar(select(func.count()).select_from(MailMessage).where(
            MailMessage.status == "queued", MailMessage.bulk.is_(True), MailMessage.id < message.id)) or 0
        wait = max(wait, ahead / rate)
    message.next_attempt_at = utcnow() + timedelta(seconds=wait)
    message.reason = "Waiting for the bulk mail rate (MUSTER_MAIL_RATE)."
    _release(message)
    db.session.flush()
    return wait


def _rate_per_second() -> float:
    item = rate()
    return item.amount / item.get_expiry() if item is not None else 0.0

"""Tasks that deliver outgoing mail (the outbox row is what people see; Huey only executes).

``deliver_mail`` takes a message id. ``send_mail`` (app/services/mail)
enqueues it after the caller's commit; retries and rate deferrals enqueue it
again with a delay; ``sweep_mail`` (every minute, on the consumer that runs
periodic tasks) enqueues queued messages whose task was lost. However often
an id is enqueued, ``deliver`` claims the row before sending, so a message
goes out once (app/services/mail/delivery.py).

Unlike the job tasks, delivery always runs in an app context (and so a
database session) of its own, even in immediate mode: it is enqueued from
the caller's after-commit hook, when the caller's session may not run SQL.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Iterator

from flask import current_app, has_app_context
from huey import crontab
from sqlalchemy import update

from app.database import take_write_lock
from app.extensions import db
from app.models import MailMessage
from app.models.base import utcnow
from app.queue import huey, task_app

log = logging.getLogger(__name__)


@contextlib.contextmanager
def own_app_context() -> Iterator[None]:
    """A fresh app context (a session of its own) of the current app, or of the queue's bound app."""
    app = current_app._get_current_object() if has_app_context() else task_app()
    with app.app_context():
        try:
            yield
        finally:
            db.session.remove()


def enqueue_delivery(message_id: int, delay: float = 0.0) -> None:
    """Put a delivery on the queue, now or in ``delay`` seconds (outbox hook, sweep)."""
    if delay > 0:
        deliver_mail.schedule(args=(message_id,), delay=delay)
    else:
        deliver_mail(message_id)


# Huey's retries cover a failure before the claim (the database unreachable for a moment); after it,
# the row's own attempts and back-off decide (a Huey retry then finds the row held and does nothing).
@huey.task(retries=3, retry_delay=10, name="mail.deliver")
def deliver_mail(message_id: int) -> str:
    """Deliver one message if it is due and nobody else holds it."""
    with own_app_context():
        return deliver(message_id)


@huey.periodic_task(crontab(minute="*"), name="mail.sweep")
def sweep_mail() -> int:
    """Every minute: enqueue queued messages that are overdue and held by nobody (their task was lost)."""
    from app.services import mail

    with own_app_context():
        ids = mail.due_messages()
        db.session.commit()  # end the read before the deliveries (immediate mode runs them right here)
        for message_id in ids:
            enqueue_delivery(message_id)
        if ids:
            log.info("mail sweep re-enqueued %d message(s)", len(ids))
        return len(ids)


def deliver(message_id: int) -> str:
    """Claim, rate-check, send and record one message; commits each step. Returns what happened.

    "skipped" (not queued, not due, or held by another worker), "deferred"
    (over the bulk rate), "retry" (a passing failure), "failed" or "sent".
    """
    from app.services import mail
    from app.services.mail import delivery, ratelimit

    take_write_lock()  # SQLite: each writing step opens with the write lock (app/database.py)
    message = delivery.claim(message_id, delivery.worker_token())
    db.session.commit()  # the claim is visible to every other worker before the server is contacted
    if message is None:
        return "skipped"
    try:
        if message.bulk:
            try:
                wait = ratelimit.acquire()
            except Exception:  # noqa: BLE001 - the count's store is down: wait rather than send unmetered
                log.exception("bulk mail rate store unavailable; deferring message %s", message.id)
                wait = 30.0
            if wait:
                take_write_lock()
                mail.remember(message, delivery.defer(message, wait))
                db.session.commit()
                return "deferred"
        try:
            delivery.transmit(message)
        except delivery.Transient as exc:
            take_write_lock()
            delay = delivery.record_retry(message, exc.reason)
            if delay is not None:
                mail.remember(message, delay)
            db.session.commit()
            log.warning("mail %s: %s", message.id, exc.reason)
            return "retry" if delay is not None else "failed"
        except delivery.Permanent as exc:
            take_write_lock()
            delivery.record_failed(message, exc.reason)
            db.session.commit()
            log.warning("mail %s failed: %s", message.id, exc.reason)
            return "failed"
        take_write_lock()
        delivery.record_sent(message)
        db.session.commit()
        return "sent"
    except Exception:
        _let_go(message_id)
        raise


def _let_go(message_id: int) -> None:
    """After an unexpected error: drop the claim so the sweep can try again after a pause."""
    db.session.rollback()
    take_write_lock()
    pause = timedelta(seconds=current_app.config["MAIL_RETRY_SECONDS"])
    db.session.execute(
        update(MailMessage).where(MailMessage.id == message_id, MailMessage.status == "queued")
        .values(claimed_by=None, claimed_until=None, next_attempt_at=utcnow() + pause,
                reason="An unexpected error stopped delivery; it will be tried again.")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()

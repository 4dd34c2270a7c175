"""Delivery against a real SMTP server (aiosmtpd): retry with back-off, permanent failures, a real consumer.

Immediate mode (TestConfig) runs the first attempt when the caller commits;
a retry is scheduled on the queue for later, so these tests move the clock
by making the message due again and deliver it the way the queue would. The
last tests run a real Huey consumer on threads with a real store.
"""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import queue
from app.extensions import db
from app.models import MailMessage
from app.models.base import utcnow
from app.services import mail
from app.tasks.mail import deliver_mail, enqueue_delivery, sweep_mail
from tests.mailserver import free_port, point_mail_at
from tests.queue_support import wait_for

REDIS_URL = "redis://127.0.0.1:6379/2"  # the mail helper's Redis db


def _row(message_id: int) -> MailMessage:
    db.session.expire_all()
    return db.session.get(MailMessage, message_id)


def _later(message_id: int) -> str:
    """Time passes until the retry is due; then the queue delivers it (as the scheduled task would)."""
    row = _row(message_id)
    row.next_attempt_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    return deliver_mail.call_local(message_id)


@pytest.mark.parametrize("refusal", ["421 4.3.2 Service not available, closing channel",
                                     "451 4.7.1 Greylisted, please try again later"])
def test_a_4xx_answer_is_retried_later_and_then_sent_once(app, smtp_mail, refusal):
    smtp_mail.refuse_data(refusal)
    message = mail.send_test(None, "ada@example.org")
    db.session.commit()

    row = _row(message.id)
    assert (row.status, row.attempts) == ("queued", 1)
    assert refusal.split(",")[0] in row.reason and row.reason.startswith("Attempt 1 failed, trying again")
    wait = (row.next_attempt_at - utcnow()).total_seconds()
    assert 0.9 * app.config["MAIL_RETRY_SECONDS"] - 5 < wait <= 1.1 * app.config["MAIL_RETRY_SECONDS"]
    assert row.claimed_by is None and smtp_mail.messages == []
    assert deliver_mail.call_local(message.id) == "skipped"  # not due yet: an early duplicate does nothing

    assert _later(message.id) == "sent"
    assert len(smtp_mail.wait_for(1)) == 1 and smtp_mail.refused == 1
    row = _row(message.id)
    assert (row.status, row.attempts, row.reason) == ("sent", 2, "")


def test_the_back_off_doubles_with_each_attempt(app, monkeypatch):
    from app.services.mail.delivery import backoff

    monkeypatch.setitem(app.config, "MAIL_RETRY_SECONDS", 10)
    monkeypatch.setitem(app.config, "MAIL_RETRY_MAX_SECONDS", 35)
    waits = [backoff(n) for n in (1, 2, 3, 4)]
    assert 9 <= waits[0] <= 11 and 18 <= waits[1] <= 22 and all(31.5 <= w <= 38.5 for w in waits[2:])


def test_a_5xx_answer_fails_for_good_with_the_reason(app, smtp_mail):
    smtp_mail.refuse_rcpt("550 5.1.1 <ada@example.org>: Recipient address rejected: User unknown")
    message = mail.send_test(None, "ada@example.org")
    db.session.commit()

    row = _row(message.id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
    assert row.reason == ("The server refused the recipient: 550 5.1.1 <ada@example.org>: "
                          "Recipient address rejected: User unknown")
    assert smtp_mail.messages == []
    assert deliver_mail.call_local(message.id) == "skipped"  # failed stays failed until someone retries


def test_a_refused_connection_is_retried(app, monkeypatch):
    point_mail_at(app, monkeypatch, free_port())  # nothing listens there
    message = mail.send_test(None, "ada@example.org")
    db.session.commit()
    row = _row(message.id)
    assert row.status == "queued" and row.attempts == 1
    assert "The mail server refused the connection (127.0.0.1:" in row.reason


def test_a_server_that_never_answers_times_out_and_is_retried(app, monkeypatch):
    with socket.socket() as silent:  # accepts connections (the backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        point_mail_at(app, monkeypatch, silent.getsockname()[1])
        monkeypatch.setattr(app.extensions["mailman"], "timeout", 0.3)
        message = mail.send_test(None, "ada@example.org")
        db.session.commit()
    row = _row(message.id)
    assert row.status == "queued" and row.attempts == 1 and "timed out" in row.reason


def test_after_too_many_passing_failures_it_fails(app, smtp_mail, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_MAX_ATTEMPTS", 2)
    smtp_mail.refuse_data("421 4.3.2 busy", "421 4.3.2 still busy")
    message = mail.send_test(None, "ada@example.org")
    db.session.commit()
    assert _later(message.id) == "failed"
    row = _row(message.id)
    assert row.status == "failed" and row.attempts == 2
    assert row.reason == "Gave up after 2 attempts. Last: The server refused the message: 421 4.3.2 still busy"


def test_an_unexpected_error_lets_go_of_the_message(app, monkeypatch):
    from app.services.mail import delivery

    def broken(message):
        raise KeyError("a bug")

    monkeypatch.setattr(delivery, "transmit", broken)
    message = mail.send_mail("test", "ada@example.org", {"sent_at": "now"})
    db.session.commit()
    row = _row(message.id)
    assert row.status == "queued" and row.claimed_by is None and row.next_attempt_at > utcnow()
    assert row.reason == "An unexpected error stopped delivery; it will be tried again."


def test_the_sweep_enqueues_messages_whose_task_was_lost(app, smtp_mail):
    message = mail.send_test(None, "ada@example.org")
    db.session.flush()
    db.session.info.pop("muster_outcome_pending")  # as if the enqueue after commit had failed
    db.session.commit()
    assert _row(message.id).status == "queued" and smtp_mail.messages == []
    assert sweep_mail.call_local() == 0  # within the grace period: its task may simply be waiting
    row = _row(message.id)
    row.next_attempt_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    assert sweep_mail.call_local() == 1
    assert len(smtp_mail.wait_for(1)) == 1 and _row(message.id).status == "sent"


# --- a real consumer on a real store -------------------------------------------------


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")


def _settled(message_id: int):
    row = _row(message_id)
    db.session.rollback()
    return row.status if row.status != "queued" else None


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_real_consumer_retries_after_a_refusal_and_sends_once(committing_app, smtp_server, monkeypatch,
                                                                tmp_path, store):
    if store == "redis":
        _redis_or_skip()
    url = f"sqlite:///{tmp_path}/queue.db" if store == "sqlite" else REDIS_URL
    point_mail_at(committing_app, monkeypatch, smtp_server.port)
    monkeypatch.setitem(committing_app.config, "MAIL_RETRY_SECONDS", 0.2)
    smtp_server.refuse_data("421 4.3.2 Try again in a moment")
    with queue.using(url, tmp_path, app=committing_app) as huey:
        huey.flush()
        message = mail.send_test(None, "ada@example.org")
        db.session.commit()  # enqueued on the store now; nobody has run it
        message_id = message.id
        assert huey.pending_count() == 1
        for _ in range(2):
            enqueue_delivery(message_id)  # duplicates: a double click, the sweep
        with queue.running_consumer(3):
            assert wait_for(lambda: _settled(message_id), what="the mail to be sent") == "sent"
            smtp_server.wait_for(1)
    row = _row(message_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(smtp_server.messages) == 1 and smtp_server.refused == 1
    assert smtp_server.messages[0]["Message-ID"] == row.message_id


def test_the_consumer_runs_the_task_in_its_own_thread(committing_app, smtp_server, monkeypatch, tmp_path):
    point_mail_at(committing_app, monkeypatch, smtp_server.port)
    threads: list[int] = []
    from app.services.mail import delivery

    real_transmit = delivery.transmit

    def transmit(message):
        threads.append(threading.get_ident())
        real_transmit(message)

    monkeypatch.setattr(delivery, "transmit", transmit)
    with queue.using(f"sqlite:///{tmp_path}/queue.db", tmp_path, app=committing_app):
        message_id = mail.send_test(None, "ada@example.org").id
        db.session.commit()
        with queue.running_consumer(1):
            assert wait_for(lambda: _settled(message_id), what="the mail to be sent") == "sent"
    assert threads and threads[0] != threading.get_ident()
    assert db.session.scalars(select(MailMessage.status)).all() == ["sent"]

"""Stripe delivering at once, through a real WSGI server on PostgreSQL: each payment renews the membership once.

The app runs under gunicorn (2 worker processes x 4 threads, as in
production: ``gunicorn wsgi:app``) against the test run's PostgreSQL
database, its Stripe settings pointing at the stand-in (tests/stripe_standin.py)
in this process. Two threads released by a ``threading.Barrier`` POST, at
the same instant, either the same signed ``checkout.session.completed``
event twice (Stripe retrying while the first delivery is still being
handled) or two different events about one session (``completed`` while
a delayed payment was processing, then ``async_payment_succeeded``). The
stand-in answers reads of a session only after a short delay (outside its
lock), so both deliveries are inside the handler together, each on its own
connection, when they reach the payment.

What must hold, for every payment: both answers are 200; one StripeEvent
row per event id; the payment completed and fulfilled once; the card's
valid-until moved by exactly one period (one "renewed" card transaction);
one ``payment.fulfilled`` audit entry; one receipt number (and the year's
receipt counter moved once).

The same delivery twice is serialised by the StripeEvent insert (its
primary key: the second waits for the first's commit, then finds the id and
answers ``duplicate``); two different events, by the payment's row
(``lock_row`` in ``dues.complete``/``fulfil`` and the re-read after it).

PostgreSQL only: SQLite's single writer serialises whole requests, which
proves nothing about these locks. Skipped on SQLite, failed there with
REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import date
from http.server import BaseHTTPRequestHandler

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditEntry,
    CardTransaction,
    Counter,
    MembershipCard,
    Payment,
    StripeEvent,
)
from app.services import cards
from app.services.cards import add_months
from app.services.dues import online, tiers
from tests.queue_support import ROOT
from tests.stripe_standin import SECRET_KEY, WEBHOOK_SECRET, running, sign

pytestmark = pytest.mark.postgres

ROUNDS = 3  # payments per test, each raced on its own
READ_DELAY = 0.3  # seconds the stand-in holds each read of a session: both deliveries are inside at once


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _slow_reads(handler: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    """The stand-in's request handler, answering ``GET /v1/checkout/sessions/<id>`` after READ_DELAY."""

    class SlowReads(handler):  # type: ignore[misc, valid-type]
        def do_GET(self) -> None:
            if self.path.startswith("/v1/checkout/sessions/"):
                time.sleep(READ_DELAY)  # before the stand-in's lock: concurrent reads wait side by side
            super().do_GET()

    return SlowReads


@pytest.fixture(scope="module")
def stripe(app):
    """The stand-in for the whole module (the server below is pointed at it when it starts)."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            if os.environ.get("REQUIRE_POSTGRES") == "1":
                pytest.fail("REQUIRE_POSTGRES=1 but the tests do not run on PostgreSQL", pytrace=False)
            pytest.skip("concurrent webhooks through WSGI need PostgreSQL: set TEST_DATABASE_URL")
    with running() as standin:
        standin._server.RequestHandlerClass = _slow_reads(standin._server.RequestHandlerClass)
        yield standin


@pytest.fixture(scope="module")
def server(app, stripe, tmp_path_factory):
    """gunicorn serving ``wsgi:app`` (2 processes x 4 threads) on the test database; yields its webhook URL."""
    port = _free_port()
    instance = tmp_path_factory.mktemp("webhook-node")
    log = instance / "gunicorn.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MUSTER_INSTANCE_DIR": str(instance),
           "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": "webhook-concurrency-secret",
           "MUSTER_PUBLIC_URL": f"http://127.0.0.1:{port}", "STRIPE_SECRET_KEY": SECRET_KEY,
           "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_BASE": stripe.base_url}
    for name in ("FLASK_APP", "MUSTER_QUEUE_IMMEDIATE"):
        env.pop(name, None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "4", "-k", "gthread",
             "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "gunicorn exited:\n" + log.read_text(errors="replace")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10):
                    break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not answer within a minute"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/webhooks/stripe"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    errors = log.read_text(errors="replace")
    assert "Traceback" not in errors, errors


@pytest.fixture()
def payments(committing_app, stripe, staff, tree, make_member, monkeypatch):
    """ROUNDS members with a card running out next month, each with a pending payment of a Checkout Session."""
    for name, value in (("STRIPE_SECRET_KEY", SECRET_KEY), ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
                        ("STRIPE_API_BASE", stripe.base_url)):
        monkeypatch.setitem(committing_app.config, name, value)
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "150", "currency": "ZMW",
                                              "duration_months": "12"})
    made = []
    # A URL of this test's own: the module's stand-in outlives the wiped tables (ids start again at 1), and the
    # same payment id with the same parameters would be the same Idempotency-Key, answered with an old session.
    success_url = f"http://muster.test/done?run={uuid.uuid4().hex}&s={{CHECKOUT_SESSION_ID}}"
    for _ in range(ROUNDS):
        member = make_member(tree["w1"])
        card = cards.issue_card(None, member, today=add_months(date.today(), -11))
        payment, _url = online.start_checkout(member, tier, success_url=success_url,
                                              cancel_url="http://muster.test/dues")
        made.append({"payment_id": payment.id, "session_id": payment.stripe_session_id, "card_id": card.id,
                     "expiry": card.expires_on})
    db.session.commit()
    db.session.remove()
    return made


def _at_once(url: str, payloads: list[bytes]) -> list[tuple[int, str]]:
    """Each payload POSTed, signed, by a thread of its own, all released together; (status, outcome) of each."""
    signed = [(payload, sign(payload, WEBHOOK_SECRET)) for payload in payloads]
    barrier = threading.Barrier(len(signed))
    answers: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def post(payload: bytes, signature: str) -> None:
        request = urllib.request.Request(url, data=payload, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature})
        try:
            barrier.wait(timeout=10)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read()
            try:
                outcome = json.loads(body).get("outcome") or body.decode()
            except ValueError:
                outcome = body.decode(errors="replace")
            answers.append((status, outcome))
        except BaseException as exc:  # reported to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=post, args=pair) for pair in signed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not errors, errors
    return sorted(answers)


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _renewed_once(made: dict) -> str:
    """Every check of "one payment, one renewal" for one payment; its receipt number."""
    payment = db.session.get(Payment, made["payment_id"])
    card = db.session.get(MembershipCard, made["card_id"])
    expected = add_months(max(date.today(), made["expiry"]), 12)
    assert (payment.status, payment.hold_reason) == ("completed", "")
    assert payment.fulfilled_at is not None and payment.receipt_number and payment.receipt_number.startswith("R-")
    assert (payment.extended_from, payment.extended_to, card.expires_on) == (made["expiry"], expected, expected)
    assert _count(CardTransaction, CardTransaction.card_id == card.id, CardTransaction.type == "renewed") == 1
    assert _count(AuditEntry, AuditEntry.action == "payment.fulfilled",
                  AuditEntry.object_type == "Payment", AuditEntry.object_id == str(payment.id)) == 1
    return payment.receipt_number


def _receipts_allocated() -> int:
    return db.session.scalar(select(func.coalesce(func.sum(Counter.value), 0))
                             .where(Counter.name.like("receipt:%")))


def test_the_same_event_delivered_twice_at_once_renews_once(server, stripe, payments):
    receipts = []
    for made in payments:
        stripe.pay(made["session_id"])
        payload = stripe.last_event("checkout.session.completed")
        event_id = json.loads(payload)["id"]
        answers = _at_once(server, [payload, payload])
        assert answers == [(200, "done"), (200, "duplicate")], answers
        db.session.rollback()  # what the server committed
        assert _count(StripeEvent, StripeEvent.id == event_id) == 1
        assert db.session.get(StripeEvent, event_id).payment_id == made["payment_id"]
        receipts.append(_renewed_once(made))
    assert len(set(receipts)) == len(payments) == _receipts_allocated()
    assert _count(StripeEvent) == len(payments)


def test_two_events_about_one_session_at_once_renew_once(server, stripe, payments):
    receipts = []
    for made in payments:
        stripe.pay(made["session_id"], delayed=True)  # a bank debit: complete, unpaid, processing
        completed = stripe.last_event("checkout.session.completed")
        stripe.pay(made["session_id"])  # ... and it settles
        succeeded = stripe.last_event("checkout.session.async_payment_succeeded")
        ids = [json.loads(completed)["id"], json.loads(succeeded)["id"]]
        answers = _at_once(server, [completed, succeeded])
        assert answers == [(200, "done"), (200, "done")], answers  # both new: each re-read says paid
        db.session.rollback()
        for event_id in ids:
            assert _count(StripeEvent, StripeEvent.id == event_id) == 1
            assert db.session.get(StripeEvent, event_id).payment_id == made["payment_id"]
        receipts.append(_renewed_once(made))
    assert len(set(receipts)) == len(payments) == _receipts_allocated()
    assert _count(StripeEvent) == 2 * len(payments)

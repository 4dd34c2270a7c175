"""The Stripe gateway against the local stand-in, through the real stripe library.

What is sent (amount, currency, reference, metadata, idempotency key) is
checked on the stand-in's side, as Stripe would see it; webhook payloads are
signed as Stripe signs them, so the real verification runs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from app.services.dues import stripe_gateway as gateway
from app.services.errors import ServiceError
from tests.stripe_standin import SECRET_KEY, WEBHOOK_SECRET, event, running, sign, standin_fixture

stripe_standin = standin_fixture()


def _checkout(payment_id: int = 7, **overrides):
    args = dict(payment_id=payment_id, amount_minor=15000, currency="ZMW", product_name="Standard membership, 1 year",
                success_url="http://muster.test/portal/dues/done?session_id={CHECKOUT_SESSION_ID}",
                cancel_url="http://muster.test/portal/dues", customer_email="ada@example.org",
                metadata={"member_id": 42, "tier_id": 3})
    args.update(overrides)
    return gateway.create_checkout_session(**args)


def test_enabled_follows_the_secret_key(app, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", None)
    assert not gateway.enabled()
    with pytest.raises(ServiceError) as refused:
        gateway.client()
    assert refused.value.status == 503
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_x")
    assert gateway.enabled()


def test_checkout_session_sends_what_stripe_needs(stripe_standin):
    session_id, url = _checkout()

    assert session_id.startswith("cs_test_")
    assert url == f"{stripe_standin.base_url}/pay/{session_id}"
    [sent] = stripe_standin.requests_to("POST", "/v1/checkout/sessions")
    form = sent.form
    assert form["mode"] == "payment"
    assert form["client_reference_id"] == "7"
    assert form["line_items"] == [{"quantity": "1", "price_data": {
        "currency": "zmw", "unit_amount": "15000", "product_data": {"name": "Standard membership, 1 year"}}}]
    assert form["metadata"] == {"member_id": "42", "tier_id": "3", "payment_id": "7"}
    assert form["payment_intent_data"]["metadata"] == form["metadata"]
    assert form["customer_email"] == "ada@example.org"
    assert form["success_url"].endswith("session_id={CHECKOUT_SESSION_ID}")
    assert sent.api_key == SECRET_KEY
    assert sent.stripe_version  # the library pins its API version on every call
    assert sent.idempotency_key.startswith("muster-checkout-7-1-")


def test_a_retried_checkout_gets_the_same_session(stripe_standin):
    first = _checkout()
    again = _checkout()
    assert again == first
    keys = {r.idempotency_key for r in stripe_standin.requests_to("POST", "/v1/checkout/sessions")}
    assert len(keys) == 1 and len(stripe_standin.sessions) == 1

    # Another payment, or a new attempt after an expired session, is a new session.
    assert _checkout(payment_id=8)[0] != first[0]
    assert _checkout(attempt=2)[0] != first[0]
    assert len(stripe_standin.sessions) == 3


def test_the_library_retries_a_failed_create_with_the_same_key(stripe_standin, monkeypatch):
    stripe_standin.fail_next(status=500)
    session_id, _ = _checkout()
    tries = stripe_standin.requests_to("POST", "/v1/checkout/sessions")
    assert len(tries) == 2 and tries[0].idempotency_key == tries[1].idempotency_key
    assert list(stripe_standin.sessions) == [session_id]


def test_customer_email_is_optional(stripe_standin):
    _checkout(customer_email=None)
    assert "customer_email" not in stripe_standin.requests[-1].form


def test_retrieve_session_before_and_after_payment(stripe_standin):
    session_id, _ = _checkout()

    before = gateway.retrieve_session(session_id)
    assert (before.status, before.payment_status, before.paid) == ("open", "unpaid", False)
    assert before.client_reference_id == "7" and before.payment_intent_id is None
    assert (before.amount_total, before.currency) == (15000, "zmw")
    assert before.metadata == {"member_id": "42", "tier_id": "3", "payment_id": "7"}

    stripe_standin.pay(session_id)
    after = gateway.retrieve_session(session_id)
    assert (after.status, after.payment_status, after.paid) == ("complete", "paid", True)
    assert after.payment_intent_id.startswith("pi_test_")
    assert after.id == session_id


def test_a_delayed_payment_is_not_paid_until_it_settles(stripe_standin):
    session_id, _ = _checkout()
    stripe_standin.pay(session_id, delayed=True)
    pending = gateway.retrieve_session(session_id)
    assert (pending.status, pending.paid) == ("complete", False)
    stripe_standin.pay(session_id)
    assert gateway.retrieve_session(session_id).paid
    assert json.loads(stripe_standin.last_event())["type"] == "checkout.session.async_payment_succeeded"


def test_expired_session(stripe_standin):
    session_id, _ = _checkout()
    stripe_standin.expire(session_id)
    state = gateway.retrieve_session(session_id)
    assert (state.status, state.paid) == ("expired", False)


def test_unknown_session_is_404(stripe_standin):
    for bogus in ("cs_test_nothing", "not-a-session", ""):
        with pytest.raises(ServiceError) as missing:
            gateway.retrieve_session(bogus)
        assert missing.value.status == 404


def test_refund_state_follows_the_charge(stripe_standin):
    session_id, _ = _checkout()
    stripe_standin.pay(session_id)
    intent = gateway.retrieve_session(session_id).payment_intent_id
    assert gateway.refund_state(intent) == (0, False)

    stripe_standin.refund(intent, amount=5000)
    assert gateway.refund_state(intent) == (5000, False)
    stripe_standin.refund(intent)
    assert gateway.refund_state(intent) == (15000, True)

    [get] = stripe_standin.requests_to("GET", f"/v1/payment_intents/{intent}")[-1:]
    assert get.query == {"expand": ["latest_charge"]}  # one call, the charge expanded
    charge = json.loads(stripe_standin.last_event("charge.refunded"))["data"]["object"]
    state = gateway.retrieve_charge(charge["id"])
    assert (state.payment_intent_id, state.amount_refunded, state.refunded) == (intent, 15000, True)


def test_refund_state_of_an_unpaid_intent(stripe_standin):
    session_id, _ = _checkout()
    stripe_standin.pay(session_id, delayed=True)  # an intent without a charge yet
    intent = gateway.retrieve_session(session_id).payment_intent_id
    assert gateway.refund_state(intent) == (0, False)


def test_parse_event_accepts_a_signed_payload(stripe_standin):
    session_id, _ = _checkout()
    stripe_standin.pay(session_id)
    payload = stripe_standin.last_event("checkout.session.completed")

    parsed = gateway.parse_event(payload, sign(payload, WEBHOOK_SECRET))

    assert parsed.type == "checkout.session.completed"
    assert parsed.id.startswith("evt_")
    # data.object is a Session StripeObject (no .get in stripe 16); checkout_state reads it.
    snapshot = gateway.checkout_state(parsed.data.object)
    assert (snapshot.id, snapshot.client_reference_id, snapshot.paid) == (session_id, "7", True)
    assert snapshot.metadata["payment_id"] == "7"


def test_parse_event_works_without_a_secret_key(app, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", None)
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    payload = event("charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": "pi_1"})
    assert gateway.parse_event(payload, sign(payload, WEBHOOK_SECRET)).data.object.payment_intent == "pi_1"


@pytest.mark.parametrize("case", ["wrong secret", "stale", "tampered", "missing", "garbled header",
                                  "not json", "not utf-8", "future-proof scheme only"])
def test_parse_event_refuses_what_stripe_did_not_send(stripe_standin, case):
    payload = event("checkout.session.completed", {"id": "cs_test_1", "object": "checkout.session"})
    header = sign(payload, WEBHOOK_SECRET)
    if case == "wrong secret":
        header = sign(payload, "whsec_other")
    elif case == "stale":
        header = sign(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    elif case == "tampered":
        payload = payload.replace(b"cs_test_1", b"cs_test_2")
    elif case == "missing":
        header = None
    elif case == "garbled header":
        header = "nonsense"
    elif case == "not json":
        payload = b"hello"
        header = sign(payload, WEBHOOK_SECRET)
    elif case == "not utf-8":
        payload = b"\xff\xfe{}"
        header = "t=%d,v1=00" % time.time()
    elif case == "future-proof scheme only":
        header = header.replace("v1=", "v0=")
    with pytest.raises(ServiceError) as refused:
        gateway.parse_event(payload, header)
    assert refused.value.status == 400
    if case == "stale":
        assert refused.value.details["reason"] == "stale"


def test_a_signature_within_the_tolerance_passes(stripe_standin):
    payload = event("checkout.session.expired", {"id": "cs_test_1", "object": "checkout.session"})
    header = sign(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 250)
    assert gateway.parse_event(payload, header).type == "checkout.session.expired"


def test_parse_event_without_a_webhook_secret_is_503(app, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", None)
    payload = event("checkout.session.completed", {"id": "cs_test_1"})
    with pytest.raises(ServiceError) as refused:
        gateway.parse_event(payload, sign(payload, WEBHOOK_SECRET))
    assert refused.value.status == 503


def test_stripe_down_is_a_502(app, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", dead)
    monkeypatch.setattr(gateway, "NETWORK_RETRIES", 0)  # no back-off sleeps in the test
    for call in (_checkout, lambda: gateway.retrieve_session("cs_test_1"), lambda: gateway.refund_state("pi_1")):
        with pytest.raises(ServiceError) as down:
            call()
        assert down.value.status == 502
        assert down.value.message == gateway.UNAVAILABLE


def test_stripe_errors_are_502_not_exceptions(stripe_standin, monkeypatch):
    monkeypatch.setattr(gateway, "NETWORK_RETRIES", 0)
    stripe_standin.fail_next(status=500)
    with pytest.raises(ServiceError) as failed:
        _checkout()
    assert (failed.value.status, failed.value.message) == (502, gateway.UNAVAILABLE)

    stripe_standin.fail_next(status=401, type="invalid_request_error")  # a revoked key
    with pytest.raises(ServiceError) as refused:
        _checkout()
    assert (refused.value.status, refused.value.details["stripe_error"]) == (502, "AuthenticationError")


def test_a_reused_key_with_other_parameters_is_refused_not_leaked(stripe_standin, monkeypatch):
    _checkout()
    monkeypatch.setattr(gateway, "idempotency_key", lambda *a, **k: "muster-checkout-fixed")
    _checkout(payment_id=9)  # first use of the fixed key
    with pytest.raises(ServiceError) as conflict:
        _checkout(payment_id=9, amount_minor=1)
    assert (conflict.value.status, conflict.value.details["stripe_error"]) == (502, "IdempotencyError")


def test_the_checkout_page_pays_and_redirects_with_the_session_id(app, monkeypatch):
    """The stand-in's hosted page (for browser tests) pays, sends the signed webhook, then redirects."""
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with running(webhook_url=f"http://127.0.0.1:{hook.server_address[1]}/webhooks/stripe") as standin:
            monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", SECRET_KEY)
            monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            monkeypatch.setitem(app.config, "STRIPE_API_BASE", standin.base_url)
            session_id, url = _checkout()
            assert b"Pay 150.00 ZMW" in urllib.request.urlopen(url).read()

            class NoRedirect(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *args):
                    return None

            opener = urllib.request.build_opener(NoRedirect)
            with pytest.raises(urllib.error.HTTPError) as redirect:
                opener.open(urllib.request.Request(url, data=b"", method="POST"))
            assert redirect.value.code == 303
            assert redirect.value.headers["Location"] == f"http://muster.test/portal/dues/done?session_id={session_id}"
            assert gateway.retrieve_session(session_id).paid
    finally:
        hook.shutdown()
        hook.server_close()
    [(body, header)] = received
    assert gateway.parse_event(body, header).type == "checkout.session.completed"

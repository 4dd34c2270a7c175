"""Paying online (issue 14): a Checkout Session at the local Stripe stand-in, then Stripe's webhook events.

Events are the stand-in's own, signed exactly as Stripe signs them
(``t=<ts>,v1=HMAC-SHA256(secret, "<ts>.<body>")``) and posted to
``/webhooks/stripe`` through the WSGI stack, so the real verification runs.
What is asserted is what the member and staff see: the payment's status,
its receipt, and the card's valid-until, moved once.
"""

from __future__ import annotations

import json
import time
from datetime import date

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import CardTransaction, MembershipCard, Payment, StripeEvent
from app.services import cards
from app.services import members as member_service
from app.services.cards import add_months
from app.services.dues import online, tiers
from tests.stripe_standin import WEBHOOK_SECRET, sign, standin_fixture

stripe_standin = standin_fixture()


@pytest.fixture()
def bought(stripe_standin, staff, tree, make_member):
    """A member with a card due for renewal next month, and the pending payment of a Checkout Session (Annual)."""
    member = make_member(tree["w1"], email="payer@example.org")
    card = cards.issue_card(None, member, today=add_months(date.today(), -11))
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "150", "currency": "ZMW",
                                              "duration_months": "12"})
    payment, url = online.start_checkout(member, tier, success_url="http://muster.test/done?s={CHECKOUT_SESSION_ID}",
                                         cancel_url="http://muster.test/dues")
    db.session.commit()
    return {"member": member, "card": card, "tier": tier, "payment": payment, "url": url,
            "expiry": card.expires_on}


def post_event(client, payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    return client.post("/webhooks/stripe", data=payload, content_type="application/json",
                       headers={"Stripe-Signature": sign(payload, secret, timestamp)})


def fresh(payment: Payment) -> Payment:
    db.session.expire_all()
    return db.session.get(Payment, payment.id)


def test_starting_a_checkout_sends_the_tiers_price_and_the_payment(stripe_standin, bought):
    payment = bought["payment"]
    assert payment.status == "pending" and payment.stripe_session_id.startswith("cs_")
    [sent] = stripe_standin.requests_to("POST", "/v1/checkout/sessions")
    assert sent.form["mode"] == "payment" and sent.form["client_reference_id"] == str(payment.id)
    assert sent.form["line_items"][0]["price_data"]["unit_amount"] == "15000"
    assert bought["url"].startswith(stripe_standin.base_url)


def test_a_signed_completed_event_renews_the_card_once_even_when_replayed(client, stripe_standin, bought):
    payment = bought["payment"]
    stripe_standin.pay(payment.stripe_session_id)
    payload = stripe_standin.last_event("checkout.session.completed")
    first = post_event(client, payload)
    assert first.status_code == 200 and first.get_json()["outcome"] == "done"
    payment = fresh(payment)
    card = db.session.get(MembershipCard, bought["card"].id)
    assert payment.status == "completed" and payment.receipt_number.startswith("R-")
    assert card.expires_on == add_months(max(date.today(), bought["expiry"]), 12)
    again = post_event(client, payload)
    assert again.status_code == 200 and again.get_json()["outcome"] == "duplicate"
    assert db.session.get(MembershipCard, card.id).expires_on == card.expires_on
    assert db.session.scalar(select(func.count()).select_from(CardTransaction).where(
        CardTransaction.card_id == card.id, CardTransaction.type == "renewed")) == 1


def test_bad_signatures_and_stale_events_are_refused_with_400(client, stripe_standin, bought):
    stripe_standin.pay(bought["payment"].stripe_session_id)
    payload = stripe_standin.last_event("checkout.session.completed")
    assert post_event(client, payload, secret="whsec_wrong").status_code == 400
    assert post_event(client, payload, timestamp=int(time.time()) - 301).status_code == 400
    assert client.post("/webhooks/stripe", data=payload, content_type="application/json").status_code == 400
    assert fresh(bought["payment"]).status == "pending"
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0


def test_the_success_page_path_and_the_webhook_fulfil_once_in_either_order(client, stripe_standin, bought):
    payment = bought["payment"]
    stripe_standin.pay(payment.stripe_session_id)
    online.follow_session(payment.stripe_session_id)  # what the success page does: re-read, never trust
    db.session.commit()
    until = db.session.get(MembershipCard, bought["card"].id).expires_on
    assert post_event(client, stripe_standin.last_event("checkout.session.completed")).status_code == 200
    assert db.session.get(MembershipCard, bought["card"].id).expires_on == until
    assert fresh(payment).receipt_number is not None


def test_an_expired_event_after_the_completion_changes_nothing(client, stripe_standin, bought):
    payment = bought["payment"]
    stripe_standin.pay(payment.stripe_session_id)
    completed = stripe_standin.last_event("checkout.session.completed")
    # An expiry event about the same session, delivered late (Stripe re-read says it is paid).
    session = json.loads(completed)["data"]["object"]
    expired = json.dumps({"id": "evt_late_expiry", "object": "event", "type": "checkout.session.expired",
                          "created": int(time.time()), "livemode": False, "api_version": "2026-10-28.endive",
                          "data": {"object": {**session, "status": "expired"}}}).encode()
    assert post_event(client, completed).status_code == 200
    assert post_event(client, expired).get_json()["outcome"] == "done"
    assert fresh(payment).status == "completed"


def test_an_expired_unpaid_session_cancels_the_payment(client, stripe_standin, bought):
    stripe_standin.expire(bought["payment"].stripe_session_id)
    assert post_event(client, stripe_standin.last_event("checkout.session.expired")).status_code == 200
    assert fresh(bought["payment"]).status == "cancelled"


def test_a_refund_in_stripe_puts_the_expiry_back(client, stripe_standin, bought):
    payment = bought["payment"]
    stripe_standin.pay(payment.stripe_session_id)
    post_event(client, stripe_standin.last_event("checkout.session.completed"))
    stripe_standin.refund(fresh(payment).stripe_payment_intent_id)
    assert post_event(client, stripe_standin.last_event("charge.refunded")).get_json()["outcome"] == "done"
    assert fresh(payment).status == "refunded"
    assert db.session.get(MembershipCard, bought["card"].id).expires_on == bought["expiry"]


def test_a_payment_for_a_member_suspended_meanwhile_is_held_for_staff(client, stripe_standin, bought):
    member_service.change_status(None, bought["member"], "suspended", "Under review")
    db.session.commit()
    stripe_standin.pay(bought["payment"].stripe_session_id)
    post_event(client, stripe_standin.last_event("checkout.session.completed"))
    payment = fresh(bought["payment"])
    assert payment.status == "completed" and payment.fulfilled_at is None and "suspended" in payment.hold_reason


def test_kinds_muster_does_not_use_get_200(client, stripe_standin):
    payload = json.dumps({"id": "evt_other", "object": "event", "type": "customer.created", "created": 1,
                          "livemode": False, "data": {"object": {"id": "cus_1", "object": "customer"}}}).encode()
    response = post_event(client, payload)
    assert response.status_code == 200 and response.get_json()["outcome"] == "ignored"


def test_a_delayed_payment_stays_pending_while_the_bank_processes_it(client, stripe_standin, bought):
    """A bank debit: completed but unpaid is "processing", not failed; settling renews, declining fails."""
    payment = bought["payment"]
    stripe_standin.pay(payment.stripe_session_id, delayed=True)
    assert post_event(client, stripe_standin.last_event("checkout.session.completed")).status_code == 200
    assert fresh(payment).status == "pending" and fresh(payment).fulfilled_at is None
    online.follow_session(payment.stripe_session_id)  # the member back on the return page meanwhile
    db.session.commit()
    assert fresh(payment).status == "pending"
    stripe_standin.pay(payment.stripe_session_id)  # the bank pays
    assert post_event(client, stripe_standin.last_event("checkout.session.async_payment_succeeded")).status_code == 200
    assert fresh(payment).status == "completed" and fresh(payment).receipt_number
    db.session.expire_all()
    assert db.session.get(MembershipCard, bought["card"].id).expires_on == add_months(bought["expiry"], 12)


def test_a_declined_delayed_payment_fails_and_renews_nothing(client, stripe_standin, bought):
    payment = bought["payment"]
    stripe_standin.pay(payment.stripe_session_id, delayed=True)
    post_event(client, stripe_standin.last_event("checkout.session.completed"))
    stripe_standin.decline(payment.stripe_session_id)
    assert post_event(client, stripe_standin.last_event("checkout.session.async_payment_failed")).status_code == 200
    assert fresh(payment).status == "failed" and fresh(payment).receipt_number is None
    db.session.expire_all()
    assert db.session.get(MembershipCard, bought["card"].id).expires_on == bought["expiry"]

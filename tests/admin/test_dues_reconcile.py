"""Console "Dues > Reconcile" (issue 14): payments waiting for Stripe or for staff, and the buttons that settle them.

What staff see: a coordinator of W1 lists their ward's online payments still
pending after some minutes and its completed payments held for staff (with
the reason), oldest first, and nothing of W4; "Check with Stripe" at the
local Stripe stand-in completes a paid session and renews the card exactly
once, however often it is pressed and whether or not the webhook comes too;
"Renew now" renews a held payment once the reason is dealt with and says
why it is still held otherwise. Out of the area is 404, without
payments.create 403, without the CSRF token 400; without Stripe configured
the page says why there is no "Check" button.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, CardTransaction, MembershipCard, Payment
from app.models.base import utcnow
from app.services import cards, dues, rbac
from app.services import members as member_service
from app.services.cards import add_months
from app.services.dues import online, tiers
from tests.conftest import csrf_token_from, login
from tests.stripe_standin import WEBHOOK_SECRET, sign, standin_fixture

stripe_standin = standin_fixture()
PAGE = "/admin/dues/reconcile/"


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def listed(html: str) -> list[int]:
    """The payment ids of the table's rows, in page order."""
    return [int(i) for i in re.findall(r'<tr data-payment-id="(\d+)"', html)]


def fresh(payment: Payment) -> Payment:
    db.session.expire_all()
    return db.session.get(Payment, payment.id)


@pytest.fixture()
def annual(staff):
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "150", "currency": "ZMW",
                                              "duration_months": "12"})
    db.session.commit()
    return tier


def carded(make_member, unit, **fields):
    """A member of ``unit`` with a card running out in 30 days (inside the renewal window)."""
    member = make_member(unit, **fields)
    card = cards.issue_card(None, member)
    card.expires_on = date.today() + timedelta(days=30)
    return member, card


def aged(payment: Payment, minutes: int) -> Payment:
    """Started ``minutes`` ago (the list leaves out payments younger than PENDING_AFTER)."""
    payment.created_at = utcnow() - timedelta(minutes=minutes)
    db.session.flush()
    return payment


def offline_pending(member, tier, session_id: str, minutes: int) -> Payment:
    """A pending online payment made while no stand-in runs (its session id is never asked about)."""
    payment = dues.new_payment(member, tier, "stripe")
    payment.stripe_session_id = session_id
    return aged(payment, minutes)


def held(staff, member, tier, minutes: int) -> Payment:
    """A cash payment for a suspended member: completed, held for staff."""
    member_service.change_status(None, member, "suspended", "Under review")
    payment = dues.record_manual(staff["admin"], member, {"tier_id": tier.id, "method": "cash"})
    assert payment.fulfilled_at is None and "suspended" in payment.hold_reason
    return aged(payment, minutes)


def post(client, url: str, **data):
    token = csrf_token_from(client.get(PAGE).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


@pytest.fixture()
def coordinator(client, staff):
    login(client, "coord@test.org")
    return client


@pytest.fixture()
def world(staff, tree, make_member, annual):
    """In W1: an old pending online payment, a young one, a held one, a fulfilled one; in W4: one of each wait."""
    w1, _ = carded(make_member, tree["w1"], first_name="Ada", last_name="Pending")
    w1_young, _ = carded(make_member, tree["w1"], first_name="Young", last_name="Payer")
    w1_held, _ = carded(make_member, tree["w1"], first_name="Held", last_name="Banda")
    w1_done, _ = carded(make_member, tree["w1"], first_name="Done", last_name="Phiri")
    w4, _ = carded(make_member, tree["w4"], first_name="Far", last_name="Pending")
    w4_held, _ = carded(make_member, tree["w4"], first_name="Far", last_name="Held")
    out = {
        "w1_pending": offline_pending(w1, annual, "cs_test_w1_old", 90),
        "w1_young": offline_pending(w1_young, annual, "cs_test_w1_young", 2),
        "w1_held": held(staff, w1_held, annual, 60),
        "w4_pending": offline_pending(w4, annual, "cs_test_w4_old", 120),
        "w4_held": held(staff, w4_held, annual, 30),
    }
    out["w1_done"] = aged(dues.record_manual(staff["admin"], w1_done, {"tier_id": annual.id, "method": "cash"}), 200)
    db.session.commit()
    return out


# --- the list -----------------------------------------------------------------------------


def test_a_coordinator_sees_their_wards_waiting_payments_oldest_first(coordinator, world):
    html = text(coordinator.get(PAGE))
    assert listed(html) == [world["w1_pending"].id, world["w1_held"].id]
    assert "2 payments waiting" in html
    assert "suspended: staff must decide" in html  # the hold reason, on the held row
    assert "Far Pending" not in html and "Far Held" not in html and "Young Payer" not in html


def test_an_admin_sees_every_ward_and_users_without_payments_read_get_403(app, client, world, make_user, tree):
    login(client, "admin@test.org")
    assert listed(text(client.get(PAGE))) == [world["w4_pending"].id, world["w1_pending"].id,
                                              world["w1_held"].id, world["w4_held"].id]
    rbac.create_role(None, "members_reader", "", ["members.read"])
    make_user("reader@test.org", "members_reader", tree["w1"])
    db.session.commit()
    reader = app.test_client()
    login(reader, "reader@test.org")
    assert reader.get(PAGE).status_code == 403


def test_without_stripe_the_check_button_is_hidden_and_the_page_says_why(coordinator, world):
    html = text(coordinator.get(PAGE))
    assert 'id="stripe-off"' in html and "no Stripe key" in html
    assert f'id="check-{world["w1_pending"].id}"' not in html
    assert f'id="renew-{world["w1_held"].id}"' in html  # renewing a held payment needs no Stripe


def test_nothing_waiting_shows_the_empty_state(coordinator, staff):
    html = text(coordinator.get(PAGE))
    assert 'id="nothing-awaiting"' in html and listed(html) == []


# --- checking with Stripe -----------------------------------------------------------------


@pytest.fixture()
def checkout(stripe_standin, tree, make_member, annual):
    """A W1 member's online payment, started at the stand-in 20 minutes ago and still pending here."""
    member, card = carded(make_member, tree["w1"], first_name="Online", last_name="Payer", email="op@example.org")
    payment, _url = online.start_checkout(member, annual, success_url="http://muster.test/done?s={CHECKOUT_SESSION_ID}",
                                          cancel_url="http://muster.test/dues")
    aged(payment, 20)
    db.session.commit()
    return {"payment": payment, "card": card, "expiry": card.expires_on, "member": member}


def renewals(card: MembershipCard) -> int:
    return db.session.scalar(select(func.count()).select_from(CardTransaction).where(
        CardTransaction.card_id == card.id, CardTransaction.type == "renewed"))


def test_check_completes_a_paid_session_exactly_once_and_renews_the_card(coordinator, stripe_standin, checkout):
    payment, card = checkout["payment"], checkout["card"]
    html = text(coordinator.get(PAGE))
    assert listed(html) == [payment.id] and f'id="check-{payment.id}"' in html and 'id="stripe-off"' not in html
    stripe_standin.pay(payment.stripe_session_id)  # the member paid; the webhook never came

    response = post(coordinator, f"{PAGE}{payment.id}/check")
    assert response.status_code == 302 and response.headers["Location"].endswith(PAGE)
    until = add_months(checkout["expiry"], 12)
    payment = fresh(payment)
    assert payment.status == "completed" and payment.fulfilled_at is not None and payment.extended_to == until
    assert db.session.get(MembershipCard, card.id).expires_on == until and renewals(card) == 1
    html = text(coordinator.get(PAGE))
    assert f"renewed until {until:%d %B %Y}" in html and f"receipt {payment.receipt_number}" in html
    assert listed(html) == []

    # Pressed again (a second tab), then the late webhook: the card moves no further.
    post(coordinator, f"{PAGE}{payment.id}/check")
    assert "had already renewed" in text(coordinator.get(PAGE))
    body = stripe_standin.last_event("checkout.session.completed")
    assert coordinator.post("/webhooks/stripe", data=body, content_type="application/json",
                            headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)}).status_code == 200
    assert db.session.get(MembershipCard, card.id).expires_on == until and renewals(card) == 1
    assert len(stripe_standin.requests_to("GET", f"/v1/checkout/sessions/{payment.stripe_session_id}")) >= 2
    assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "payment.recheck", AuditEntry.object_id == str(payment.id))) == 2


def test_check_of_an_unpaid_session_says_it_is_still_pending(coordinator, stripe_standin, checkout):
    payment = checkout["payment"]
    post(coordinator, f"{PAGE}{payment.id}/check")
    html = text(coordinator.get(PAGE))
    assert "Still pending: Stripe has not received" in html and listed(html) == [payment.id]
    assert fresh(payment).status == "pending"


def test_an_expired_session_is_closed_as_cancelled(coordinator, stripe_standin, checkout):
    payment = checkout["payment"]
    stripe_standin.expire(payment.stripe_session_id)
    post(coordinator, f"{PAGE}{payment.id}/check")
    assert "cancelled: the Stripe checkout expired unpaid" in text(coordinator.get(PAGE))
    assert fresh(payment).status == "cancelled"


def test_stripe_unreachable_changes_nothing_and_says_try_later(coordinator, stripe_standin, checkout):
    payment = checkout["payment"]
    stripe_standin.pay(payment.stripe_session_id)
    stripe_standin.fail_next(500, times=5)  # more than the library's retries
    post(coordinator, f"{PAGE}{payment.id}/check")
    html = text(coordinator.get(PAGE))
    assert "Stripe could not be reached: nothing changed" in html and listed(html) == [payment.id]
    assert fresh(payment).status == "pending"
    assert db.session.get(MembershipCard, checkout["card"].id).expires_on == checkout["expiry"]


def test_a_paid_session_for_a_member_suspended_meanwhile_is_completed_but_held(coordinator, stripe_standin,
                                                                                checkout):
    payment = checkout["payment"]
    member_service.change_status(None, checkout["member"], "suspended", "Under review")
    db.session.commit()
    stripe_standin.pay(payment.stripe_session_id)
    post(coordinator, f"{PAGE}{payment.id}/check")
    html = text(coordinator.get(PAGE))
    assert "Completed but still held:" in html and "suspended" in html
    assert listed(html) == [payment.id] and f'id="renew-{payment.id}"' in html


# --- renewing a held payment -------------------------------------------------------------


def test_renew_now_says_still_held_then_renews_once_the_reason_is_dealt_with(coordinator, world):
    payment = world["w1_held"]
    card = db.session.scalars(select(MembershipCard).where(MembershipCard.member_id == payment.member_id)).one()
    before = card.expires_on
    post(coordinator, f"{PAGE}{payment.id}/renew")
    html = text(coordinator.get(PAGE))
    assert "Completed but still held:" in html and "is suspended" in html
    assert fresh(payment).fulfilled_at is None

    member_service.change_status(None, payment.member, "active", "Cleared")
    db.session.commit()
    post(coordinator, f"{PAGE}{payment.id}/renew")
    until = add_months(before, 12)
    payment = fresh(payment)
    assert payment.fulfilled_at is not None and payment.hold_reason == "" and payment.extended_to == until
    html = text(coordinator.get(PAGE))
    assert f"renewed until {until:%d %B %Y}" in html and payment.id not in listed(html)
    post(coordinator, f"{PAGE}{payment.id}/renew")
    assert "had already renewed" in text(coordinator.get(PAGE))
    assert db.session.get(MembershipCard, card.id).expires_on == until


# --- who may press the buttons -----------------------------------------------------------


def test_out_of_area_is_404_without_the_right_403_without_the_token_400(app, coordinator, world, make_user, tree):
    for key, action in (("w4_pending", "check"), ("w4_held", "renew")):
        assert post(coordinator, f"{PAGE}{world[key].id}/{action}").status_code == 404
    assert post(coordinator, f"{PAGE}999999/renew").status_code == 404
    assert coordinator.get(f"{PAGE}{world['w1_held'].id}/renew").status_code == 405
    assert coordinator.post(f"{PAGE}{world['w1_held'].id}/renew").status_code == 400
    assert fresh(world["w4_held"]).fulfilled_at is None

    rbac.create_role(None, "payments_reader", "", ["payments.read"])
    make_user("payreader@test.org", "payments_reader", tree["w1"])
    db.session.commit()
    client = app.test_client()
    login(client, "payreader@test.org")
    html = text(client.get(PAGE))
    assert world["w1_held"].id in listed(html) and 'id="renew-' not in html  # sees, cannot act
    assert post(client, f"{PAGE}{world['w1_held'].id}/renew").status_code == 403
    assert post(client, f"{PAGE}{world['w4_held'].id}/renew").status_code == 404

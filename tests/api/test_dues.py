"""Dues through /api/v1 (issue 14): tiers, a manual payment, the scoped lists, a member's own payments."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import MembershipCard, Payment
from app.services.cards import add_months
from app.services.dues import tiers
from tests.api.conftest import ApiClient, assert_error
from tests.stripe_standin import standin_fixture

stripe_standin = standin_fixture()


@pytest.fixture()
def annual(staff):
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120", "currency": "ZMW",
                                              "duration_months": "12"})
    tiers.create_tier(staff["admin"], {"name": "Old", "price": "50", "currency": "ZMW", "duration_months": "6",
                                       "active": False})
    db.session.commit()
    return tier


def test_tiers_on_offer_are_listed_for_any_signed_in_caller(as_member, annual, api):
    body = as_member.get("/tiers").get_json()
    assert [(t["name"], t["price_minor"], t["currency"], t["duration_months"]) for t in body["items"]] == [
        ("Annual", 12000, "ZMW", 12)]
    assert api.get("/tiers").status_code == 401


def test_a_coordinator_records_a_cash_payment_in_their_ward(as_coord, annual, tree, make_member):
    member = make_member(tree["w1"])
    db.session.commit()
    response = as_coord.post("/payments", json={"member_id": member.id, "tier_id": annual.id, "method": "cash"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["status"], body["amount"], body["method"]) == ("completed", "120.00 ZMW", "cash")
    assert body["receipt_number"].startswith("R-") and body["hold_reason"] == ""
    card = db.session.scalar(select(MembershipCard).where(MembershipCard.member_id == member.id))
    assert body["extended_to"] == card.expires_on.isoformat()
    assert card.expires_on == add_months(db.session.get(Payment, body["id"]).fulfilled_at.date(), 12)


def test_outside_the_ward_or_without_the_right_nothing_is_recorded(as_coord, as_member, annual, tree, make_member):
    elsewhere = make_member(tree["w4"])
    db.session.commit()
    assert_error(as_coord.post("/payments", json={"member_id": elsewhere.id, "tier_id": annual.id,
                                                  "method": "cash"}), 422, "member_id")
    assert_error(as_member.post("/payments", json={"member_id": elsewhere.id, "tier_id": annual.id,
                                                   "method": "cash"}), 403)
    assert db.session.scalar(select(Payment.id)) is None


def test_bad_payments_name_their_fields(as_admin, annual, tree, make_member):
    member = make_member(tree["w1"])
    db.session.commit()
    assert_error(as_admin.post("/payments", json={"member_id": member.id, "tier_id": annual.id,
                                                  "method": "cheque"}), 422, "method")
    body = assert_error(as_admin.post("/payments", json={"member_id": member.id, "tier_id": annual.id,
                                                         "method": "mobile_money"}), 422)
    assert "reference" in str(body["details"])
    assert_error(as_admin.post("/payments", json={"member_id": member.id, "tier_id": annual.id, "method": "cash",
                                                  "amount_minor": 0}), 422, "amount_minor")


def test_lists_are_scoped_and_a_member_reads_their_own(api, as_coord, as_admin, annual, tree, make_member, staff,
                                                       make_user):
    mine = make_member(tree["w1"])
    make_user("payer@test.org", "member", member=mine)
    theirs = make_member(tree["w4"])
    db.session.commit()
    assert as_admin.post("/payments", json={"member_id": mine.id, "tier_id": annual.id,
                                            "method": "cash"}).status_code == 201
    assert as_admin.post("/payments", json={"member_id": theirs.id, "tier_id": annual.id, "method": "bank_transfer",
                                            "reference": "TRX-9"}).status_code == 201
    assert as_admin.get("/payments").get_json()["total"] == 2
    coordinator_view = as_coord.get("/payments").get_json()
    assert [p["member"]["id"] for p in coordinator_view["items"]] == [mine.id]
    assert as_coord.get("/payments?method=bank_transfer").get_json()["total"] == 0
    assert_error(as_coord.get(f"/members/{theirs.id}/payments"), 404)
    assert as_coord.get(f"/members/{mine.id}/payments").get_json()["total"] == 1
    payer = ApiClient(api.client).login("payer@test.org")
    own = payer.get("/me/payments").get_json()
    assert [p["member"]["id"] for p in own["items"]] == [mine.id] and own["items"][0]["receipt_number"]


def test_receipts_for_staff_in_scope_and_the_payer(as_coord, annual, tree, make_member, staff):
    from app.services import dues

    here = dues.record_manual(staff["admin"], make_member(tree["w1"]), {"tier_id": annual.id, "method": "cash"})
    there = dues.record_manual(staff["admin"], make_member(tree["w4"]), {"tier_id": annual.id, "method": "cash"})
    pending = dues.new_payment(make_member(tree["w1"]), annual, "stripe")
    db.session.commit()
    response = as_coord.get(f"/payments/{here.id}/receipt")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert here.receipt_number in response.headers["Content-Disposition"]
    assert_error(as_coord.get(f"/payments/{there.id}/receipt"), 404)
    assert_error(as_coord.get(f"/payments/{pending.id}/receipt"), 409)



@pytest.fixture()
def payer(api, tree, make_member, make_user):
    """A member whose card runs out next month (their renewal window is open), signed in to the API."""
    from datetime import date

    from app.services import cards

    member = make_member(tree["w1"], email="payer@example.org")
    make_user("payer@test.org", "member", member=member)
    card = cards.issue_card(None, member, today=add_months(date.today(), -11))
    db.session.commit()
    return {"api": ApiClient(api.client).login("payer@test.org"), "member": member, "expiry": card.expires_on}


def test_without_stripe_checkout_is_refused_and_nothing_written(payer, annual):
    body = assert_error(payer["api"].post("/me/payments/checkout", json={"tier_id": annual.id}), 409)
    assert "not available" in body["error"]
    assert db.session.scalar(select(Payment.id)) is None


def test_a_member_starts_paying_online_as_the_portal_does(payer, annual, stripe_standin, app):
    """POST /me/payments/checkout: the pending payment and Stripe's URL; paying there renews once."""
    from app.services.dues import online

    client = payer["api"]
    assert_error(client.post("/me/payments/checkout", json={"tier_id": 999999}), 422, "tier_id")
    assert_error(client.post("/me/payments/checkout", json={}), 422, "tier_id")
    response = client.post("/me/payments/checkout", json={"tier_id": annual.id})
    assert response.status_code == 201, response.get_json()
    started = response.get_json()
    assert started["checkout_url"].startswith(stripe_standin.base_url)
    payment = started["payment"]
    assert (payment["status"], payment["method"], payment["amount"]) == ("pending", "stripe", "120.00 ZMW")
    [sent] = stripe_standin.requests_to("POST", "/v1/checkout/sessions")
    assert sent.form["client_reference_id"] == str(payment["id"])
    assert sent.form["success_url"] == f"{app.config['PUBLIC_URL']}/dues/done?session_id={{CHECKOUT_SESSION_ID}}"

    session_id = db.session.get(Payment, payment["id"]).stripe_session_id
    stripe_standin.pay(session_id)
    online.follow_session(session_id)  # as the return page or the webhook does
    db.session.commit()
    own = client.get("/me/payments").get_json()["items"][0]
    assert own["status"] == "completed" and own["receipt_number"]
    assert own["extended_from"] == payer["expiry"].isoformat()
    assert own["extended_to"] == add_months(payer["expiry"], 12).isoformat()
    # Renewed for a year: the window is closed again, and the answer says from when it opens.
    body = assert_error(client.post("/me/payments/checkout", json={"tier_id": annual.id}), 409)
    assert "You can renew from" in body["error"]
    assert len(stripe_standin.requests_to("POST", "/v1/checkout/sessions")) == 1


def test_when_stripe_is_down_checkout_answers_502_and_keeps_no_payment(payer, annual, stripe_standin):
    stripe_standin.fail_next(500, times=5)
    body = assert_error(payer["api"].post("/me/payments/checkout", json={"tier_id": annual.id}), 502)
    assert body["error"]
    assert db.session.scalar(select(Payment.id)) is None


def test_checkout_needs_a_membership_record(as_admin, annual, api):
    assert_error(as_admin.post("/me/payments/checkout", json={"tier_id": annual.id}), 404)
    assert api.post("/me/payments/checkout", json={"tier_id": annual.id}).status_code == 401

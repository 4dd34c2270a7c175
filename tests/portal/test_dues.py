"""``/dues`` as a member meets it: tiers, paying online at the local Stripe stand-in, the return page.

The return page never trusts the redirect: before Stripe says "paid" it
waits; after, it shows the receipt, whether or not the webhook came first.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import MembershipCard, Payment
from app.services import cards
from app.services.cards import add_months
from app.services.dues import tiers
from tests.portal.conftest import post, text
from tests.stripe_standin import standin_fixture

stripe_standin = standin_fixture()


@pytest.fixture()
def annual(staff):
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "150", "currency": "ZMW",
                                              "duration_months": "12"})
    db.session.commit()
    return tier


def test_without_stripe_the_page_says_to_pay_a_treasurer(portal, annual):
    page = text(portal.get("/dues"))
    assert "Annual" in page and "150.00 ZMW" in page
    assert 'id="offline-note"' in page and "Pay online" not in page and "Renew online" not in page
    assert "No payments yet" in page


def due_card(member, days_left: int):
    """A card of ``member`` (12 months) that runs out in ``days_left`` days (negative: that long ago)."""
    card = cards.issue_card(None, member, today=add_months(date.today() + timedelta(days=days_left), -12))
    db.session.commit()
    return card


def test_renew_is_offered_only_inside_the_renewal_window(portal, member, annual, stripe_standin, app):
    card = due_card(member, 61)
    page = text(portal.get("/dues"))
    opens = card.expires_on - timedelta(days=60)
    assert 'data-open="no"' in page and "Renew online" not in page
    assert f"valid until {card.expires_on:%d %B %Y}" in page and f"renew from {opens:%d %B %Y}" in page
    response = post(portal, "/dues/pay", {"tier_id": annual.id})  # a forged POST is refused the same way
    assert response.status_code == 302 and db.session.scalar(select(Payment.id)) is None
    assert f"renew from {opens:%d %B %Y}" in text(portal.get("/dues"))

    app.config["RENEWAL_WINDOW_DAYS"] = 61
    page = text(portal.get("/dues"))
    assert 'data-open="yes"' in page and "Renew online" in page


def test_renew_stays_offered_through_grace_and_after_a_membership_lapsed(portal, member, annual, stripe_standin):
    from app.services import members as member_service

    due_card(member, -10)  # in grace
    assert "Renew online" in text(portal.get("/dues")) and "expired on" in text(portal.get("/dues"))
    member_service.change_status(None, member, "lapsed", "Past grace")
    db.session.commit()
    assert "Renew online" in text(portal.get("/dues"))


def test_a_lifetime_membership_has_nothing_to_renew(portal, member, annual, stripe_standin, staff):
    life = tiers.create_tier(staff["admin"], {"name": "Life", "price": "900", "currency": "ZMW",
                                              "duration_months": "", "card_type": "lifetime"})
    cards.issue_card(None, member, life.card_type)
    db.session.commit()
    page = text(portal.get("/dues"))
    assert "for life: there is nothing to renew" in page and "Renew online" not in page and "Pay online" not in page


def test_paying_online_goes_to_stripe_and_the_return_page_rereads_the_session(portal, member, annual,
                                                                              stripe_standin, app):
    card = due_card(member, 20)
    before = card.expires_on
    assert "Renew online" in text(portal.get("/dues"))
    response = post(portal, "/dues/pay", {"tier_id": annual.id})
    assert response.status_code == 303 and response.headers["Location"].startswith(stripe_standin.base_url)
    payment = db.session.scalar(select(Payment).where(Payment.member_id == member.id))
    [sent] = stripe_standin.requests_to("POST", "/v1/checkout/sessions")
    assert sent.form["success_url"] == f"{app.config['PUBLIC_URL']}/dues/done?session_id={{CHECKOUT_SESSION_ID}}"

    waiting = portal.get(f"/dues/done?session_id={payment.stripe_session_id}")  # back before paying: no trust
    assert 'data-status="pending"' in text(waiting) and 'id="waiting"' in text(waiting)
    stripe_standin.pay(payment.stripe_session_id)
    done = text(portal.get(f"/dues/done?session_id={payment.stripe_session_id}"))
    receipt = re.search(r'id="receipt-number">([^<]+)<', done).group(1)
    db.session.expire_all()
    card = db.session.get(MembershipCard, card.id)
    assert receipt.startswith("R-") and card.expires_on > before
    assert receipt in text(portal.get("/dues"))


def test_someone_elses_session_is_not_found(portal, other, annual, stripe_standin):
    from app.services.dues import online

    payment, _url = online.start_checkout(other, annual, success_url="http://x/{CHECKOUT_SESSION_ID}",
                                          cancel_url="http://x")
    db.session.commit()
    assert portal.get(f"/dues/done?session_id={payment.stripe_session_id}").status_code == 404
    assert portal.get("/dues/done").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client):
    for path in ("/dues", "/dues/done?session_id=cs_test_1"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_member_downloads_their_own_receipts_only(portal, member, other, annual, staff):
    from app.services import dues

    mine = dues.record_manual(staff["admin"], member, {"tier_id": annual.id, "method": "cash"})
    theirs = dues.record_manual(staff["admin"], other, {"tier_id": annual.id, "method": "cash"})
    db.session.commit()
    assert f"/dues/{mine.id}/receipt" in text(portal.get("/dues"))
    response = portal.get(f"/dues/{mine.id}/receipt")
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    assert mine.receipt_number in response.headers["Content-Disposition"]
    assert portal.get(f"/dues/{theirs.id}/receipt").status_code == 404


def test_the_pay_forms_may_lead_to_stripes_page_and_no_further(portal, member, annual, stripe_standin, app):
    """Browsers apply form-action to a form's redirect: the dues page names Stripe's origin, other pages don't."""
    due_card(member, 20)
    policy = portal.get("/dues").headers["Content-Security-Policy"]
    [form_action] = [d.strip() for d in policy.split(";") if d.strip().startswith("form-action")]
    assert form_action == f"form-action 'self' {stripe_standin.base_url}"
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "form-action 'self';" in portal.get("/card").headers["Content-Security-Policy"]
    app.config["STRIPE_API_BASE"] = None
    assert "form-action 'self' https://checkout.stripe.com" in portal.get("/dues").headers["Content-Security-Policy"]

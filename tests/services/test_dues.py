"""Dues (app/services/dues): tiers, manual payments, and ``fulfil``: the membership extended exactly once.

What is asserted is what a member and a treasurer would see afterwards: the
card's valid-until, the member's status, the receipt number, the payment's
state and why it is held.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, CardTransaction, MembershipCard, MemberStatusChange, Payment
from app.services import cards, dues
from app.services import members as member_service
from app.services.cards import add_months
from app.services.dues import tiers
from app.services.errors import Forbidden, NotFound, ServiceError, ValidationErrors

TODAY = date(2027, 5, 10)


@pytest.fixture()
def annual(staff):
    return tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120", "currency": "zmw",
                                              "duration_months": "12", "card_type": "standard"})


@pytest.fixture()
def lifetime(staff):
    return tiers.create_tier(staff["admin"], {"name": "Life", "price": "1,500.00", "currency": "ZMW",
                                              "duration_months": "", "card_type": "lifetime"})


def cash(actor, member, tier, **extra):
    return dues.record_manual(actor, member, {"tier_id": tier.id, "method": "cash", **extra}, today=TODAY)


# --- tiers ---------------------------------------------------------------------------------


def test_a_tier_keeps_its_price_in_minor_units_and_reports_every_bad_field_at_once(staff, annual):
    assert (annual.price_minor, annual.currency, annual.duration_months) == (12000, "ZMW", 12)
    with pytest.raises(ValidationErrors) as caught:
        tiers.create_tier(staff["admin"], {"name": "annual", "price": "twelve", "currency": "kwacha",
                                           "duration_months": "0", "card_type": "gold"})
    assert set(caught.value.errors) == {"name", "price", "currency", "duration_months", "card_type"}
    assert caught.value.errors["name"] == "Another tier has this name."


def test_only_organisation_wide_admins_manage_tiers(staff):
    with pytest.raises(Forbidden):
        tiers.create_tier(staff["coordinator"], {"name": "X", "price": "1", "currency": "ZMW",
                                                 "duration_months": "1"})


def test_a_lifetime_tier_carries_a_lifetime_card(staff):
    with pytest.raises(ValidationErrors) as caught:
        tiers.create_tier(staff["admin"], {"name": "Life", "price": "10", "currency": "ZMW",
                                           "duration_months": "", "card_type": "standard"})
    assert "card_type" in caught.value.errors


# --- fulfil: the extension ---------------------------------------------------------------------


def test_a_member_without_a_card_gets_one_valid_for_the_tiers_duration(staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    payment = cash(staff["coordinator"], member, annual)
    card = db.session.get(MembershipCard, payment.card_id)
    assert (payment.status, card.status, card.expires_on) == ("completed", "active", add_months(TODAY, 12))
    assert (payment.extended_from, payment.extended_to) == (None, card.expires_on)
    assert payment.receipt_number == f"R-{TODAY.year}-000001"
    assert payment.recorded_by_id == staff["coordinator"].id


def test_an_active_card_is_extended_from_its_expiry_and_an_expired_one_from_today(staff, tree, make_member, annual):
    ahead = make_member(tree["w1"])
    card = cards.issue_card(None, ahead)
    card.expires_on = TODAY + timedelta(days=40)
    late = make_member(tree["w1"])
    old = cards.issue_card(None, late)
    old.expires_on = TODAY - timedelta(days=200)  # past expiry and grace
    db.session.flush()
    cash(staff["admin"], ahead, annual)
    cash(staff["admin"], late, annual)
    assert card.expires_on == add_months(TODAY + timedelta(days=40), 12)
    assert old.expires_on == add_months(TODAY, 12) and old.status == "active"
    assert db.session.scalar(select(func.count()).select_from(MembershipCard).where(
        MembershipCard.member_id == late.id)) == 1  # renewed, not a second card


def test_fulfil_twice_extends_once(staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    payment = cash(staff["admin"], member, annual)
    until = payment.extended_to
    assert dues.fulfil(payment, today=TODAY) is payment
    assert dues.complete(payment, today=TODAY) is payment
    card = db.session.get(MembershipCard, payment.card_id)
    assert card.expires_on == until and payment.receipt_number == f"R-{TODAY.year}-000001"
    renewals = db.session.scalar(select(func.count()).select_from(CardTransaction).where(
        CardTransaction.card_id == card.id))
    assert renewals == 1  # issued once, nothing more


def test_an_applicant_or_lapsed_member_who_pays_becomes_active(staff, tree, make_member, annual):
    applicant = make_member(tree["w1"], status="pending")
    cash(staff["admin"], applicant, annual)
    assert applicant.status == "active"
    latest = db.session.scalars(select(MemberStatusChange).where(MemberStatusChange.member_id == applicant.id)
                                .order_by(MemberStatusChange.id.desc())).first()
    assert (latest.to_status, latest.reason) == ("active", f"Dues paid (receipt R-{TODAY.year}-000001)")
    lapsed = make_member(tree["w1"])
    member_service.change_status(None, lapsed, "lapsed", "Did not renew")
    payment = cash(staff["admin"], lapsed, annual)
    assert lapsed.status == "active" and db.session.get(MembershipCard, payment.card_id).status == "active"


@pytest.mark.parametrize("status", ["suspended", "expelled"])
def test_a_payment_for_a_suspended_or_expelled_member_is_held_for_staff(staff, tree, make_member, annual, status):
    member = make_member(tree["w1"])
    member_service.change_status(None, member, status, "Test")
    payment = cash(staff["admin"], member, annual)
    assert payment.status == "completed" and payment.fulfilled_at is None and payment.receipt_number is None
    assert f"is {status}" in payment.hold_reason
    assert member.status == status
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "payment.held")) is not None


def test_a_lifetime_tier_makes_the_card_a_lifetime_card(staff, tree, make_member, lifetime):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    payment = cash(staff["admin"], member, lifetime)
    assert (card.card_type, card.expires_on, payment.extended_to) == ("lifetime", None, None)


def test_receipt_numbers_are_sequential_and_unique(staff, tree, make_member, annual):
    numbers = [cash(staff["admin"], make_member(tree["w1"]), annual).receipt_number for _ in range(3)]
    assert numbers == [f"R-{TODAY.year}-00000{n}" for n in (1, 2, 3)]


def test_a_pending_payment_cannot_be_fulfilled(staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    payment = dues.new_payment(member, annual, "stripe")
    with pytest.raises(ServiceError) as caught:
        dues.fulfil(payment, today=TODAY)
    assert caught.value.status == 409 and payment.fulfilled_at is None


# --- manual payments ---------------------------------------------------------------------------


def test_a_manual_payment_reports_every_bad_field_at_once_and_writes_nothing(staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    with pytest.raises(ValidationErrors) as caught:
        dues.record_manual(staff["admin"], member, {"tier_id": "x", "method": "cheque", "reference": "r" * 200,
                                                    "amount_minor": "-5"})
    assert set(caught.value.errors) == {"tier_id", "method", "reference", "amount_minor"}
    with pytest.raises(ValidationErrors) as caught:
        dues.record_manual(staff["admin"], member, {"tier_id": annual.id, "method": "mobile_money"})
    assert set(caught.value.errors) == {"reference"}
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_a_coordinator_records_payments_in_their_ward_only(staff, tree, make_member, annual):
    theirs = make_member(tree["w1"])
    elsewhere = make_member(tree["w4"])
    payment = dues.record_manual(staff["coordinator"], theirs, {"tier_id": annual.id, "method": "bank_transfer",
                                                                "reference": "TRX-1"}, today=TODAY)
    assert payment.unit_id == tree["w1"].id and payment.reference == "TRX-1"
    with pytest.raises(NotFound):
        dues.record_manual(staff["coordinator"], elsewhere, {"tier_id": annual.id, "method": "cash"})
    with pytest.raises((Forbidden, NotFound)):
        dues.record_manual(staff["member"], theirs, {"tier_id": annual.id, "method": "cash"})


# --- refunds -----------------------------------------------------------------------------------


def test_a_refund_after_a_renewal_puts_the_expiry_back(staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    card.expires_on = TODAY + timedelta(days=30)
    db.session.flush()
    payment = cash(staff["admin"], member, annual)
    assert card.expires_on == add_months(TODAY + timedelta(days=30), 12)
    dues.refund(staff["admin"], payment, "Paid twice by mistake")
    assert (payment.status, payment.hold_reason) == ("refunded", "")
    assert card.expires_on == TODAY + timedelta(days=30)
    assert dues.refund(staff["admin"], payment, "again") is payment  # once
    assert card.expires_on == TODAY + timedelta(days=30)


def test_a_refund_that_a_later_payment_builds_on_is_flagged_for_staff(staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    cards.issue_card(None, member)
    first = cash(staff["admin"], member, annual)
    second = cash(staff["admin"], member, annual)
    until = db.session.get(MembershipCard, second.card_id).expires_on
    dues.refund(staff["admin"], first, "Cheque bounced")
    assert first.status == "refunded" and second.receipt_number in first.hold_reason
    assert db.session.get(MembershipCard, second.card_id).expires_on == until  # nothing undone behind staff's back


def test_refunds_need_the_right_and_a_reason(staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    payment = cash(staff["coordinator"], member, annual)
    with pytest.raises(Forbidden):
        dues.refund(staff["coordinator"], payment, "No")
    with pytest.raises(ServiceError) as caught:
        dues.refund(staff["admin"], payment, " ")
    assert caught.value.field == "reason" and payment.status == "completed"

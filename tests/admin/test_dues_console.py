"""Console "Dues" (issue 14): payments list, recording a manual payment, refunds, tiers.

What a treasurer and an admin see: the coordinator of W1 records a cash
payment for a member of W1 (the card's valid-until moves on, a receipt number
is flashed) and is told there is no such member in their area for W4's
member (nothing written); they may neither refund (403) nor manage tiers
(403). An admin refunds with a reason (the card's expiry goes back) and
creates and edits tiers. Bad inputs show every message at once. The list is
scoped and its totals equal sums computed here from the rows themselves.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import MembershipCard, MembershipTier, Payment
from app.services import cards, dues
from app.services import members as member_service
from app.services.cards import add_months
from app.services.dues import tiers
from tests.conftest import csrf_token_from, login

LIST, RECORD, TIERS = "/admin/dues/payments/", "/admin/dues/record/", "/admin/dues/tiers/"


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def listed(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'<tr data-payment-id="(\d+)">', html)}


def totals(html: str) -> dict[str, int]:
    return {c: int(m) for c, m in re.findall(r'data-total="([A-Z]{3})" data-minor="(\d+)"', html)}


def payment_count() -> int:
    return db.session.scalar(select(func.count(Payment.id)))


def token(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return csrf_token_from(response.get_data(as_text=True))


@pytest.fixture()
def annual(staff):
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120.50", "currency": "ZMW",
                                              "duration_months": "12", "card_type": "standard"})
    db.session.commit()
    return tier


@pytest.fixture()
def carded(tree, make_member):
    """A member of W1 and one of W4, each with a card valid for 30 more days."""
    out = {}
    for key, ward in (("w1", "w1"), ("w4", "w4")):
        member = make_member(tree[ward], first_name=f"Ada{key}", last_name="Banda")
        card = cards.issue_card(None, member)
        card.expires_on = date.today() + timedelta(days=30)
        out[key], out[key + "_card"] = member, card
    db.session.commit()
    return out


@pytest.fixture()
def coordinator(client, staff):
    login(client, "coord@test.org")
    return client


@pytest.fixture()
def admin(client, staff):
    login(client, "admin@test.org")
    return client


def record(client, **fields):
    data = {"membership_number": "", "tier_id": "", "method": "", "reference": "", "amount": "", **fields}
    return client.post(RECORD, data={**data, "csrf_token": token(client, RECORD)})


# --- recording a payment ---------------------------------------------------------------


def test_a_coordinator_records_a_cash_payment_for_their_ward(coordinator, carded, annual):
    member, card = carded["w1"], carded["w1_card"]
    before = card.expires_on
    response = record(coordinator, membership_number=member.membership_number, tier_id=str(annual.id),
                      method="cash")
    assert response.status_code == 302 and response.headers["Location"].endswith(LIST)
    payment = db.session.scalars(select(Payment)).one()
    db.session.refresh(card)
    assert card.expires_on == add_months(before, 12) == payment.extended_to
    assert (payment.status, payment.method, payment.amount_minor, payment.currency) == ("completed", "cash",
                                                                                         12050, "ZMW")
    assert re.fullmatch(r"R-\d{4}-\d{6}", payment.receipt_number)
    html = text(coordinator.get(LIST))
    assert f"receipt {payment.receipt_number}" in html
    assert f"valid until {card.expires_on:%d %B %Y}" in html
    assert listed(html) == {payment.id} and f'href="/admin/member/details/?id={member.id}' in html


def test_another_wards_member_is_no_such_member_and_nothing_is_written(coordinator, carded, annual):
    before = carded["w4_card"].expires_on
    response = record(coordinator, membership_number=carded["w4"].membership_number, tier_id=str(annual.id),
                      method="cash")
    assert response.status_code == 422
    assert "There is no such member in your area" in text(response)
    assert payment_count() == 0
    assert db.session.get(MembershipCard, carded["w4_card"].id).expires_on == before


def test_a_deleted_member_is_no_such_member(coordinator, carded, annual):
    member_service.delete_member(None, carded["w1"])
    db.session.commit()
    response = record(coordinator, membership_number=carded["w1"].membership_number, tier_id=str(annual.id),
                      method="cash")
    assert response.status_code == 422 and "There is no such member in your area" in text(response)
    assert payment_count() == 0


def test_bad_inputs_show_every_message_at_once_and_write_nothing(coordinator, carded, annual):
    # A member found: the service's messages, every one (and the amount the form could not read).
    response = record(coordinator, membership_number=carded["w1"].membership_number, tier_id="999999",
                      method="bank_transfer", reference="", amount="12,5x")
    html = text(response)
    assert response.status_code == 422
    for name, message in (("tier_id", "Choose a membership tier."),
                          ("reference", "Give the transaction reference"),
                          ("amount", "Give the amount paid as a number")):
        assert re.search(rf'data-error="{name}">{re.escape(message)}', html), name
    # No member: what the form can read itself, every field at once.
    response = record(coordinator, membership_number="", tier_id="", method="cheque", amount="abc")
    html = text(response)
    assert response.status_code == 422
    for name in ("membership_number", "tier_id", "method", "amount"):
        assert f'data-error="{name}"' in html, name
    # An amount of zero reaches the service, which refuses it.
    response = record(coordinator, membership_number=carded["w1"].membership_number, tier_id=str(annual.id),
                      method="cash", amount="0")
    assert response.status_code == 422 and 'data-error="amount">Give the amount paid, more than zero.' in text(response)
    assert payment_count() == 0
    # Without a token the POST is refused (CSRFProtect) and nothing is written.
    response = coordinator.post(RECORD, data={"membership_number": carded["w1"].membership_number,
                                              "tier_id": str(annual.id), "method": "cash"})
    assert response.status_code == 400 and payment_count() == 0


def test_a_different_amount_is_recorded_as_paid(coordinator, carded, annual):
    response = record(coordinator, membership_number=carded["w1"].membership_number, tier_id=str(annual.id),
                      method="mobile_money", reference="MM-77", amount="60")
    assert response.status_code == 302
    payment = db.session.scalars(select(Payment)).one()
    assert (payment.amount_minor, payment.reference) == (6000, "MM-77")


# --- refunds ----------------------------------------------------------------------------


def test_a_coordinator_cannot_refund_or_manage_tiers(coordinator, staff, carded, annual):
    payment = dues.record_manual(staff["coordinator"], carded["w1"], {"tier_id": annual.id, "method": "cash"})
    db.session.commit()
    url = f"{LIST}{payment.id}/refund"
    csrf = token(coordinator, RECORD)
    assert coordinator.get(url).status_code == 403
    assert coordinator.post(url, data={"reason": "No", "csrf_token": csrf}).status_code == 403
    assert db.session.get(Payment, payment.id).status == "completed"
    assert 'id="refund-' not in text(coordinator.get(LIST))
    assert coordinator.get(TIERS + "new").status_code == 403
    assert coordinator.get(f"{TIERS}{annual.id}/edit").status_code == 403
    response = coordinator.post(TIERS + "new", data={"name": "Cheap", "price": "1", "currency": "ZMW",
                                                     "duration_months": "12", "card_type": "standard",
                                                     "csrf_token": csrf})
    assert response.status_code == 403
    assert db.session.scalar(select(func.count(MembershipTier.id))) == 1
    html = text(coordinator.get(TIERS))  # the price list itself is readable, without buttons
    assert "Annual" in html and 'id="new-tier"' not in html and "edit-tier-" not in html


def test_an_admin_refunds_with_a_reason_and_the_expiry_goes_back(admin, staff, carded, annual):
    card = carded["w1_card"]
    before = card.expires_on
    payment = dues.record_manual(staff["coordinator"], carded["w1"], {"tier_id": annual.id, "method": "cash"})
    db.session.commit()
    assert db.session.get(MembershipCard, card.id).expires_on == add_months(before, 12)
    url = f"{LIST}{payment.id}/refund"
    page = admin.get(url)
    assert page.status_code == 200 and 'id="refund-form"' in text(page)
    csrf = csrf_token_from(page.get_data(as_text=True))
    response = admin.post(url, data={"reason": "  ", "csrf_token": csrf})
    assert response.status_code == 422 and 'data-error="reason">Give a reason for the refund.' in text(response)
    assert db.session.get(Payment, payment.id).status == "completed"
    response = admin.post(url, data={"reason": "Paid twice by mistake", "csrf_token": csrf})
    assert response.status_code == 302
    payment = db.session.get(Payment, payment.id)
    db.session.refresh(payment)
    assert payment.status == "refunded" and payment.hold_reason == ""
    assert db.session.get(MembershipCard, card.id).expires_on == before
    html = text(admin.get(LIST))
    assert f"{payment.receipt_number} refunded" in html and f"valid until {before:%d %B %Y} again" in html
    # Asking again: the page says it cannot, and a POST changes nothing.
    assert 'id="not-allowed"' in text(admin.get(url))
    response = admin.post(url, data={"reason": "again", "csrf_token": csrf})
    assert response.status_code == 302
    assert "was already refunded: nothing changed." in text(admin.get(LIST))
    assert db.session.get(MembershipCard, card.id).expires_on == before


def test_a_refund_a_later_payment_builds_on_flashes_the_hold_reason(admin, staff, carded, annual):
    first = dues.record_manual(staff["admin"], carded["w1"], {"tier_id": annual.id, "method": "cash"})
    second = dues.record_manual(staff["admin"], carded["w1"], {"tier_id": annual.id, "method": "cash"})
    db.session.commit()
    url = f"{LIST}{first.id}/refund"
    response = admin.post(url, data={"reason": "Cheque bounced", "csrf_token": token(admin, url)})
    assert response.status_code == 302
    html = text(admin.get(LIST))
    assert "builds on its extension" in html and second.receipt_number in html
    assert 'data-hold-reason' in html


def test_refund_outside_the_area_is_404(coordinator, staff, carded, annual):
    payment = dues.record_manual(staff["admin"], carded["w4"], {"tier_id": annual.id, "method": "cash"})
    db.session.commit()
    assert coordinator.get(f"{LIST}{payment.id}/refund").status_code == 404
    assert coordinator.get(f"{LIST}999999/refund").status_code == 404


# --- tiers ------------------------------------------------------------------------------


def test_an_admin_manages_tiers_with_every_message_at_once(admin, annual):
    assert 'id="new-tier"' in text(admin.get(TIERS))
    csrf = token(admin, TIERS + "new")
    response = admin.post(TIERS + "new", data={"name": "", "price": "a lot", "currency": "kwacha",
                                               "duration_months": "500", "card_type": "standard",
                                               "csrf_token": csrf})
    html = text(response)
    assert response.status_code == 422
    for name in ("name", "price", "currency", "duration_months"):
        assert f'data-error="{name}"' in html, name
    assert db.session.scalar(select(func.count(MembershipTier.id))) == 1
    response = admin.post(TIERS + "new", data={"name": "Annual", "price": "5", "currency": "ZMW",
                                               "duration_months": "12", "card_type": "standard", "active": "y",
                                               "csrf_token": csrf})
    assert response.status_code == 422 and 'data-error="name">Another tier has this name.' in text(response)
    response = admin.post(TIERS + "new", data={"name": "Life", "description": "For ever", "price": "1,500",
                                               "currency": "zmw", "duration_months": "", "card_type": "lifetime",
                                               "active": "y", "csrf_token": csrf})
    assert response.status_code == 302
    life = db.session.scalars(select(MembershipTier).where(MembershipTier.name == "Life")).one()
    assert (life.price_minor, life.currency, life.duration_months, life.active) == (150000, "ZMW", None, True)
    edit = f"{TIERS}{annual.id}/edit"
    assert 'value="120.50"' in text(admin.get(edit))
    response = admin.post(edit, data={"name": "Annual", "price": "130", "currency": "ZMW", "duration_months": "12",
                                      "card_type": "standard", "csrf_token": csrf})  # unchecked: switched off
    assert response.status_code == 302
    db.session.refresh(annual)
    assert (annual.price_minor, annual.active) == (13000, False)
    response = admin.post(edit, data={"name": "Life", "price": "x", "currency": "ZMW", "duration_months": "12",
                                      "card_type": "standard", "csrf_token": csrf})
    assert response.status_code in (409, 422)
    html = text(response)
    assert 'data-error="name"' in html and 'data-error="price"' in html
    db.session.refresh(annual)
    assert annual.name == "Annual" and annual.price_minor == 13000
    assert admin.get(f"{TIERS}999999/edit").status_code == 404


# --- the list ---------------------------------------------------------------------------


@pytest.fixture()
def ledger(staff, tree, make_member, annual):
    """Payments in W1 (two cash, one refunded, one held), W2 (USD) and W4."""
    usd = tiers.create_tier(staff["admin"], {"name": "Diaspora", "price": "25", "currency": "USD",
                                             "duration_months": "12", "card_type": "standard"})
    admin = staff["admin"]
    made = {}
    for key, ward, tier, extra in (("w1a", "w1", annual, {}), ("w1b", "w1", annual, {"amount_minor": 5000}),
                                   ("w1r", "w1", annual, {}), ("w2", "w2", usd, {}), ("w4", "w4", annual, {}),
                                   ("w4b", "w4", usd, {})):
        member = make_member(tree[ward])
        made[key] = dues.record_manual(admin, member, {"tier_id": tier.id, "method": "cash", **extra})
    dues.refund(admin, made["w1r"], "Entered in error")
    held = make_member(tree["w1"], first_name="Sus", last_name="Pended")
    member_service.change_status(None, held, "suspended", "Under review")
    made["held"] = dues.record_manual(admin, held, {"tier_id": annual.id, "method": "bank_transfer",
                                                    "reference": "BT-1"})
    db.session.commit()
    return made


def expected_totals(payments) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for p in payments:
        if p.status == "completed":
            sums[p.currency] += p.amount_minor
    return dict(sums)


def test_the_list_is_scoped_and_its_totals_add_up(client, staff, tree, ledger):
    login(client, "coord@test.org")
    html = text(client.get(LIST))
    w1 = [p for p in ledger.values() if p.unit_id == tree["w1"].id]
    assert listed(html) == {p.id for p in w1}
    assert totals(html) == expected_totals(w1) == {"ZMW": 12050 + 5000 + 12050}  # the held one is completed too
    assert "Held:" in html and "Under review" not in html  # the hold reason, not the status note
    assert "suspended: staff must decide" in html
    client.get("/logout")
    login(client, "admin@test.org")
    html = text(client.get(LIST))
    assert listed(html) == {p.id for p in ledger.values()}
    assert totals(html) == expected_totals(ledger.values())
    # Filters narrow the list and its totals.
    html = text(client.get(LIST, query_string={"status": "refunded"}))
    assert listed(html) == {ledger["w1r"].id} and 'id="no-totals"' in html
    html = text(client.get(LIST, query_string={"unit_id": tree["p2"].id, "method": "cash"}))
    assert listed(html) == {ledger["w4"].id, ledger["w4b"].id}
    assert totals(html) == {"ZMW": 12050, "USD": 2500}
    today = date.today().isoformat()
    assert len(listed(text(client.get(LIST, query_string={"since": today, "until": "9999-12-31"})))) == len(ledger)
    html = text(client.get(LIST, query_string={"until": "2000-01-01"}))
    assert 'id="no-payments"' in html and "No payment matches these filters" in html


def test_newest_first_and_paged(client, staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    made = [dues.record_manual(staff["admin"], member, {"tier_id": annual.id, "method": "cash"}) for _ in range(27)]
    db.session.commit()
    login(client, "admin@test.org")
    first = text(client.get(LIST))
    ids = [int(i) for i in re.findall(r'<tr data-payment-id="(\d+)">', first)]
    assert len(ids) == 25 and ids[0] == made[-1].id
    assert "Page 1 of 2" in first
    assert set(listed(text(client.get(LIST, query_string={"page": 1})))) == {made[1].id, made[0].id}
    assert "past the end of this list" in text(client.get(LIST, query_string={"page": 9}))
    assert client.get(LIST, query_string={"page": "-1"}).status_code == 400


def test_bad_filters_show_every_message_never_a_500(coordinator, tree, ledger):
    response = coordinator.get(LIST, query_string={"status": "paid", "method": "cheque", "unit_id": "abc",
                                                   "since": "2027-13-01", "until": "yesterday"})
    html = text(response)
    assert response.status_code == 400 and not listed(html)
    for name in ("status", "method", "unit_id", "since", "until"):
        assert f'data-error="{name}"' in html, name
    response = coordinator.get(LIST, query_string={"unit_id": tree["w4"].id})  # outside the area: the same words
    assert response.status_code == 400 and "does not exist or is outside your area" in text(response)
    response = coordinator.get(LIST, query_string={"since": "2027-02-01", "until": "2027-01-01"})
    assert response.status_code == 400 and "The end date is before the start date." in text(response)
    for odd in ("99999999999999999999999", "1e3", "٣"):
        assert coordinator.get(LIST, query_string={"unit_id": odd}).status_code == 400


def test_empty_states(admin, staff):
    html = text(admin.get(LIST))
    assert 'id="no-payments"' in html and "No payments in your area yet" in html
    assert 'id="no-tiers"' in text(admin.get(TIERS))
    assert 'id="no-tiers"' in text(admin.get(RECORD))


def test_a_member_has_no_console_access(client, staff):
    login(client, "member@test.org")
    for url in (LIST, RECORD, TIERS):
        assert client.get(url).status_code == 403

"""The "Payments" panel on a member's console page, and the staff receipt it links to (issue 14).

What staff see on a member's page: the member's latest payments (date, tier,
method, status, amount, receipt number linking to the PDF), newest first;
an empty state; "Record a payment" prefilled with the membership number for
those who may record one. The panel is shown only to users with
``payments.read`` over the member, and lists only payments the user may read
(one made in another ward before the member moved is left out). The receipt
needs ``payments.read`` over the payment: 404 outside the area; a payment
with no receipt yet goes back to the list with the reason.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from html import unescape

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Payment
from app.models.base import utcnow
from app.services import cards, dues, rbac
from app.services import members as member_service
from app.services.dues import tiers
from tests.conftest import login

LIST, RECORD = "/admin/dues/payments/", "/admin/dues/record/"


def page(client, member):
    response = client.get(f"/admin/member/details/?id={member.id}")
    assert response.status_code == 200, response.status_code
    return unescape(response.get_data(as_text=True))


def panel_rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-member-payment="(\d+)"', html)]


@pytest.fixture()
def annual(staff):
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120.50", "currency": "ZMW",
                                              "duration_months": "12"})
    db.session.commit()
    return tier


@pytest.fixture()
def payer(staff, tree, make_member, annual):
    """A W1 member with three payments: cash (oldest), mobile money, and a pending online one (newest)."""
    member = make_member(tree["w1"], first_name="Ada", last_name="Banda")
    cards.issue_card(None, member).expires_on = date.today() + timedelta(days=30)
    made = [dues.record_manual(staff["admin"], member, {"tier_id": annual.id, "method": "cash"}),
            dues.record_manual(staff["admin"], member, {"tier_id": annual.id, "method": "mobile_money",
                                                        "reference": "MM-1"}),
            dues.new_payment(member, annual, "stripe")]
    for age, payment in zip((30, 20, 10), made):
        payment.created_at = utcnow() - timedelta(minutes=age)
    db.session.commit()
    return {"member": member, "payments": made}


@pytest.fixture()
def coordinator(client, staff):
    login(client, "coord@test.org")
    return client


def reader_client(app, make_user, tree, permissions):
    """A signed-in user of W1 holding just ``permissions`` there."""
    role = rbac.create_role(None, "reader_" + "_".join(p.replace(".", "") for p in permissions), "", permissions)
    user = make_user(f"reader{len(permissions)}@test.org")
    rbac.assign_role(None, user, role, tree["w1"])
    db.session.commit()
    client = app.test_client()
    login(client, user.email)
    return client


def test_the_panel_lists_the_members_payments_newest_first_with_receipts(coordinator, payer):
    cash, mobile, pending = payer["payments"]
    html = page(coordinator, payer["member"])
    assert 'id="member-payments-panel"' in html
    assert panel_rows(html) == [pending.id, mobile.id, cash.id]
    assert html.count("120.50 ZMW") >= 3 and "Mobile money" in html and "Card (online)" in html
    assert 'data-status="pending"' in html and html.count('data-status="completed"') == 2
    for payment in (cash, mobile):
        assert f'href="{LIST}{payment.id}/receipt" data-receipt-link="{payment.id}">{payment.receipt_number}<' in html
    assert f'data-receipt-link="{pending.id}"' not in html
    link = re.search(r'id="member-record-payment" href="([^"]+)"', html).group(1)
    assert link == f"{RECORD}?membership_number={payer['member'].membership_number}"


def test_the_staff_receipt_downloads_the_pdf(coordinator, payer):
    cash = payer["payments"][0]
    response = coordinator.get(f"{LIST}{cash.id}/receipt")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.get_data().startswith(b"%PDF")
    assert f'filename="receipt-{cash.receipt_number}.pdf"' in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "private, no-store"


def test_a_payment_without_a_receipt_goes_back_to_the_list_with_why(coordinator, payer):
    pending = payer["payments"][2]
    response = coordinator.get(f"{LIST}{pending.id}/receipt")
    assert response.status_code == 302 and response.headers["Location"].endswith(LIST)
    assert "This payment has no receipt yet: it is pending." in unescape(coordinator.get(LIST).get_data(as_text=True))


def test_record_a_payment_is_prefilled_with_the_membership_number(coordinator, payer):
    number = payer["member"].membership_number
    html = unescape(coordinator.get(f"{RECORD}?membership_number={number}").get_data(as_text=True))
    assert re.search(rf'name="membership_number"[^>]*value="{re.escape(number)}"', html) or \
        re.search(rf'value="{re.escape(number)}"[^>]*name="membership_number"', html)
    blank = unescape(coordinator.get(RECORD).get_data(as_text=True))
    assert not re.search(r'name="membership_number"[^>]*value="[^"]+"', blank)


def test_a_member_without_payments_shows_the_empty_state(coordinator, tree, make_member, annual):
    member = make_member(tree["w1"])
    db.session.commit()
    html = page(coordinator, member)
    assert 'id="member-no-payments"' in html and "No payments yet." in html and panel_rows(html) == []
    assert 'id="member-record-payment"' in html


def test_payments_made_outside_the_users_area_are_left_out_and_their_receipt_is_404(coordinator, staff, tree,
                                                                                   make_member, annual):
    """A member who moved from W4 to W1: the coordinator of W1 sees the W1 payment only."""
    member = make_member(tree["w4"], first_name="Moved", last_name="Here")
    cards.issue_card(None, member).expires_on = date.today() + timedelta(days=30)
    before = dues.record_manual(staff["admin"], member, {"tier_id": annual.id, "method": "cash"})
    member_service.update_member(None, member, {"unit_id": tree["w1"].id})
    after = dues.record_manual(staff["admin"], member, {"tier_id": annual.id, "method": "cash"})
    db.session.commit()
    assert (before.unit_id, after.unit_id) == (tree["w4"].id, tree["w1"].id)
    html = page(coordinator, member)
    assert panel_rows(html) == [after.id]
    assert coordinator.get(f"{LIST}{before.id}/receipt").status_code == 404
    assert coordinator.get(f"{LIST}{after.id}/receipt").status_code == 200


def test_the_panel_is_hidden_without_payments_read(app, payer, make_user, tree):
    client = reader_client(app, make_user, tree, ["members.read"])
    html = page(client, payer["member"])
    assert 'id="member-payments-panel"' not in html and "member-record-payment" not in html
    assert client.get(f"{LIST}{payer['payments'][0].id}/receipt").status_code == 403


def test_readers_of_payments_see_the_panel_without_the_record_link(app, payer, make_user, tree):
    client = reader_client(app, make_user, tree, ["members.read", "payments.read"])
    html = page(client, payer["member"])
    assert len(panel_rows(html)) == 3 and 'id="member-record-payment"' not in html


def test_another_wards_member_page_and_receipts_are_404_for_a_coordinator(coordinator, staff, tree, make_member,
                                                                          annual):
    member = make_member(tree["w4"])
    cards.issue_card(None, member).expires_on = date.today() + timedelta(days=30)
    payment = dues.record_manual(staff["admin"], member, {"tier_id": annual.id, "method": "cash"})
    db.session.commit()
    assert coordinator.get(f"/admin/member/details/?id={member.id}").status_code == 404
    assert coordinator.get(f"{LIST}{payment.id}/receipt").status_code == 404
    assert db.session.scalar(select(Payment.receipt_number).where(Payment.id == payment.id))

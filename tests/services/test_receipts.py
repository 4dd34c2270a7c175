"""Receipts (app/services/dues/receipts.py): the PDF read back as a member would read it.

The text is extracted with pdfium (as Chrome shows it), the way the card
tests read cards: names in other scripts must come back exactly as typed.
"""

from __future__ import annotations

from datetime import date

import pypdfium2 as pdfium
import pytest

from app.services import dues
from app.services import members as member_service
from app.services.dues import receipts, tiers
from app.services.errors import ServiceError

TODAY = date(2026, 3, 14)
A4_PT = (210 / 25.4 * 72, 297 / 25.4 * 72)


@pytest.fixture()
def annual(staff):
    return tiers.create_tier(None, {"name": "Annual", "price": "150", "currency": "ZMW",
                                    "duration_months": "12", "card_type": "standard"})


def _read(pdf: bytes) -> list[tuple[str, tuple[float, float]]]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [(page.get_textpage().get_text_range(), page.get_size()) for page in doc]
    finally:
        doc.close()


def _cash(staff, member, tier, **extra):
    return dues.record_manual(staff["admin"], member, {"tier_id": tier.id, "method": "cash", **extra}, today=TODAY)


@pytest.mark.parametrize("first,last", [("Zoë", "Ñuñez"), ("محمد", "عبد الله"), ("Дмитрий", "Шостакович")])
def test_a_cash_receipt_says_who_paid_what_for_what_on_one_a4_page(app, staff, tree, make_member, annual,
                                                                    first, last):
    member = make_member(tree["w1"], first_name=first, last_name=last)
    payment = _cash(staff, member, annual)
    pages = _read(receipts.render_receipt_pdf(payment))
    assert len(pages) == 1
    text, size = pages[0]
    assert size == pytest.approx(A4_PT, abs=0.01)
    lines = text.splitlines()
    assert f"{first} {last}" in lines
    assert payment.receipt_number == "R-2026-000001"
    for expected in ("Muster Demo Movement", "Receipt", "R-2026-000001", "150.00 ZMW", "Cash",
                     f"Membership no. {member.membership_number}", "Lukashya Ward 1", "Annual",
                     f"valid until {payment.extended_to.day} {payment.extended_to:%B %Y}",
                     "admin@test.org", app.config["PUBLIC_URL"]):
        assert expected in text, expected
    assert "REFUNDED" not in text
    assert receipts.receipt_filename(payment) == "receipt-R-2026-000001.pdf"


def test_receipt_numbers_run_on_and_a_reference_and_lifetime_are_shown(staff, tree, make_member, annual):
    life = tiers.create_tier(None, {"name": "Life", "price": "1500", "currency": "ZMW",
                                    "duration_months": "", "card_type": "lifetime"})
    first = _cash(staff, make_member(tree["w1"]), annual)
    second = dues.record_manual(staff["admin"], make_member(tree["w3"]),
                                {"tier_id": life.id, "method": "mobile_money", "reference": "MM-77812"}, today=TODAY)
    assert (first.receipt_number, second.receipt_number) == ("R-2026-000001", "R-2026-000002")
    text = _read(receipts.render_receipt_pdf(second))[0][0]
    for expected in ("R-2026-000002", "1,500.00 ZMW", "Mobile money", "Reference: MM-77812", "for life",
                     "Lunte Ward 1"):
        assert expected in text, expected


def test_an_online_payment_is_marked_paid_online(staff, tree, make_member, annual):
    payment = dues.new_payment(make_member(tree["w1"]), annual, "stripe")
    dues.complete(payment, today=TODAY)
    text = _read(receipts.render_receipt_pdf(payment))[0][0]
    assert "Paid online" in text and "Card (online)" in text


def test_a_refunded_payment_keeps_its_receipt_marked_refunded(staff, tree, make_member, annual):
    payment = _cash(staff, make_member(tree["w1"], first_name="Zoë", last_name="Ñuñez"), annual)
    dues.refund(staff["admin"], payment, "Paid twice")
    receipts.check_receipt(payment)
    pages = _read(receipts.render_receipt_pdf(payment))
    assert len(pages) == 1
    text = pages[0][0]
    refunded_on = payment.refunded_at.date()
    assert f"REFUNDED on {refunded_on.day} {refunded_on:%B %Y}" in text
    assert payment.receipt_number in text and "Zoë Ñuñez" in text


def test_a_pending_payment_has_no_receipt(staff, tree, make_member, annual):
    payment = dues.new_payment(make_member(tree["w1"]), annual, "stripe")
    for call in (receipts.check_receipt, receipts.render_receipt_pdf, receipts.receipt_filename):
        with pytest.raises(ServiceError) as caught:
            call(payment)
        assert caught.value.status == 409
        assert caught.value.message == "This payment has no receipt yet: it is pending."


def test_a_held_payment_has_no_receipt_and_says_why(staff, tree, make_member, annual):
    member = make_member(tree["w1"])
    member_service.change_status(None, member, "suspended", "Test")
    payment = _cash(staff, member, annual)
    assert payment.status == "completed" and payment.hold_reason
    with pytest.raises(ServiceError) as caught:
        receipts.render_receipt_pdf(payment)
    assert caught.value.status == 409
    assert caught.value.message.startswith("This payment has no receipt yet: ")
    assert payment.hold_reason in caught.value.message and "is suspended" in caught.value.message

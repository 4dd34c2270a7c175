"""``/card``: the card on screen, its QR code (which must verify) and its PDF; every card state says what it is."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
import zxingcpp
from PIL import Image

from app.services import card_pdf
from app.services import cards as card_service
from tests.portal.conftest import text


def decode_qr(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, "no (or more than one) QR code in the image"
    return found[0].text


def test_no_card_says_so_and_offers_no_code(portal):
    response = portal.get("/card")
    assert response.status_code == 200
    page = text(response)
    assert 'data-status="none"' in page and "do not have a membership card yet" in page
    assert 'id="card-qr"' not in page and 'id="card-pdf"' not in page
    assert portal.get("/card/qr.png").status_code == 404
    assert portal.get("/card/pdf").status_code == 404


def test_active_card_shows_number_type_expiry_and_a_qr_that_verifies(portal, member, make_card):
    card = make_card(member, card_type="premium")
    page = text(portal.get("/card"))
    assert 'data-status="active"' in page and "Your card is valid until" in page
    assert f'id="card-number">{card.card_number}<' in page
    assert 'id="card-type">Premium<' in page
    assert f'id="card-expiry">{card.expires_on:%d %b %Y}<' in page
    assert 'src="/card/qr.png"' in page

    response = portal.get("/card/qr.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["Cache-Control"] == "private, no-store"
    image = Image.open(io.BytesIO(response.data))
    assert image.width >= 500  # large enough to be scanned from a phone screen
    scanned = decode_qr(response.data)
    assert scanned.endswith("/verify/" + card_service.card_token(card))
    verdict = card_service.verify_token(card_service.scanned_token(scanned))
    assert (verdict.status, verdict.card_number) == ("valid", card.card_number)


def test_pdf_comes_from_the_consoles_renderer(portal, member, make_card, monkeypatch):
    card = make_card(member)
    rendered = []

    def fake_render(c):
        rendered.append(c.id)
        return b"%PDF-1.4 stand-in"

    monkeypatch.setattr(card_pdf, "render_card_pdf", fake_render)
    response = portal.get("/card/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert rendered == [card.id] and response.data == b"%PDF-1.4 stand-in"
    assert response.headers["Content-Disposition"] == f'attachment; filename="card-{card.card_number}.pdf"'
    assert response.headers["Cache-Control"] == "private, no-store"


def test_pdf_is_a_real_pdf(portal, member, make_card):
    make_card(member)
    response = portal.get("/card/pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")


def test_lifetime_card_never_expires(portal, member, make_card):
    make_card(member, card_type="lifetime")
    page = text(portal.get("/card"))
    assert 'id="card-expiry">Never (lifetime)<' in page and "Your card is valid." in page


def test_card_near_expiry_says_renewal_opens_with_dues(portal, member, make_card):
    make_card(member, expires_on=date.today() + timedelta(days=1))
    page = text(portal.get("/card"))
    assert "expires in 1 day: renewal opens with dues" in page
    assert portal.get("/card/qr.png").status_code == 200  # still valid today


def _expire(card):
    card.expires_on = date.today() - timedelta(days=1)


@pytest.mark.parametrize("change, status, words", [
    (_expire, "expired", "Your card expired on"),
    (lambda card: card_service.suspend_card(None, card, "Dues unpaid"), "suspended", "Your card is suspended"),
    (lambda card: card_service.revoke_card(None, card, "Lost"), "revoked", "Your card has been revoked"),
])
def test_a_card_that_is_not_valid_says_why_and_gives_no_code(portal, member, make_card, change, status, words):
    card = make_card(member)
    change(card)
    page = text(portal.get("/card"))
    assert f'data-status="{status}"' in page and words in page
    assert card.card_number in page  # the number stays visible, to quote to a coordinator
    assert 'id="card-qr"' not in page and 'id="card-pdf"' not in page
    assert portal.get("/card/qr.png").status_code == 404
    response = portal.get("/card/pdf")
    assert response.status_code == 302 and response.headers["Location"] == "/card"
    assert words in text(portal.get("/card"))  # flashed, and on the page


def test_the_card_shown_is_the_current_one_after_a_reissue(portal, member, make_card):
    old = make_card(member)
    new = card_service.reissue_card(None, old, "Lost")
    page = text(portal.get("/card"))
    assert new.card_number in page and old.card_number not in page
    assert decode_qr(portal.get("/card/qr.png").data).endswith(card_service.card_token(new))


def test_card_pages_need_a_sign_in(client):
    for path in ("/card", "/card/qr.png", "/card/pdf"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_staff_without_membership_get_a_clear_404(client, staff):
    from tests.conftest import login

    login(client, "admin@test.org")
    for path in ("/card", "/card/qr.png", "/card/pdf"):
        response = client.get(path)
        assert response.status_code == 404
        assert "not linked to a membership record" in text(response)

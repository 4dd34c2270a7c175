"""The public verification page a card's QR code opens: status, number, expiry, first name, initial, photo."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from app.extensions import db, limiter
from app.services import cards
from app.services import members as member_service
from tests.conftest import login


@pytest.fixture()
def holder(tree, make_member):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", phone="0977123456",
                         email="chanda@example.org", national_id="123456/78/1", address="Plot 9, Kasama")
    img = io.BytesIO()
    Image.new("RGB", (60, 80), "green").save(img, "PNG")
    member_service.set_photo(None, member, img.getvalue())
    return member


def _page(client, token):
    db.session.commit()
    return client.get(f"/verify/{token}")


def test_valid_card_page_shows_only_what_a_doorkeeper_needs(client, holder):
    card = cards.issue_card(None, holder)
    response = _page(client, cards.card_token(card))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-status="valid"' in html and "Valid" in html
    assert card.card_number in html and card.expires_on.isoformat() in html
    assert "Chanda M." in html and 'id="holder-photo"' in html and "data:image/jpeg;base64," in html
    for private in ("Mwansa", "0977", "chanda@example.org", "123456/78/1", "Plot 9", holder.membership_number,
                    "Lukashya"):
        assert private not in html, private
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response.headers["X-Robots-Tag"]


def test_needs_no_login_and_ignores_the_session(app, client, holder, staff):
    """A signed-in admin who scans a card sees the stranger's page: no more data, no console links."""
    card = cards.issue_card(None, holder)
    token = cards.card_token(card)
    anonymous = _page(app.test_client(), token)
    assert login(client, "admin@test.org").status_code == 302
    assert "admin@test.org" in client.get("/").get_data(as_text=True)  # the session really is signed in
    signed_in = client.get(f"/verify/{token}")
    assert signed_in.status_code == anonymous.status_code == 200
    assert signed_in.get_data(as_text=True) == anonymous.get_data(as_text=True)
    assert "Set-Cookie" not in signed_in.headers  # nor does the page touch the session


@pytest.mark.parametrize("change,status,label", [
    ("suspend", "suspended", "Suspended"),
    ("revoke", "revoked", "Revoked"),
    ("expire", "expired", "Expired"),
])
def test_page_says_when_a_card_is_not_valid(client, holder, change, status, label):
    card = cards.issue_card(None, holder)
    token = cards.card_token(card)
    if change == "suspend":
        cards.suspend_card(None, card, "dues")
    elif change == "revoke":
        cards.revoke_card(None, card, "stolen")
    else:
        from datetime import date

        card.expires_on = date(2025, 1, 31)
    html = _page(client, token).get_data(as_text=True)
    assert f'data-status="{status}"' in html and label in html
    assert re.search(r'id="verification-message">[^<]*' + status[:5], html)


@pytest.mark.parametrize("token", ["junk", "A" * 106, "A" * 3000, "..%2F..%2Fetc", "x/y/z", "%E2%80%AE"])
def test_bad_tokens_say_invalid_without_errors(client, token):
    response = client.get(f"/verify/{token}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-status="invalid"' in html and "Do not accept this card" in html
    assert 'id="holder-name"' not in html


def test_unknown_card(client, holder):
    card = cards.issue_card(None, holder)
    token = cards.card_token(card)
    db.session.delete(card)
    html = _page(client, token).get_data(as_text=True)
    assert 'data-status="unknown"' in html and 'id="holder-name"' not in html


def test_page_is_rate_limited(client, app, holder):
    card = cards.issue_card(None, holder)
    token = cards.card_token(card)
    db.session.commit()
    app.config["CARD_VERIFY_RATE_LIMIT"] = "2 per minute"
    limiter.reset()
    try:
        codes = [client.get(f"/verify/{token}").status_code for _ in range(4)]
    finally:
        app.config["CARD_VERIFY_RATE_LIMIT"] = "60 per minute"
        limiter.reset()
    assert codes == [200, 200, 429, 429]

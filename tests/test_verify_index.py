"""The public card check index, /verify/: type a card number or paste a code, get the scan's verdict.

A signed code (bare or inside the QR's URL) gets exactly what the QR page shows; a typed number
gets the status, number and expiry but never the holder (numbers can be walked, codes cannot be
made up). Bad input gets a message, never a 500; lookups share the QR page's rate limit.
"""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from PIL import Image

from app.extensions import db, limiter
from app.services import cards
from app.services import members as member_service
from tests.conftest import csrf_token_from, login

PRIVATE = ("Mwansa", "0977", "chanda@example.org", "123456/78/1", "Plot 9", "Lukashya")


@pytest.fixture()
def holder(tree, make_member):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", phone="0977123456",
                         email="chanda@example.org", national_id="123456/78/1", address="Plot 9, Kasama")
    img = io.BytesIO()
    Image.new("RGB", (60, 80), "green").save(img, "PNG")
    member_service.set_photo(None, member, img.getvalue())
    return member


@pytest.fixture()
def card(holder):
    return cards.issue_card(None, holder)


def check(client, code: str):
    """Type or paste ``code`` into the form, as a person does: GET the page, POST with its CSRF token."""
    db.session.commit()
    form = client.get("/verify/")
    assert form.status_code == 200
    return client.post("/verify/", data={"card_code": code, "csrf_token": csrf_token_from(form.get_data(as_text=True))})


def verdict_of(html: str) -> str:
    """The verdict card of a page (the part the QR page and the index share)."""
    match = re.search(r'<div class="card shadow-sm" id="verification".*?\n    </div>\n', html, re.DOTALL)
    assert match, "no verdict on the page"
    return match.group(0)


def shows_holder(html: str) -> bool:
    return any(mark in html for mark in ('id="holder-name"', 'id="holder-photo"', "Chanda", "data:image/"))


def test_the_index_renders_a_form_for_anyone(client):
    response = client.get("/verify/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="verify-lookup"' in html and 'method="post"' in html and 'name="card_code"' in html
    assert csrf_token_from(html)
    assert 'id="verification"' not in html  # no verdict before anything was asked
    assert response.headers["Cache-Control"] == "no-store"
    assert "noindex" in response.headers["X-Robots-Tag"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/verify").status_code in (301, 308)  # the address as printed, without the slash


def test_a_query_string_is_ignored(client, card):
    """Nothing is looked up from a URL: the lookup is a POST, so no number or code lands in logs."""
    html = client.get(f"/verify/?card_code={card.card_number}").get_data(as_text=True)
    assert 'id="verification"' not in html and card.card_number not in html


def test_a_typed_number_gives_the_status_but_not_the_holder(client, card):
    response = check(client, card.card_number)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-status="valid"' in html and card.card_number in html and card.expires_on.isoformat() in html
    assert not shows_holder(html)
    assert 'id="typed-number-note"' in html  # says how to see the holder: scan or paste the code
    for private in PRIVATE + (card.member.membership_number,):
        assert private not in html, private
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("typed", ["{n}", "{lower}", " {spaced} ", "{n}\n"])
def test_a_typed_number_is_read_forgivingly(client, card, typed):
    n = card.card_number
    code = typed.format(n=n, lower=n.lower(), spaced=n.replace("-", " "))
    html = check(client, code).get_data(as_text=True)
    assert 'data-status="valid"' in html and f'id="card-number">{n}<' in html


@pytest.mark.parametrize("change,status", [("suspend", "suspended"), ("revoke", "revoked"), ("expire", "expired"),
                                           ("delete", "revoked")])
def test_a_typed_number_of_a_card_not_valid_says_so_and_names_nobody(client, card, change, status):
    if change == "suspend":
        cards.suspend_card(None, card, "dues")
    elif change == "revoke":
        cards.revoke_card(None, card, "stolen")
    elif change == "expire":
        card.expires_on = date(2025, 1, 31)
    else:
        member_service.delete_member(None, card.member)
    html = check(client, card.card_number).get_data(as_text=True)
    assert f'data-status="{status}"' in html and not shows_holder(html)


def test_an_unknown_number(client, card):
    prefix, year, seq = cards.parse_card_number(card.card_number)
    other = cards.format_card_number(prefix, year, seq + 500)
    html = check(client, other).get_data(as_text=True)
    assert 'data-status="unknown"' in html and other in html and "Do not accept this card" in html
    assert 'id="card-expires"' not in html and not shows_holder(html)


@pytest.mark.parametrize("paste", ["url", "token", "url with spaces and query"])
def test_a_pasted_code_gives_the_same_verdict_as_the_scan(app, client, card, paste):
    token = cards.card_token(card)
    url = cards.verification_url(card)
    code = {"url": url, "token": token, "url with spaces and query": f"  {url}?utm=1  "}[paste]
    html = check(client, code).get_data(as_text=True)
    scanned = app.test_client().get(f"/verify/{token}").get_data(as_text=True)
    assert verdict_of(html) == verdict_of(scanned)
    assert 'data-status="valid"' in html and "Chanda M." in html and 'id="holder-photo"' in html
    for private in PRIVATE + (card.member.membership_number,):
        assert private not in html, private


def test_a_pasted_code_of_a_revoked_card_names_nobody(client, card):
    token = cards.card_token(card)
    cards.revoke_card(None, card, "stolen")
    html = check(client, token).get_data(as_text=True)
    assert 'data-status="revoked"' in html and not shows_holder(html)


def test_an_altered_code_is_not_a_valid_card(client, card):
    token = cards.card_token(card)
    altered = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    response = check(client, altered)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-status="invalid"' in html and "Do not accept this card" in html and not shows_holder(html)


@pytest.mark.parametrize("code,says", [
    ("", "Type the number printed on the card"),
    ("   ", "Type the number printed on the card"),
    ("hello world", "neither a card number"),
    ("M-2026-000001-0", "wrong check digit"),
    ("M-2026-000001\x00-8", "control characters"),
    ("\x00", "control characters"),
    ("M-2026-0000\u202e01-8", "control characters"),
    ("x" * 3000, "too long"),
    ("https://example.org/verify/", "holds no card code"),
    ("https://example.org/members/17", "holds no card code"),
    ("'; DROP TABLE members; --", "neither a card number"),
])
def test_bad_input_gets_a_message_not_an_error(client, code, says):
    response = check(client, code)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="lookup-error"' in html and says in html
    assert 'id="verification"' not in html
    assert "\x00" not in html


def test_a_wrong_check_digit_keeps_what_was_typed(client):
    html = check(client, "M-2026-000001-0").get_data(as_text=True)
    assert 'value="M-2026-000001-0"' in html  # to fix the typo, not retype it all


def test_the_form_needs_its_csrf_token(client, card):
    db.session.commit()
    response = client.post("/verify/", data={"card_code": card.card_number})
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    assert card.card_number not in response.get_data(as_text=True)


def test_signed_in_staff_see_what_a_stranger_sees(app, client, card, staff):
    token = cards.card_token(card)
    anonymous = check(app.test_client(), token).get_data(as_text=True)
    assert login(client, "admin@test.org").status_code == 302
    signed_in = check(client, token).get_data(as_text=True)
    assert verdict_of(signed_in) == verdict_of(anonymous)
    assert "admin@test.org" not in signed_in


def test_lookups_share_the_scan_pages_rate_limit(app, client, card):
    token = cards.card_token(card)
    db.session.commit()
    app.config["CARD_VERIFY_RATE_LIMIT"] = "3 per minute"
    limiter.reset()
    try:
        csrf = csrf_token_from(client.get("/verify/").get_data(as_text=True))
        codes = [client.post("/verify/", data={"card_code": card.card_number, "csrf_token": csrf}).status_code,
                 client.get(f"/verify/{token}").status_code,
                 client.post("/verify/", data={"card_code": "garbage", "csrf_token": csrf}).status_code,  # counts too
                 client.post("/verify/", data={"card_code": token, "csrf_token": csrf}).status_code,
                 client.get(f"/verify/{token}").status_code]
        form = client.get("/verify/")  # showing the empty form is no lookup
    finally:
        app.config["CARD_VERIFY_RATE_LIMIT"] = "60 per minute"
        limiter.reset()
    assert codes == [200, 200, 422, 429, 429]
    assert form.status_code == 200

"""Revoking a card asks first, on a page of its own, and needs a reason.

Before, the card page's Revoke button revoked at once (the reason could be
typed in the same box as a suspension note). Now the button opens a
confirmation page, without inline script, whose form alone revokes.
"""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.services import cards
from tests.conftest import csrf_token_from, login

LIST = "/admin/cards/"


def text(response) -> str:
    return response.get_data(as_text=True)


def get_ok(client, url: str) -> str:
    db.session.commit()
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return text(response)


@pytest.fixture()
def card(tree, make_member):
    member = make_member(tree["w1"], first_name="Mwila", last_name="Banda")
    card = cards.issue_card(None, member)
    db.session.commit()
    return card


@pytest.fixture()
def admin(client, staff):
    login(client, "admin@test.org")
    return client


def confirm_url(card) -> str:
    return f"{LIST}{card.id}/confirm/revoke"


def revoke(client, card, **fields):
    token = csrf_token_from(get_ok(client, confirm_url(card)))
    return client.post(f"{LIST}{card.id}/do/revoke", data={"csrf_token": token, **fields})


def test_card_page_revoke_button_opens_the_confirmation_page(admin, card):
    html = get_ok(admin, f"{LIST}details/?id={card.id}")
    form = re.search(r'<form method="GET" action="([^"]+)" id="card-revoke-form">', html)
    assert form and form.group(1) == confirm_url(card)
    assert 'name="revoke-reason"' not in html  # the reason is asked on the confirmation page


def test_confirmation_page_asks_for_a_reason_without_inline_script(admin, card):
    html = get_ok(admin, confirm_url(card))
    page = html[html.index('id="card-confirm"'):]
    page = page[:page.index("</form>")]
    assert "Revoke card <code" in page and card.card_number in page and "cannot be undone" in page
    assert 'name="revoke-reason"' in page and 'name="revoke-confirmed" value="yes"' in page
    assert "<script" not in page and "onclick" not in page and "javascript:" not in html[html.index('id="card-confirm"'):]
    assert cards.current_card(card.member).status == "active"


def test_revoking_without_a_reason_rerenders_the_confirmation_page(admin, card):
    response = revoke(admin, card, **{"revoke-reason": "  ", "revoke-confirmed": "yes"})
    assert response.status_code == 422
    html = text(response)
    assert 'id="card-revoke-confirm-form"' in html
    assert re.search(r'is-invalid[^>]*>\s*</textarea>\s*<div class="invalid-feedback d-block">'
                     r'Give a reason to revoke the card\.</div>', html)
    db.session.refresh(card)
    assert card.status == "active"


def test_a_post_that_skipped_the_confirmation_only_asks(admin, card):
    """A form posted from elsewhere (an old card page, a crafted request) gets the question, not a revocation."""
    response = revoke(admin, card, **{"revoke-reason": "reported stolen"})
    assert response.status_code == 200
    html = text(response)
    assert 'id="card-revoke-confirm-form"' in html and "reported stolen</textarea>" in html
    db.session.refresh(card)
    assert card.status == "active"


def test_confirmed_with_a_reason_revokes_and_records_it(admin, card):
    response = revoke(admin, card, **{"revoke-reason": "reported stolen", "revoke-confirmed": "yes"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"details/?id={card.id}")
    db.session.refresh(card)
    assert card.status == "revoked" and card.transactions[0].reason == "reported stolen"
    # Already revoked: the confirmation page sends back to the card, saying why.
    response = admin.get(confirm_url(card))
    assert response.status_code == 302
    assert "it cannot be revoked now" in get_ok(admin, response.headers["Location"])


def test_confirmation_page_follows_permissions_and_scope(client, staff, card, tree, make_member):
    login(client, "coord@test.org")  # cards.read but not cards.update in W1
    assert client.get(confirm_url(card)).status_code == 403
    other = cards.issue_card(None, make_member(tree["w4"], first_name="Out", last_name="Sider"))
    db.session.commit()
    assert client.get(confirm_url(other)).status_code == 404
    login(client, "admin@test.org")
    assert client.get(f"{LIST}{card.id}/confirm/suspend").status_code == 404  # only revoking asks first

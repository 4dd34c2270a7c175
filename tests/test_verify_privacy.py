"""The public verification page names nobody for a revoked card or a deleted member's card.

Before, /verify/<code> showed the holder's first name, initial and photo
whatever the verdict: a stolen, revoked card still told whoever scanned it
whose card it was, and so did the card of a member deleted from the register.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.extensions import db
from app.services import cards
from app.services import members as member_service


@pytest.fixture()
def card(tree, make_member):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa")
    img = io.BytesIO()
    Image.new("RGB", (60, 80), "green").save(img, "PNG")
    member_service.set_photo(None, member, img.getvalue())
    return cards.issue_card(None, member)


def verdict(client, card) -> tuple[str, dict]:
    token = cards.card_token(card)
    db.session.commit()
    html = client.get(f"/verify/{token}").get_data(as_text=True)
    return html, client.post("/api/v1/cards/verify", json={"token": token}).get_json()


def shows_holder(html: str) -> bool:
    return any(mark in html for mark in ('id="holder-name"', 'id="holder-photo"', "Chanda", "data:image/"))


def test_a_valid_or_suspended_card_shows_its_holder(client, card):
    html, _answer = verdict(client, card)
    assert 'data-status="valid"' in html and shows_holder(html)
    cards.suspend_card(None, card, "dues unpaid")
    html, _answer = verdict(client, card)
    assert 'data-status="suspended"' in html and shows_holder(html)


def test_a_revoked_card_shows_neither_name_nor_photo(client, card):
    cards.revoke_card(None, card, "reported stolen")
    html, answer = verdict(client, card)
    assert 'data-status="revoked"' in html and not shows_holder(html)
    assert answer["status"] == "revoked" and set(answer) == {"status", "card_number", "expires_on", "message"}
    assert "Chanda" not in str(answer)


def test_a_deleted_members_card_shows_neither_name_nor_photo(client, card):
    member_service.delete_member(None, card.member)
    assert card.status == "active"  # the card itself was never revoked
    html, answer = verdict(client, card)
    assert 'data-status="revoked"' in html and not shows_holder(html)
    assert answer["status"] == "revoked" and "Chanda" not in str(answer)

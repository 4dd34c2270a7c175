"""Portal fixtures: a member (Chanda, ward W1) signed in through the real login form, events, cards.

The geography is tests/conftest.py's ``tree``: P1 > D1 > C1 > W1, W2 ;
P1 > D2 > C2 > W3 ; P2 > D3 > C3 > W4. Chanda's events are those of W1, C1,
D1 and P1 (her ward and the units above it).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import events as event_service
from tests.conftest import csrf_token_from, login

EMAIL = "chanda@test.org"
OTHER_EMAIL = "bwalya@test.org"


@pytest.fixture()
def member(tree, make_member):
    return make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", phone="0977123456",
                       email="chanda.m@example.org")


@pytest.fixture()
def member_user(make_user, member):
    return make_user(EMAIL, "member", member=member)


@pytest.fixture()
def portal(client, member_user):
    """A test client signed in as Chanda."""
    response = login(client, EMAIL)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture()
def other(tree, make_member, make_user):
    """Bwalya: another member of the same ward W1, with her own login."""
    bwalya = make_member(tree["w1"], first_name="Bwalya", last_name="Phiri", phone="0966555444",
                         email="bwalya.p@example.org")
    make_user(OTHER_EMAIL, "member", member=bwalya)
    return bwalya


@pytest.fixture()
def make_event(tree):
    counter = {"n": 0}

    def make(unit=None, *, days: float = 3, hours: float = 2, status: str = "upcoming", title: str | None = None,
             **fields):
        counter["n"] += 1
        start = utcnow() + timedelta(days=days)
        return event_service.create_event(None, {
            "title": title or f"Event {counter['n']}", "start_at": start, "end_at": start + timedelta(hours=hours),
            "unit_id": (unit or tree["w1"]).id, "status": status, **fields})

    return make


@pytest.fixture()
def make_card():
    def make(member, **fields):
        card = card_service.issue_card(None, member, fields.pop("card_type", "standard"))
        for key, value in fields.items():
            setattr(card, key, value)
        db.session.flush()
        return card

    return make


def post(client, url: str, data: dict | None = None, *, token: bool = True):
    """POST a portal form the way a browser does: with the CSRF token of a page the client just loaded."""
    form = dict(data or {})
    if token:
        form["csrf_token"] = csrf_token_from(client.get("/").get_data(as_text=True))
    db.session.commit()
    return client.post(url, data=form)


def text(response) -> str:
    return response.get_data(as_text=True)

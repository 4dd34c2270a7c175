"""A member never sees or changes another member's data by changing an id in a URL or an API path.

Chanda and Bwalya are members of the same ward W1 (so they see the same
events); Kondwani is a member of another province (W4). For every portal
route and every self-service API operation, Chanda tries Bwalya's and
Kondwani's ids (member, card, event, registration) wherever an id can go: in
the path, in the query string, in the form. She gets her own data or 403/404,
and nothing of theirs changes.
"""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from app.extensions import db
from app.services import cards as card_service
from app.services import events as event_service
from tests.api.conftest import ApiClient
from tests.conftest import login
from tests.portal.conftest import post, text

PORTAL_GETS = ("/", "/card", "/card/qr.png", "/card/pdf", "/events", "/profile", "/profile/data", "/profile/delete")
ID_ARGS = ("id", "member_id", "card_id", "user_id", "member", "card")


@pytest.fixture()
def people(tree, member, member_user, other, make_member, make_user, make_card, make_event):
    """Chanda (signed in later), Bwalya (same ward) and Kondwani (another province), each with a card."""
    kondwani = make_member(tree["w4"], first_name="Kondwani", last_name="Banda")
    make_user("kondwani@test.org", "member", member=kondwani)
    cards = {m.id: make_card(m) for m in (member, other, kondwani)}
    shared = make_event(tree["w1"], title="Ward meeting")  # Chanda and Bwalya may both attend
    far = make_event(tree["w4"], title="Far meeting")  # Kondwani's only
    event_service.register(None, shared, other)
    event_service.register(None, far, kondwani)
    db.session.commit()
    return {"me": member, "bwalya": other, "kondwani": kondwani, "cards": cards, "shared": shared, "far": far}


def _others(people):
    return [people["bwalya"], people["kondwani"]]


def _untouched(people):
    db.session.expire_all()
    assert event_service.registration_for(people["shared"], people["bwalya"]).status == "registered"
    assert event_service.registration_for(people["far"], people["kondwani"]).status == "registered"
    for m in _others(people):
        assert people["cards"][m.id].status == "active"


def test_portal_pages_show_only_her_own_data_whatever_ids_are_added(portal, people):
    mine = people["cards"][people["me"].id]
    for person in _others(people):
        card = people["cards"][person.id]
        for path in PORTAL_GETS:
            for arg in ID_ARGS:
                for value in (person.id, card.id):
                    response = portal.get(path, query_string={arg: value})
                    assert response.status_code == 200, (path, arg)
                    if response.mimetype in ("text/html", "application/json"):  # pages, "my data"
                        page = text(response)
                        assert person.membership_number not in page and card.card_number not in page
                        assert person.first_name not in page
        qr = portal.get("/card/qr.png", query_string={"card_id": card.id, "member_id": person.id})
        decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.data)))[0].text
        assert decoded.endswith(card_service.card_token(mine))
    _untouched(people)


def test_portal_event_routes_refuse_other_members_events_and_registrations(portal, people):
    far = people["far"]
    assert portal.get(f"/events/{far.id}").status_code == 404
    for action in ("register", "cancel"):
        for extra in ({}, {"member_id": people["kondwani"].id}):
            assert post(portal, f"/events/{far.id}/{action}", extra).status_code == 404
    # The shared event: cancelling (with Bwalya's id in the form) touches Chanda's registration only.
    shared = people["shared"]
    response = post(portal, f"/events/{shared.id}/cancel", {"member_id": people["bwalya"].id})
    assert response.status_code == 302
    assert "You are not registered for this event." in text(portal.get(f"/events/{shared.id}"))
    # Registering with Bwalya's id registers Chanda, never anyone else.
    post(portal, f"/events/{shared.id}/register", {"member_id": people["bwalya"].id})
    db.session.expire_all()
    assert event_service.registration_for(shared, people["me"]).status == "registered"
    page = text(portal.get(f"/events/{shared.id}"))
    assert "Bwalya" not in page and people["bwalya"].membership_number not in page
    _untouched(people)


def test_portal_lists_never_show_other_members_registrations(portal, people):
    page = text(portal.get("/events"))
    assert "Far meeting" not in page
    assert 'id="my-registrations"' not in page  # Bwalya's registration is not Chanda's
    _untouched(people)


def test_api_self_service_acts_on_the_callers_own_record_only(client, people):
    me = ApiClient(client).login("chanda@test.org")
    own = people["me"]
    for person in _others(people):
        card = people["cards"][person.id]
        for arg in ID_ARGS:
            assert me.get("/me", query_string={arg: person.id}).get_json()["id"] == own.id
            assert me.get("/me/card", query_string={arg: card.id}).get_json()["member_id"] == own.id
            assert all(i["member_id"] == own.id
                       for i in me.get("/me/events", query_string={arg: person.id}).get_json()["items"])
        body = me.request("PATCH", "/me", json={"id": person.id, "member_id": person.id, "phone": "0977999888"})
        assert body.status_code == 422 and {"id", "member_id"} <= set(body.get_json()["details"]["fields"])
        # The staff-style paths with another member's ids.
        for path in (f"/members/{person.id}", f"/members/{person.id}/card", f"/members/{person.id}/events",
                     f"/cards/{card.id}", f"/cards/{card.id}/qr", f"/cards/{card.id}/pdf"):
            assert me.get(path).status_code in (403, 404), path
        assert me.put(f"/members/{person.id}", json={"phone": "0977999888"}).status_code in (403, 404)
    assert me.delete(f"/events/{people['shared'].id}/register/{people['bwalya'].id}").status_code == 403
    assert me.delete(f"/events/{people['far'].id}/register/{people['kondwani'].id}").status_code == 404
    assert me.delete(f"/events/{people['far'].id}/register").status_code == 404
    assert me.post(f"/events/{people['far'].id}/register").status_code == 404
    assert me.post(f"/events/{people['shared'].id}/register",
                   json={"member_id": people["bwalya"].id}).status_code == 403
    db.session.expire_all()
    for person in _others(people):
        assert person.phone != "+260977999888"
    _untouched(people)


def test_another_members_session_sees_their_own_card_not_chandas(client, people):
    """The same URLs, signed in as Bwalya, answer Bwalya's data: nothing is keyed by anything but the session."""
    login(client, "bwalya@test.org")
    page = text(client.get("/card"))
    assert people["cards"][people["bwalya"].id].card_number in page
    assert people["cards"][people["me"].id].card_number not in page
    as_bwalya = ApiClient(client).login("bwalya@test.org")
    assert as_bwalya.get("/me").get_json()["id"] == people["bwalya"].id

"""One scan parser (cards.scanned_token) and one check-in input parser (services.checkin_input).

What a phone scans from a card is the URL printed in its QR code; people
also type or paste the bare code. Before, ``POST /api/v1/cards/verify``
answered "This is not a membership card code" to the URL. Now the public page,
the verify API and the door (console and API) read both alike, and refuse
garbage of any size with a verdict or a 4xx, never a 500. The console's
check-in and the API's take the same body with the same rules: a
61-character gate name was 422 in one and silently cut short in the other.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import EventCheckin
from app.models.base import utcnow
from app.services import cards
from app.services import events as ev
from tests.api.conftest import assert_error
from tests.conftest import csrf_token_from, login


@pytest.fixture()
def door(client, tree, staff, make_member):
    """An open event of W1 with walk-ins, a member with a card, and a console session at its door."""
    now = utcnow()
    event = ev.create_event(staff["coordinator"], {
        "title": "Ward meeting", "start_at": now - timedelta(hours=1), "end_at": now + timedelta(hours=3),
        "unit_id": tree["w1"].id, "status": "upcoming", "walk_ins_allowed": True})
    member = make_member(tree["w1"], first_name="Mutale", last_name="Kabwe")
    card = cards.issue_card(None, member)
    db.session.commit()
    login(client, "coord@test.org")
    html = client.get(f"/admin/events/{event.id}/checkin").get_data(as_text=True)
    csrf = csrf_token_from(html.replace('<meta name="csrf-token" content="', '<input name="csrf_token" value="'))
    return {"event": event, "member": member, "card": card, "csrf": csrf,
            "token": cards.card_token(card), "url": cards.verification_url(card, "https://cards.example.org")}


def console_checkin(client, door, body):
    return client.post(f"/admin/events/{door['event'].id}/checkin", json=body, headers={"X-CSRFToken": door["csrf"]})


def api_checkin(as_coord, door, body):
    return as_coord.post(f"/events/{door['event'].id}/checkin", json=body)


@pytest.mark.parametrize("raw,expected", [
    ("CODE_-123", "CODE_-123"),
    ("  CODE  ", "CODE"),
    ("CODE/", "CODE"),
    ("https://cards.example.org/verify/CODE", "CODE"),
    ("https://cards.example.org/muster/verify/CODE/", "CODE"),
    ("http://localhost:5000/verify/CODE?utm_source=qr#top", "CODE"),
    ("/verify/CODE", "CODE"),
    ("https://evil.example/verify/", ""),
    ("https://cards.example.org/members/CODE", ""),
    ("/verify/../../etc/passwd", ""),
    ("x" * 2049, ""),
    (None, ""),
    (12345, ""),
])
def test_the_scan_parser(raw, expected):
    assert cards.scanned_token(raw) == expected


def test_every_entry_point_reads_the_bare_code_and_the_qr_url(client, api, as_coord, door):
    token, url = door["token"], door["url"]
    for path in (f"/verify/{token}", urlsplit(url).path, urlsplit(url).path + "/", urlsplit(url).path + "?from=qr"):
        html = client.get(path).get_data(as_text=True)
        assert 'data-status="valid"' in html and "Mutale K." in html, path
    for scanned in (token, url, f"  {url}?from=qr  "):
        answer = api.post("/cards/verify", json={"token": scanned})
        assert answer.status_code == 200 and answer.get_json()["status"] == "valid", scanned
    first = api_checkin(as_coord, door, {"token": url, "gate": "North"}).get_json()
    assert first["result"] == "admitted" and first["member"]["id"] == door["member"].id
    again = console_checkin(client, door, {"token": url}).get_json()
    assert again["result"] == "already_checked_in" and again["first_gate"] == "North"
    bare = console_checkin(client, door, {"token": token}).get_json()
    assert bare["result"] == "already_checked_in"


GARBAGE = ["", " ", "x", "A" * 106, "A" * 2048, "A" * 2049, "A" * 100_000, "💥" * 5000, "\u202e" * 50,
           "https://evil.example/verify/", "https://x.example/verify/" + "A" * 3000, "/verify/../../etc/passwd",
           "javascript:alert(1)", "%00", "<script>alert(1)</script>"]


def test_garbage_of_any_size_is_refused_never_a_server_error(client, api, as_coord, door):
    for junk in GARBAGE:
        page = client.get("/verify/" + quote(junk, safe=""))
        assert page.status_code < 500, (junk[:30], page.status_code)  # a verdict, or routing's 404 / redirect
        if junk == "":  # /verify/ itself: the index's form (issue 11), no verdict
            assert page.status_code == 200 and 'id="verify-lookup"' in page.get_data(as_text=True)
        elif page.status_code == 200:
            html = page.get_data(as_text=True)
            assert 'data-status="invalid"' in html and 'id="holder-name"' not in html, junk[:30]
        answer = api.post("/cards/verify", json={"token": junk})
        if junk == "":
            assert_error(answer, 422, "token")  # nothing was given
        else:
            assert answer.status_code == 200 and answer.get_json()["status"] == "invalid", junk[:30]
        for response in (api_checkin(as_coord, door, {"token": junk}), console_checkin(client, door, {"token": junk})):
            assert response.status_code == 200, (junk[:30], response.status_code)
            assert (response.get_json()["result"], response.get_json()["reason"]) == ("rejected", "invalid_token")
    assert_error(api.post("/cards/verify", data='{"token": "' + "A" * 2_000_000 + '"}',
                          content_type="application/json"), 413)
    assert_error(api.post("/cards/verify", json={"token": 12}), 400, "token")
    assert db.session.scalar(select(EventCheckin.id)) is None


@pytest.mark.parametrize("body, status, field", [
    ({"token": "x", "gate": "g" * 61}, 422, "gate"),
    ({"token": "x", "gate": 7}, 400, "gate"),
    ({}, 422, "token"),
    ({"token": "x", "member_id": 1}, 422, "token"),
    ({"token": 12}, 400, "token"),
    ({"member_id": "12"}, 400, "member_id"),
    ({"member_id": 0}, 422, "member_id"),
    ({"member_id": 10**30}, 422, "member_id"),
    ({"token": "x", "nonce": "not a nonce!"}, 422, "nonce"),
    ({"token": "x", "nonce": "n" * 65}, 422, "nonce"),
    ({"token": "x", "extra": 1}, 422, "extra"),
])
def test_console_and_api_refuse_the_same_bodies_alike(client, as_coord, door, body, status, field):
    from_api = assert_error(api_checkin(as_coord, door, body), status, field)
    console = console_checkin(client, door, body)
    assert console.status_code == status
    assert console.get_json() == from_api


def test_a_60_character_gate_is_kept_whole_by_both(client, as_coord, door, make_member, tree):
    gate = "Main entrance, north side of the community hall, door no. 1"[:60].ljust(60, "!")
    api_answer = api_checkin(as_coord, door, {"token": door["token"], "gate": gate}).get_json()
    assert api_answer["result"] == "admitted" and api_answer["gate"] == gate
    other = make_member(tree["w1"])
    db.session.commit()
    console_answer = console_checkin(client, door, {"member_id": other.id, "gate": f"  {gate}  "}).get_json()
    assert console_answer["result"] == "admitted" and console_answer["gate"] == gate
    assert set(db.session.scalars(select(EventCheckin.gate))) == {gate}


def test_the_console_form_posts_a_member_id_as_text(client, door):
    response = client.post(f"/admin/events/{door['event'].id}/checkin",
                           data={"member_id": str(door["member"].id), "gate": "", "csrf_token": door["csrf"]})
    assert response.status_code == 200 and response.get_json()["result"] == "admitted"

"""/api/v1/events: CRUD in scope, registration (self and staff), attendees, attendance, check-in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import EventCheckin
from app.models.base import utcnow
from app.services import cards
from app.services import events as ev
from tests.api.conftest import assert_error

HOUR = timedelta(hours=1)


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def body(unit, **fields):
    now = utcnow()
    data = {"title": "Ward meeting", "start_at": iso(now - HOUR), "end_at": iso(now + 3 * HOUR),
            "unit_id": unit.id, "status": "upcoming"}
    data.update(fields)
    return data


@pytest.fixture()
def linked(tree, make_member, make_user):
    """A member-role login linked to a member of W1."""
    member = make_member(tree["w1"], first_name="Mapalo", last_name="Banda")
    make_user("mapalo@test.org", "member", member=member)
    return member


def make(api_client, unit, **fields) -> dict:
    response = api_client.post("/events", json=body(unit, **fields))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- CRUD -----------------------------------------------------------------------------------


def test_coordinator_creates_an_event_for_their_ward(as_coord, tree):
    response = as_coord.post("/events", json=body(tree["w1"], capacity=100, checkin_rule="once_per_day",
                                                   walk_ins_allowed=True, venue="Community hall"))
    assert response.status_code == 201
    event = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/events/{event['id']}")
    assert event["status"] == "ongoing" and event["capacity"] == 100 and event["venue"] == "Community hall"
    assert event["checkin_rule"] == "once_per_day" and event["walk_ins_allowed"] is True
    assert event["counts"] == {"registered": 0, "waitlisted": 0, "attended": 0}
    assert event["start_at"].endswith("+00:00")
    assert as_coord.get(f"/events/{event['id']}").get_json()["title"] == "Ward meeting"


def test_create_refusals(as_coord, as_member, tree):
    assert_error(as_coord.post("/events", json=body(tree["w4"])), 422, "unit_id")
    now = utcnow()
    assert_error(as_coord.post("/events", json=body(tree["w1"], end_at=iso(now - 2 * HOUR))), 422, "end_at")
    assert_error(as_coord.post("/events", json=body(tree["w1"], registration_deadline=iso(now))), 422,
                 "registration_deadline")
    assert_error(as_coord.post("/events", json=body(tree["w1"], capacity="ten")), 400, "capacity")
    assert_error(as_coord.post("/events", json=body(tree["w1"], start_at="soon")), 422, "start_at")
    assert_error(as_coord.post("/events", json=body(tree["w1"], colour="red")), 422, "colour")
    assert_error(as_coord.post("/events", json=body(tree["w1"], status="completed")), 422, "status")
    assert_error(as_coord.post("/events", data="[1]", content_type="application/json"), 400)
    assert_error(as_member.post("/events", json=body(tree["w1"])), 403)


def test_list_is_scoped_and_filtered(as_coord, as_admin, tree):
    mine = make(as_admin, tree["w1"], title="Ward one AGM")
    make(as_admin, tree["w4"], title="Far away rally", event_type="rally")
    draft = make(as_admin, tree["w1"], title="Planning", status="draft")
    later = utcnow() + timedelta(days=30)
    future = make(as_admin, tree["w1"], title="Training day", start_at=iso(later), end_at=iso(later + HOUR))

    listed = as_coord.get("/events").get_json()
    assert {e["id"] for e in listed["items"]} == {mine["id"], draft["id"], future["id"]}
    assert listed["total"] == 3
    assert [e["id"] for e in as_admin.get("/events?status=upcoming").get_json()["items"]] == [future["id"]]
    assert {e["id"] for e in as_admin.get("/events?status=draft,ongoing").get_json()["items"]} >= {
        draft["id"], mine["id"]}
    assert as_admin.get(f"/events?unit_id={tree['p2'].id}").get_json()["total"] == 1
    assert as_admin.get("/events?q=agm").get_json()["items"][0]["id"] == mine["id"]
    window = f"/events?from={iso(later - HOUR)}&to={iso(later + 2 * HOUR)}"
    assert [e["id"] for e in as_admin.get(window.replace("+", "%2B")).get_json()["items"]] == [future["id"]]
    paged = as_admin.get("/events?per_page=2&page=2").get_json()
    assert len(paged["items"]) == 2 and paged["links"]["prev"] and paged["links"]["next"] is None
    assert_error(as_admin.get("/events?status=party"), 422, "status")
    assert_error(as_admin.get("/events?from=yesterday"), 422, "from")


def test_members_see_published_events_of_their_units(api, as_admin, tree, linked):
    w1 = make(as_admin, tree["w1"])
    p1 = make(as_admin, tree["p1"], title="Provincial rally")
    make(as_admin, tree["w1"], status="draft")
    w4 = make(as_admin, tree["w4"])
    me = api.login("mapalo@test.org")
    assert {e["id"] for e in me.get("/events").get_json()["items"]} == {w1["id"], p1["id"]}
    assert_error(me.get(f"/events/{w4['id']}"), 404)
    assert_error(me.put(f"/events/{w1['id']}", json={"title": "Mine now"}), 403)


def test_update_and_delete(as_coord, as_admin, tree, make_member):
    event = make(as_coord, tree["w1"])
    updated = as_coord.put(f"/events/{event['id']}", json={"capacity": 5, "status": "cancelled"}).get_json()
    assert updated["capacity"] == 5 and updated["status"] == "cancelled"
    assert_error(as_coord.put(f"/events/{event['id']}", json={"end_at": event["start_at"]}), 422, "end_at")
    assert_error(as_coord.delete(f"/events/{event['id']}"), 403)  # coordinators cannot delete
    far = make(as_admin, tree["w4"])
    assert_error(as_coord.get(f"/events/{far['id']}"), 404)
    assert_error(as_coord.put(f"/events/{far['id']}", json={"title": "x"}), 404)
    assert as_admin.delete(f"/events/{event['id']}").status_code == 204
    assert_error(as_admin.get(f"/events/{event['id']}"), 404)
    # An event with attendance is kept.
    held = make(as_admin, tree["w1"], walk_ins_allowed=True)
    m = make_member(tree["w1"])
    assert as_admin.put(f"/events/{held['id']}/attendance/{m.id}", json={"status": "attended"}).status_code == 200
    assert_error(as_admin.delete(f"/events/{held['id']}"), 409)


# --- registration -----------------------------------------------------------------------------


def test_members_register_themselves(api, as_admin, tree, linked, make_member):
    event = make(as_admin, tree["w1"], capacity=1)
    me = api.login("mapalo@test.org")
    response = me.post(f"/events/{event['id']}/register")
    assert response.status_code == 201
    reg = response.get_json()
    assert reg["status"] == "registered" and reg["source"] == "self" and reg["member_id"] == linked.id
    assert me.post(f"/events/{event['id']}/register", json={}).status_code == 200  # already registered
    other = make_member(tree["w1"])
    assert_error(me.post(f"/events/{event['id']}/register", json={"member_id": other.id}), 403)
    mine = me.get(f"/members/{linked.id}/events").get_json()
    assert [i["event"]["id"] for i in mine["items"]] == [event["id"]]
    assert_error(me.get(f"/members/{other.id}/events"), 403)
    # Staff fill the last place: the next one waits.
    assert as_admin.post(f"/events/{event['id']}/register", json={"member_id": other.id}).get_json()["status"] \
        == "waitlisted"
    # Cancelling their own registration moves the waiting list up.
    cancelled = me.delete(f"/events/{event['id']}/register/{linked.id}").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["promoted_member_ids"] == [other.id]


def test_self_registration_rules(api, as_admin, as_member, tree, linked):
    now = utcnow()
    late = make(as_admin, tree["w1"], start_at=iso(now + 2 * HOUR), end_at=iso(now + 3 * HOUR),
                registration_deadline=iso(now - HOUR))
    me = api.login("mapalo@test.org")
    assert_error(me.post(f"/events/{late['id']}/register"), 409)
    far = make(as_admin, tree["w4"])
    assert_error(me.post(f"/events/{far['id']}/register"), 404)
    open_event = make(as_admin, tree["w1"])
    # A member login with no member behind it.
    assert_error(as_member.post(f"/events/{open_event['id']}/register"), 404)  # sees no events at all
    cancelled = make(as_admin, tree["w1"], status="cancelled")
    assert_error(as_admin.post(f"/events/{cancelled['id']}/register", json={"member_id": linked.id}), 409)


def test_staff_register_members_of_their_area(as_coord, as_admin, tree, make_member):
    event = make(as_coord, tree["w1"])
    inside, outside = make_member(tree["w1"]), make_member(tree["w4"])
    assert as_coord.post(f"/events/{event['id']}/register", json={"member_id": inside.id}).status_code == 201
    assert_error(as_coord.post(f"/events/{event['id']}/register", json={"member_id": outside.id}), 422, "member_id")
    assert_error(as_admin.post(f"/events/{event['id']}/register", json={"member_id": outside.id}), 422, "member_id")
    assert_error(as_coord.post(f"/events/{event['id']}/register", json={"member_id": "1"}), 400, "member_id")
    assert_error(as_coord.delete(f"/events/{event['id']}/register/{outside.id}"), 404)
    other = make_member(tree["w1"])
    assert_error(as_coord.delete(f"/events/{event['id']}/register/{other.id}"), 404)  # not registered
    assert as_coord.delete(f"/events/{event['id']}/register/{inside.id}").get_json()["status"] == "cancelled"


def test_attendees_and_attendance(as_coord, as_admin, api, tree, linked, make_member):
    event = make(as_coord, tree["w1"])
    a, b = make_member(tree["w1"], last_name="Aaa"), make_member(tree["w1"], last_name="Bbb")
    for m in (a, b):
        as_coord.post(f"/events/{event['id']}/register", json={"member_id": m.id})
    marked = as_coord.put(f"/events/{event['id']}/attendance/{a.id}", json={"status": "attended", "gate": "Desk"})
    assert marked.get_json()["status"] == "attended" and marked.get_json()["checkin_gate"] == "Desk"
    listed = as_coord.get(f"/events/{event['id']}/attendees").get_json()
    assert [i["member"]["last_name"] for i in listed["items"]] == ["Aaa", "Bbb"]
    assert listed["counts"]["attended"] == 1 and listed["counts"]["registered"] == 1
    assert as_coord.get(f"/events/{event['id']}/attendees?status=attended").get_json()["total"] == 1
    assert_error(as_coord.get(f"/events/{event['id']}/attendees?status=maybe"), 422, "status")
    assert_error(as_coord.put(f"/events/{event['id']}/attendance/{b.id}", json={"status": "late"}), 422, "status")
    assert_error(as_coord.put(f"/events/{event['id']}/attendance/{b.id}", json={}), 422, "status")
    undo = as_coord.put(f"/events/{event['id']}/attendance/{a.id}", json={"status": "registered"})
    assert undo.get_json()["status"] == "registered" and undo.get_json()["checked_in_at"] is None
    assert_error(api.login("mapalo@test.org").get(f"/events/{event['id']}/attendees"), 403)
    history = as_coord.get(f"/members/{a.id}/events").get_json()
    assert history["total"] == 1 and history["items"][0]["status"] == "registered"


# --- check-in -------------------------------------------------------------------------------


def count_checkins() -> int:
    return db.session.scalar(select(func.count()).select_from(EventCheckin))


def test_checkin_by_card_duplicates_and_revoked(as_coord, tree, make_member):
    event = make(as_coord, tree["w1"], walk_ins_allowed=True)
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwale")
    token = cards.card_token(cards.issue_card(None, member))
    url = f"/events/{event['id']}/checkin"

    first = as_coord.post(url, json={"token": token, "gate": "North", "nonce": "a1"})
    assert first.status_code == 200
    answer = first.get_json()
    assert answer["result"] == "admitted" and answer["walk_in"] is True
    assert answer["member"]["full_name"] == "Chanda Mwale"
    dup = as_coord.post(url, json={"token": token, "gate": "South", "nonce": "a2"}).get_json()
    assert dup["result"] == "already_checked_in"
    assert (dup["first_gate"], dup["first_checked_in_at"]) == ("North", answer["checked_in_at"])
    replay = as_coord.post(url, json={"token": token, "gate": "North", "nonce": "a1"}).get_json()
    assert replay["result"] == "admitted" and replay["replayed"] is True
    assert count_checkins() == 1

    gone = make_member(tree["w1"])
    card = cards.issue_card(None, gone)
    cards.revoke_card(None, card, "reported stolen")
    revoked = as_coord.post(url, json={"token": cards.card_token(card), "nonce": "a3"}).get_json()
    assert (revoked["result"], revoked["reason"]) == ("rejected", "card_revoked")
    assert "revoked" in revoked["message"]
    assert count_checkins() == 1


@pytest.mark.parametrize("payload, status, field", [
    ({}, 422, "token"),
    ({"token": "x", "member_id": 1}, 422, "token"),
    ({"token": 12}, 400, "token"),
    ({"member_id": "12"}, 400, "member_id"),
    ({"member_id": 0}, 422, "member_id"),
    ({"token": "x", "nonce": "not a nonce!"}, 422, "nonce"),
    ({"token": "x", "nonce": "n" * 65}, 422, "nonce"),
    ({"token": "x", "gate": "g" * 61}, 422, "gate"),
    ({"token": "x", "extra": 1}, 422, "extra"),
])
def test_checkin_malformed_requests(as_coord, tree, payload, status, field):
    event = make(as_coord, tree["w1"])
    assert_error(as_coord.post(f"/events/{event['id']}/checkin", json=payload), status, field)


def test_checkin_bad_input_is_a_clear_rejection(app, as_coord, tree):
    event = make(as_coord, tree["w1"])
    url = f"/events/{event['id']}/checkin"
    for token in ("garbage", "", "😀" * 1000, "A" * 100_000):
        answer = as_coord.post(url, json={"token": token}).get_json()
        assert (answer["result"], answer["reason"]) == ("rejected", "invalid_token"), token[:20]
    huge = '{"token": "' + "A" * (app.config["API_MAX_BODY_BYTES"] + 10) + '"}'
    assert_error(as_coord.post(url, data=huge, content_type="application/json"), 413)
    assert_error(as_coord.post(url, data='{"token": "a\\u0000b"}', content_type="application/json"), 400)
    as_coord.put(f"/events/{event['id']}", json={"status": "cancelled"})
    closed = as_coord.post(url, json={"member_id": 1}).get_json()
    assert (closed["result"], closed["reason"]) == ("rejected", "event_cancelled")
    now = utcnow()
    over = make(as_coord, tree["w1"], start_at=iso(now - 5 * HOUR), end_at=iso(now - HOUR))
    finished = as_coord.post(f"/events/{over['id']}/checkin", json={"member_id": 1}).get_json()
    assert finished["reason"] == "event_finished"
    assert count_checkins() == 0


def test_checkin_needs_events_update_over_the_event(api, as_coord, as_admin, tree, linked):
    event = make(as_admin, tree["w1"])
    far = make(as_admin, tree["w4"])
    assert_error(api.login("mapalo@test.org").post(f"/events/{event['id']}/checkin", json={"member_id": linked.id}),
                 403)
    assert_error(as_coord.post(f"/events/{far['id']}/checkin", json={"member_id": linked.id}), 404)
    assert_error(api.post(f"/events/{event['id']}/checkin", json={"member_id": linked.id}), 401)


def test_openapi_documents_the_checkin_reasons(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    reason = doc["components"]["schemas"]["CheckinResult"]["properties"]["reason"]
    reasons = next(branch["enum"] for branch in reason["anyOf"] if branch.get("type") == "string")
    assert set(ev.REASONS) <= set(reasons)
    assert doc["paths"]["/events/{event_id}/checkin"]["post"]["operationId"] == "api.checkin"

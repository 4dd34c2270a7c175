"""Self-service under /api/v1: /me, /me/card (+ qr, pdf), /me/events, and registering oneself for events.

Every answer is also held to the OpenAPI document by the API client (tests/api/contract.py).
"""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, EventRegistration
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import events as event_service
from tests.api.conftest import assert_error


@pytest.fixture()
def chanda(tree, make_member, make_user):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", phone="0977123456",
                         email="chanda.m@example.org", address="Plot 1, Kasama")
    make_user("chanda@test.org", "member", member=member)
    return member


@pytest.fixture()
def me(api, chanda):
    return api.login("chanda@test.org")


def patch(client, body):
    return client.request("PATCH", "/me", json=body)


def event(tree, unit="w1", *, days=3.0, hours=2.0, **fields):
    start = utcnow() + timedelta(days=days)
    return event_service.create_event(None, {"title": fields.pop("title", "Meeting"), "start_at": start,
                                             "end_at": start + timedelta(hours=hours), "unit_id": tree[unit].id,
                                             "status": fields.pop("status", "upcoming"), **fields})


# --- profile ---------------------------------------------------------------------------------


def test_me_is_the_members_own_record(me, chanda):
    body = me.get("/me").get_json()
    assert body["id"] == chanda.id and body["membership_number"] == chanda.membership_number
    assert (body["first_name"], body["last_name"], body["status"]) == ("Chanda", "Mwansa", "active")
    assert body["unit"] == {"id": chanda.unit.id, "name": "Lukashya Ward 1", "code": "W1", "level": "ward"}
    assert (body["phone"], body["email"], body["address"]) == ("+260977123456", "chanda.m@example.org",
                                                               "Plot 1, Kasama")
    assert "national_id" not in body and "notes" not in body


def test_a_login_without_a_member_gets_404_and_anonymous_401(api, as_admin, as_member, staff):
    for client in (as_admin, as_member):  # staff, and a member-role login with no member behind it
        for path in ("/me", "/me/card", "/me/card/qr", "/me/card/pdf", "/me/events"):
            body = assert_error(client.get(path), 404)
            assert "not linked to a membership record" in body["error"]
        assert_error(patch(client, {"phone": "0977000111"}), 404)
    for path in ("/me", "/me/card", "/me/events"):
        assert_error(api.get(path), 401)


def test_patch_changes_contact_fields_with_the_registrys_rules(me, chanda):
    body = patch(me, {"phone": "0966 111 222", "email": " New.Address@Example.ORG ", "address": "Plot 9"}).get_json()
    # A new email waits for the link mailed to it (tests/portal/test_profile.py follows one); the rest changes now.
    assert (body["phone"], body["email"], body["address"]) == ("+260966111222", "chanda.m@example.org", "Plot 9")
    assert body["pending_email"] == "new.address@example.org"
    db.session.expire_all()
    assert chanda.phone == "+260966111222"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "member.update")
                               .order_by(AuditEntry.id.desc())).first()
    assert set(entry.changes) == {"phone", "address"}
    cleared = patch(me, {"address": None, "email": None}).get_json()
    assert_error(patch(me, {"email": ""}), 422, "email")  # empty is no address; null clears it
    assert cleared["address"] is None and cleared["email"] is None and cleared["phone"] == "+260966111222"
    assert patch(me, {}).status_code == 200  # nothing sent, nothing changed


def test_patch_lists_every_field_at_fault_at_once(me, chanda):
    body = assert_error(patch(me, {"phone": "12", "email": "not-an-email", "address": "x" * 501}), 422)
    assert set(body["details"]["fields"]) == {"phone", "email", "address"}
    assert "not a" in body["details"]["fields"]["phone"]
    db.session.expire_all()
    assert chanda.phone == "+260977123456"


def test_patch_refuses_other_fields(me, chanda):
    body = assert_error(patch(me, {"first_name": "Someone", "unit_id": 1, "status": "active", "phone": "0966111222"}),
                        422)
    assert {"first_name", "unit_id", "status"} <= set(body["details"]["fields"])
    db.session.expire_all()
    assert chanda.first_name == "Chanda" and chanda.phone == "+260977123456"


def test_patch_with_wrong_types_is_400(me):
    assert_error(patch(me, {"phone": 977123456}), 400, "phone")
    assert_error(me.request("PATCH", "/me", data="not json", content_type="application/json"), 400)


def test_duplicates_are_refused_without_saying_whose(me, tree, make_member):
    make_member(tree["w4"], first_name="Secret", last_name="Holder", phone="0955000111", email="taken@example.org")
    for body in ({"phone": "0955000111"}, {"email": "TAKEN@example.org"}):
        error = assert_error(patch(me, body), 409, next(iter(body)))
        assert "Secret" not in error["error"] and "Holder" not in error["error"]
        assert error["details"].get("existing_id") is None


# --- card ------------------------------------------------------------------------------------


def test_card_none_then_active(me, chanda):
    body = assert_error(me.get("/me/card"), 404)
    assert "no" in body["error"].lower() and "card" in body["error"]
    card = card_service.issue_card(None, chanda)
    body = me.get("/me/card").get_json()
    assert (body["id"], body["card_number"], body["status"]) == (card.id, card.card_number, "active")
    assert body["transactions"][0]["type"] == "issued"


def test_card_qr_png_and_svg_hold_a_credential_that_verifies(me, chanda):
    card = card_service.issue_card(None, chanda)
    response = me.get("/me/card/qr")
    assert response.mimetype == "image/png" and response.headers["Cache-Control"] == "private, no-store"
    text = zxingcpp.read_barcodes(Image.open(io.BytesIO(response.data)))[0].text
    verdict = card_service.verify_token(card_service.scanned_token(text))
    assert (verdict.status, verdict.card_number) == ("valid", card.card_number)
    svg = me.get("/me/card/qr", query_string={"format": "svg"})
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert_error(me.get("/me/card/qr", query_string={"format": "gif"}), 422, "format")


def test_card_pdf(me, chanda):
    card = card_service.issue_card(None, chanda)
    response = me.get("/me/card/pdf")
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    assert card.card_number in response.headers["Content-Disposition"]


def test_an_invalid_card_is_readable_but_gives_no_code(me, chanda):
    card = card_service.issue_card(None, chanda)
    card.expires_on = date.today() - timedelta(days=1)
    assert me.get("/me/card").get_json()["status"] == "expired"
    for path in ("/me/card/qr", "/me/card/pdf"):
        assert "expired" in assert_error(me.get(path), 409)["error"]
    card.expires_on = date.today() + timedelta(days=300)
    card_service.suspend_card(None, card, "Dues")
    assert me.get("/me/card").get_json()["status"] == "suspended"
    assert "suspended" in assert_error(me.get("/me/card/qr"), 409)["error"]


def test_a_member_reads_their_own_card_by_id_but_nobody_elses(me, chanda, tree, make_member):
    mine = card_service.issue_card(None, chanda)
    theirs = card_service.issue_card(None, make_member(tree["w1"]))
    assert me.get(f"/cards/{mine.id}").get_json()["card_number"] == mine.card_number
    assert me.get(f"/cards/{mine.id}/qr").status_code == 200
    assert me.get(f"/cards/{mine.id}/pdf").status_code == 200
    for path in (f"/cards/{theirs.id}", f"/cards/{theirs.id}/qr", f"/cards/{theirs.id}/pdf"):
        assert_error(me.get(path), 403)


# --- events ----------------------------------------------------------------------------------


def test_register_cancel_and_my_events(me, chanda, tree):
    soon = event(tree, title="Ward meeting", capacity=5)
    response = me.post(f"/events/{soon.id}/register")
    assert response.status_code == 201 and response.get_json()["source"] == "self"
    assert me.post(f"/events/{soon.id}/register").status_code == 200  # already registered
    page = me.get("/me/events").get_json()
    assert page["total"] == 1
    item = page["items"][0]
    assert item["event"]["id"] == soon.id and item["status"] == "registered" and item["waitlist_position"] is None
    cancelled = me.delete(f"/events/{soon.id}/register").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["member_id"] == chanda.id
    assert_error(me.delete(f"/events/{soon.id}/register"), 409)  # already cancelled
    assert me.get("/me/events").get_json()["items"][0]["status"] == "cancelled"


def test_full_event_waiting_list_position_and_promotion(me, chanda, tree, make_member, api, make_user):
    full = event(tree, capacity=1)
    first, second = make_member(tree["w1"]), make_member(tree["w1"])
    event_service.register(None, full, first)
    event_service.register(None, full, second)
    assert me.post(f"/events/{full.id}/register").get_json()["status"] == "waitlisted"
    item = me.get("/me/events").get_json()["items"][0]
    assert (item["status"], item["waitlist_position"]) == ("waitlisted", 2)
    make_user("first@test.org", "member", member=first)
    promoted = api.login("first@test.org").delete(f"/events/{full.id}/register").get_json()["promoted_member_ids"]
    assert promoted == [second.id]
    assert me.get("/me/events").get_json()["items"][0]["waitlist_position"] == 1


def test_my_events_when(me, chanda, tree):
    past = event(tree, days=-5, title="Past")
    coming = event(tree, days=5, title="Coming")
    later = event(tree, days=9, title="Later")
    for e in (past, coming, later):
        event_service.register(None, e, chanda, now=e.start_at - timedelta(days=1))

    def titles(when):
        return [i["event"]["title"] for i in me.get("/me/events", query_string={"when": when}).get_json()["items"]]

    assert titles("upcoming") == ["Coming", "Later"]
    assert titles("past") == ["Past"]
    assert titles("all") == ["Later", "Coming", "Past"]
    assert_error(me.get("/me/events", query_string={"when": "yesterday"}), 422, "when")
    paged = me.get("/me/events", query_string={"per_page": 1, "page": 2}).get_json()
    assert [i["event"]["title"] for i in paged["items"]] == ["Coming"] and paged["links"]["next"]


def test_events_out_of_the_members_area_answer_404(me, chanda, tree):
    for e in (event(tree, "w2"), event(tree, "w4"), event(tree, "w1", status="draft")):
        assert_error(me.post(f"/events/{e.id}/register"), 404)
        assert_error(me.delete(f"/events/{e.id}/register"), 404)
    assert_error(me.delete("/events/99999/register"), 404)
    visible = event(tree, "p1")  # open to Chanda, but she is not registered
    assert "not registered" in assert_error(me.delete(f"/events/{visible.id}/register"), 404)["error"]


def test_a_coordinator_who_is_a_member_registers_for_events_above_their_ward(api, tree, make_member, make_user):
    """Staff scope (W1 only) does not hide the province's event they may attend as a member."""
    from app.services import rbac

    member = make_member(tree["w1"])
    user = make_user("coordmember@test.org", "ward_coordinator", tree["w1"], member=member)
    rbac.assign_role(None, user, rbac.role_by_name("member"), None)
    rally = event(tree, "p1", title="Provincial rally")
    client = api.login("coordmember@test.org")
    assert client.post(f"/events/{rally.id}/register").status_code == 201
    assert [i["event"]["title"] for i in client.get("/me/events").get_json()["items"]] == ["Provincial rally"]
    assert client.delete(f"/events/{rally.id}/register").get_json()["status"] == "cancelled"


def test_a_unit_scoped_super_admin_with_a_member_record_lists_their_events(api, tree, make_member, make_user):
    """Their registrations are scoped through the event's unit (the scoping helper's rule for registrations)."""
    member = make_member(tree["w1"])
    make_user("p1super@test.org", "super_admin", tree["p1"], member=member)
    inside, outside = event(tree, "w1", title="Inside"), event(tree, "w4", title="Outside")
    event_service.register(None, inside, member)
    db.session.add(EventRegistration(event_id=outside.id, member_id=member.id, status="registered", source="staff",
                                     registered_at=utcnow()))
    client = api.login("p1super@test.org")
    assert [i["event"]["title"] for i in client.get("/me/events").get_json()["items"]] == ["Inside"]

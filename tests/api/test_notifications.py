"""The member's notifications over the API (issue 12): ``GET /me/notifications`` (pages, unread filter) and
``POST /me/notifications/{id}/read``; another member's notification is 404, as if it did not exist.

Every answer is also held to the OpenAPI document by the API client (tests/api/contract.py).
"""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Notification
from app.services import notifications as notes
from tests.api.conftest import assert_error


@pytest.fixture()
def chanda(tree, make_member, make_user):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", email="chanda.m@example.org")
    make_user("chanda@test.org", "member", member=member)
    return member


@pytest.fixture()
def bwalya(tree, make_member, make_user):
    member = make_member(tree["w1"], first_name="Bwalya", last_name="Phiri")
    make_user("bwalya@test.org", "member", member=member)
    return member


@pytest.fixture()
def me(api, chanda):
    return api.login("chanda@test.org")


def test_an_empty_list_then_newest_first_with_pages_and_the_unread_filter(me, chanda):
    body = me.get("/me/notifications").get_json()
    assert (body["items"], body["total"], body["unread"]) == ([], 0, 0)
    for i in range(5):
        notes.notify(chanda, "card.issued", f"N{i}", f"M{i}", link="/card" if i == 4 else None)
    notes.mark_read(notes.notify(chanda, "reminder.event", "Old news"))
    body = me.get("/me/notifications?per_page=2").get_json()
    assert [n["title"] for n in body["items"]] == ["Old news", "N4"]
    assert (body["total"], body["unread"], body["per_page"]) == (6, 5, 2)
    assert body["items"][0]["read"] is True and body["items"][0]["read_at"]
    n4 = body["items"][1]
    assert (n4["kind"], n4["message"], n4["link"], n4["read"], n4["read_at"]) == ("card.issued", "M4", "/card", False,
                                                                                 None)
    assert body["links"]["next"].endswith("page=2&per_page=2")
    unread = me.get("/me/notifications?unread=true&per_page=10").get_json()
    assert [n["title"] for n in unread["items"]] == ["N4", "N3", "N2", "N1", "N0"] and unread["total"] == 5
    assert "unread=true" in unread["links"]["self"]
    assert me.get("/me/notifications?unread=maybe").status_code == 422
    assert me.get("/me/notifications?page=0").status_code == 422


def test_marking_read_and_again(me, chanda):
    note = notes.notify(chanda, "card.issued", "Card ready")
    response = me.post(f"/me/notifications/{note.id}/read")
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == note.id and body["read"] is True
    again = me.post(f"/me/notifications/{note.id}/read").get_json()
    assert again["read_at"] == body["read_at"]
    assert me.get("/me/notifications").get_json()["unread"] == 0


def test_another_members_notification_is_404_and_stays_unread(me, api, chanda, bwalya):
    theirs = notes.notify(bwalya, "card.issued", "Bwalya's")
    assert_error(me.post(f"/me/notifications/{theirs.id}/read"), 404)
    assert_error(me.post("/me/notifications/99999999/read"), 404)
    assert all(n["title"] != "Bwalya's" for n in me.get("/me/notifications").get_json()["items"])
    db.session.expire_all()
    assert db.session.get(Notification, theirs.id).read_at is None
    # Bwalya herself may.
    assert api.login("bwalya@test.org").post(f"/me/notifications/{theirs.id}/read").status_code == 200


def test_staff_without_a_membership_and_anonymous_callers(api, as_admin, chanda):
    note = notes.notify(chanda, "card.issued", "Card ready")
    assert_error(as_admin.get("/me/notifications"), 404)
    assert_error(as_admin.post(f"/me/notifications/{note.id}/read"), 404)  # not even a super admin's "me"
    assert_error(api.get("/me/notifications"), 401)
    assert_error(api.post(f"/me/notifications/{note.id}/read"), 401)
    db.session.expire_all()
    assert db.session.get(Notification, note.id).read_at is None

"""The API's 422 lists every field at fault: ``details.fields`` maps each to its message.

``details.field`` still names the first, as it did when only one was reported,
so clients written for that keep working.
"""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, Member
from tests.api.conftest import assert_error


def test_member_create_lists_every_bad_field(as_admin, tree):
    payload = {"first_name": " ", "last_name": "Banda", "unit_id": tree["w1"].id, "phone": "12",
               "email": "nobody@", "date_of_birth": "2999-01-01", "tags": [f"t{i}" for i in range(51)]}
    body = assert_error(as_admin.post("/members", json=payload), 422, "first_name")
    fields = body["details"]["fields"]
    assert set(fields) == {"first_name", "date_of_birth", "phone", "email", "tags"}
    assert fields["first_name"] == "First name is required."
    assert "not a valid phone number" in fields["phone"]
    assert "not a valid email address" in fields["email"]
    assert "must be in the past" in fields["date_of_birth"]
    assert fields["tags"] == "A member has at most 50 tags (51 given)."
    assert all(message in body["error"] for message in fields.values())
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0


def test_member_update_lists_every_bad_field(as_admin, tree, make_member):
    member = make_member(tree["w1"], first_name="Ruth", last_name="Tembo")
    db.session.commit()
    body = assert_error(as_admin.put(f"/members/{member.id}", json={"last_name": "", "gender": "robot"}), 422,
                        "last_name")
    assert set(body["details"]["fields"]) == {"last_name", "gender"}


def test_a_single_bad_field_keeps_the_old_shape(as_admin, tree):
    body = assert_error(as_admin.post("/members", json={"first_name": "A", "last_name": "B",
                                                        "unit_id": tree["w1"].id, "phone": "12"}), 422, "phone")
    assert body["details"] == {"field": "phone", "fields": {"phone": body["error"]}}


def test_event_create_lists_every_bad_field(as_admin, tree):
    payload = {"title": "", "unit_id": tree["w1"].id, "start_at": "2031-06-01T10:00:00Z",
               "end_at": "2031-06-01T09:00:00Z", "registration_deadline": "2031-06-02T10:00:00Z",
               "capacity": 0, "checkin_rule": "sometimes", "event_type": "picnic"}
    body = assert_error(as_admin.post("/events", json=payload), 422, "title")
    assert set(body["details"]["fields"]) == {"title", "event_type", "capacity", "checkin_rule", "end_at",
                                              "registration_deadline"}
    assert body["details"]["fields"]["end_at"] == "The end must be after the start."
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0

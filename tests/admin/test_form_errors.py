"""Console forms report every field at fault after one submit, each message under its field.

Before, the member form stopped at the first broken rule (four bad fields took
four submits) and the event form at the first too; the form's own checks
(required fields, lengths, numbers) hid the registry's rules until they passed.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, Member, Unit, User
from tests.conftest import csrf_token_from, login


def text(response) -> str:
    return response.get_data(as_text=True)


def post_form(client, url: str, data: dict):
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    return client.post(url, data={**data, "csrf_token": csrf_token_from(text(page))})


def messages_near(html: str, field_id: str) -> str:
    """The markup from a field's input to the next form group: where its error is shown."""
    start = html.index(f'id="{field_id}"')
    end = html.find('class="form-group', start)
    return html[start:end if end != -1 else None]


@pytest.fixture()
def as_admin(client, staff):
    login(client, "admin@test.org")
    db.session.commit()  # a view that refuses a change rolls back; keep the fixtures
    return client


def member_form(unit, **overrides) -> dict:
    data = {"first_name": "Chileshe", "last_name": "Mulenga", "other_names": "", "gender": "female",
            "date_of_birth": "1990-04-25", "national_id": "", "phone": "0955123456", "email": "c@example.org",
            "address": "", "unit": str(unit.id), "joined_on": date.today().isoformat(), "status": "pending",
            "notes": "", "tags": ""}
    data.update(overrides)
    return data


BAD_MEMBER = {
    "phone": ("12", "is not a valid phone number"),
    "email": ("nobody@", "is not a valid email address"),
    "national_id": ("a!", "A national ID number is 4-40"),
    "date_of_birth": ("2999-01-01", "Date of birth must be in the past"),
}


def test_member_form_shows_four_bad_fields_after_one_submit(as_admin, tree):
    response = post_form(as_admin, "/admin/member/new/",
                         member_form(tree["w1"], **{k: v for k, (v, _m) in BAD_MEMBER.items()}))
    assert response.status_code == 200
    html = text(response)
    for field, (_value, message) in BAD_MEMBER.items():
        assert message in messages_near(html, field), field
    assert "Nothing was saved: please correct the marked fields." in html
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0


def test_member_form_shows_its_own_checks_and_the_registry_rules_together(as_admin, tree):
    """A missing first name (the form's check) no longer hides a bad phone and email (the registry's)."""
    html = text(post_form(as_admin, "/admin/member/new/",
                          member_form(tree["w1"], first_name="", phone="12", email="nobody@")))
    assert "First name is required." in messages_near(html, "first_name")
    assert "is not a valid phone number" in messages_near(html, "phone")
    assert "is not a valid email address" in messages_near(html, "email")
    assert html.count("First name is required.") == 1  # said once, not by both the form and the registry


def test_member_edit_form_shows_every_bad_field(as_admin, tree, make_member):
    member = make_member(tree["w1"], first_name="Ruth", last_name="Tembo")
    db.session.commit()
    url = f"/admin/member/edit/?id={member.id}"
    html = text(post_form(as_admin, url, member_form(tree["w1"], last_name="", phone="12", joined_on="2999-01-01")))
    assert "Last name is required." in messages_near(html, "last_name")
    assert "is not a valid phone number" in messages_near(html, "phone")
    assert "Joined on cannot be in the future." in messages_near(html, "joined_on")
    db.session.expire_all()
    assert db.session.get(Member, member.id).last_name == "Tembo"


def test_member_form_refuses_more_than_50_tags_on_the_field(as_admin, tree):
    tags = ", ".join(f"t{i}" for i in range(51))
    html = text(post_form(as_admin, "/admin/member/new/", member_form(tree["w1"], tags=tags)))
    assert "A member has at most 50 tags (51 given)." in messages_near(html, "tags")
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0


def test_event_form_shows_five_bad_fields_after_one_submit(as_admin, tree):
    data = {"title": "", "event_type": "meeting", "unit": "", "start_at": "2031-06-01T10:00",
            "end_at": "2031-06-01T09:00", "registration_deadline": "2031-06-02T10:00", "capacity": "0",
            "checkin_rule": "once", "status": "draft", "venue": "", "location": ""}
    response = post_form(as_admin, "/admin/events/new", data)
    assert response.status_code == 200
    html = text(response)
    expected = {
        "title": "Give the event a title.",
        "unit": "Choose the unit the event belongs to.",
        "end_at": "The end must be after the start.",
        "registration_deadline": "The registration deadline must be before the start.",
        "capacity": "Number must be between 1 and",
    }
    for field, message in expected.items():
        assert message in messages_near(html, field), field
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0


def test_event_edit_form_shows_every_bad_field(as_admin, tree, staff):
    from app.services import events as ev

    event = ev.create_event(staff["admin"], {"title": "AGM", "unit_id": tree["w1"].id,
                                             "start_at": "2031-06-01T10:00:00Z", "end_at": "2031-06-01T12:00:00Z"})
    db.session.commit()
    url = f"/admin/events/{event.id}/edit"
    data = {"title": "x" * 201, "event_type": "meeting", "unit": str(tree["w1"].id), "start_at": "2031-06-01T10:00",
            "end_at": "2031-07-15T10:00", "checkin_rule": "once", "status": "draft"}
    html = text(post_form(as_admin, url, data))
    assert "200 characters" in messages_near(html, "title")
    assert "An event lasts 31 days at most." in messages_near(html, "end_at")
    db.session.expire_all()
    assert db.session.get(Event, event.id).title == "AGM"


def test_unit_form_shows_name_and_code_together(client, staff, tree):
    login(client, "super@test.org")
    db.session.commit()
    response = post_form(client, f"/admin/geography/new?parent={tree['c1'].id}",
                         {"parent": str(tree["c1"].id), "name": "", "code": "!!"})
    assert response.status_code == 422
    html = text(response)
    assert "Give the unit a name." in messages_near(html, "name")
    assert "The code must be 1-40 letters" in messages_near(html, "code")
    assert db.session.scalar(select(func.count()).select_from(Unit).where(Unit.code == "!!")) == 0


def test_new_user_form_shows_email_and_password_together(client, staff):
    login(client, "super@test.org")
    db.session.commit()
    response = post_form(client, "/admin/users/new", {"email": "not-an-email", "password": "short",
                                                     "role_id": "", "unit_id": ""})
    assert response.status_code == 422
    html = text(response)
    assert "is not a valid email address" in messages_near(html, "email")
    assert "A password needs at least" in messages_near(html, "password")
    assert db.session.scalar(select(User).where(User.email == "not-an-email")) is None

"""Bad ids and page numbers as a person meets them in the console: a 404 or 400, or a field's message.

The route-by-route probe of every console and API route is tests/test_bad_ids.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.models.base import utcnow
from app.services import events as event_service
from tests.conftest import PASSWORD, csrf_token_from, login


@pytest.mark.parametrize("path, status", [
    ("/admin/member/details/?id=99999999999999999999", 404),
    ("/admin/member/details/?id=\u0661", 404),
    ("/admin/audit/details/?id=9223372036854775808", 404),
    ("/admin/events/99999999999999999999/", 404),
    ("/admin/jobs/1/files/9223372036854775808", 404),
    ("/admin/member/?page=-1", 400),
    ("/admin/member/?page=4.0", 400),
    ("/admin/member/?page=99999999999999999999", 400),
    ("/admin/events/?page=9223372036854775808", 400),
    ("/admin/member/?search=a%00b", 400),  # PostgreSQL cannot compare text holding NUL
    ("/admin/users/?q=%00", 400),
    ("/admin/member/?page=", 200),
    ("/admin/member/?page=0", 200),
])
def test_console_answers_bad_ids_and_pages(client, staff, path, status):
    login(client, "super@test.org")
    assert client.get(path).status_code == status


def test_unknown_unit_shortcut_lists_nobody_and_a_bad_unit_filter_says_so(client, tree, staff, make_member):
    make_member(tree["w1"], last_name="Zulu")
    login(client, "super@test.org")
    page = client.get("/admin/member/?unit=99999999999999999999")
    assert page.status_code == 200 and "Zulu" not in page.get_data(as_text=True)
    # Flask-Admin drops a filter whose value is invalid, and tells the user.
    page = client.get("/admin/member/?flt0_unit_in=99999999999999999999")
    assert page.status_code == 200 and "Invalid Filter Value" in page.get_data(as_text=True)


def test_event_capacity_too_long_is_a_field_message(client, tree, staff):
    login(client, "super@test.org")
    event = event_service.create_event(None, {
        "title": "Rally", "start_at": utcnow() + timedelta(days=1), "end_at": utcnow() + timedelta(days=1, hours=2),
        "unit_id": tree["w1"].id})
    db.session.commit()
    form = client.get(f"/admin/events/{event.id}/edit").get_data(as_text=True)
    response = client.post(f"/admin/events/{event.id}/edit", data={
        "csrf_token": csrf_token_from(form), "title": "Rally", "unit": str(tree["w1"].id),
        "start_at": "2031-01-01T10:00", "end_at": "2031-01-01T12:00", "capacity": "9" * 400})
    assert response.status_code == 200
    assert "Enter a whole number" in response.get_data(as_text=True)


def test_nul_in_a_form_field_is_a_400_not_a_database_error(client, staff):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "super@test.org\x00", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 400

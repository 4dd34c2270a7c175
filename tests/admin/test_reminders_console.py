"""The console's "Reminders": the schedule ahead and the delivery log in the viewer's scope; settings for admins.

A ward coordinator sees the reminders of their ward's members only; the log
gives the reason for everything not sent; the settings form (global admins)
reports every field's message at once and needs its CSRF token.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Event, EventRegistration, ReminderSetting
from app.models.base import utcnow
from app.services import notifications, reminders
from tests.conftest import csrf_token_from, login
from tests.services.test_reminders import EXPIRY, at, make_card

TODAY = EXPIRY - timedelta(days=10)


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture()
def world(tree, make_member, staff):
    """Ada (W1, due -7 in three days), Bo (W4, due -7 too), Cy (W1, no email, -7 already logged as no email)."""
    ada = make_member(tree["w1"], first_name="Ada", last_name="Banda", email="ada@example.org")
    bo = make_member(tree["w4"], first_name="Bo", last_name="Phiri", email="bo@example.org")
    cy = make_member(tree["w1"], first_name="Cy", last_name="Mumba", email=None)
    for member in (ada, bo):
        make_card(member)
    make_card(cy, EXPIRY - timedelta(days=5))
    start = datetime(2027, 3, 25, 18, tzinfo=timezone.utc)
    event = Event(title="Ward meeting", start_at=start, end_at=start + timedelta(hours=2), unit_id=tree["w1"].id,
                  status="upcoming")
    db.session.add(event)
    db.session.flush()
    db.session.add(EventRegistration(event_id=event.id, member_id=ada.id, status="registered"))
    db.session.commit()
    return {"ada": ada, "bo": bo, "cy": cy, "event": event}


def test_the_schedule_shows_who_gets_what_when_in_the_viewers_scope(client, world):
    with time_machine.travel(at(TODAY), tick=False):
        login(client, "admin@test.org")
        page = _text(client.get("/admin/reminders/"))
        assert "Ada Banda" in page and "Bo Phiri" in page and "Cy Mumba" in page
        assert (EXPIRY - timedelta(days=7)).isoformat() in page and "Card expires in 7 days" in page
        assert "Ward meeting" in page
        client.get("/logout")
        login(client, "coord@test.org")
        page = _text(client.get("/admin/reminders/"))
        assert "Ada Banda" in page and "Cy Mumba" in page and "Bo Phiri" not in page
        assert "Settings" not in page  # the settings are for admins who work everywhere


def test_what_was_sent_leaves_the_schedule_and_enters_the_log_with_reasons(client, world):
    notifications.set_email(world["bo"], "reminder.renewal", False)
    db.session.commit()
    with time_machine.travel(at(EXPIRY - timedelta(days=7)), tick=False):
        reminders.renewal_sweep(utcnow())
        db.session.commit()
        login(client, "super@test.org")
        schedule = _text(client.get("/admin/reminders/"))
        assert "expires in 7 days" not in schedule  # done: not ahead any more
        log = _text(client.get("/admin/reminders/log"))
        assert "Ada Banda" in log and reminders.REASON_OPTED_OUT in log
        assert re.search(r"Cy Mumba.*?No email address\.", log, re.S)
        not_sent = _text(client.get("/admin/reminders/log", query_string={"outcome": "skipped"}))
        assert "Ada Banda" not in not_sent and "Bo Phiri" in not_sent
        client.get("/logout")
        login(client, "coord@test.org")
        log = _text(client.get("/admin/reminders/log"))
        assert "Ada Banda" in log and "Bo Phiri" not in log


def test_a_page_number_that_is_no_number_is_a_bad_request(client, world):
    login(client, "admin@test.org")
    for query in ({"page": "x"}, {"events_page": "-1"}, {"page": "9" * 40}):
        assert client.get("/admin/reminders/", query_string=query).status_code == 400
    assert client.get("/admin/reminders/log", query_string={"page": "1.5"}).status_code == 400
    assert client.get("/admin/reminders/", query_string={"page": "7"}).status_code == 200


def test_the_schedule_is_paginated(client, tree, make_member, staff):
    for n in range(30):
        make_card(make_member(tree["w1"], email=f"m{n}@example.org"), EXPIRY + timedelta(days=n % 5))
    db.session.commit()
    with time_machine.travel(at(EXPIRY - timedelta(days=10)), tick=False):
        login(client, "admin@test.org")
        first = _text(client.get("/admin/reminders/"))
        second = _text(client.get("/admin/reminders/", query_string={"page": "1"}))
    assert "Page 1 of" in first and "Page 2 of" in second
    rows = lambda html: len(re.findall(r"<tr><td class=\"text-nowrap\">", html))  # noqa: E731
    # 30 members x (-7 and 0 within 30 days ahead; -30 already past) = 60 reminders
    assert rows(first) == 25 and rows(second) == 25


def _settings_form(client):
    page = client.get("/admin/reminders/settings")
    assert page.status_code == 200
    return csrf_token_from(_text(page))


def test_admins_change_the_settings_and_every_message_shows_at_once(client, staff):
    login(client, "admin@test.org")
    token = _settings_form(client)
    bad = client.post("/admin/reminders/settings", data={
        "csrf_token": token, "renewal_offsets": "-30,soon", "event_hours": "-2", "renewal_subject": "Hi {name}",
        "renewal_text": "", "event_subject": "", "event_text": "{event_title} at {secret}"})
    html = _text(bad)
    assert bad.status_code == 422
    assert "&#39;soon&#39; is not a whole number of days" in html and "Enter a number of hours" in html
    assert "Unknown placeholder {name}" in html and "Unknown placeholder {secret}" in html
    assert db.session.scalars(select(ReminderSetting)).all() == []

    no_csrf = client.post("/admin/reminders/settings", data={"renewal_offsets": "-1"})
    assert no_csrf.status_code in (200, 400) and db.session.scalars(select(ReminderSetting)).all() == []

    saved = client.post("/admin/reminders/settings", data={
        "csrf_token": token, "renewal_offsets": "+7, -14", "event_hours": "48", "renewal_subject": "",
        "renewal_text": "", "event_subject": "", "event_text": ""})
    assert saved.status_code == 302
    db.session.expire_all()
    assert {r.key: r.value for r in db.session.scalars(select(ReminderSetting))} == {
        "renewal_offsets": "-14,+7", "event_hours": "48"}
    page = _text(client.get("/admin/reminders/settings"))
    assert 'value="-14,+7"' in page and "Default: -30,-7,0,+14" in page
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "reminders.settings"))
    assert entry is not None and "renewal offsets" in entry.summary
    # Empty again: back to the environment's default (the override row goes)
    client.post("/admin/reminders/settings", data={"csrf_token": token, "renewal_offsets": "", "event_hours": "",
                                                   "renewal_subject": "", "renewal_text": "", "event_subject": "",
                                                   "event_text": ""})
    db.session.expire_all()
    assert db.session.scalars(select(ReminderSetting)).all() == []


def test_coordinators_may_not_open_the_settings(client, staff):
    login(client, "coord@test.org")
    assert client.get("/admin/reminders/").status_code == 200
    assert client.get("/admin/reminders/settings").status_code == 403
    assert client.post("/admin/reminders/settings", data={"renewal_offsets": "-1"}).status_code in (400, 403)

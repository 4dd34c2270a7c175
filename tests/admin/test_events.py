"""Events in the staff console, through HTTP with CSRF on: list, calendar feed, forms, the event
page (registrations, attendance, exports, files) and the check-in page's endpoints."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Event
from app.models.base import utcnow
from app.services import cards
from app.services import events as ev
from tests.conftest import csrf_token_from, login

HOUR = timedelta(hours=1)


def text(response) -> str:
    return response.get_data(as_text=True)


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return text(response)


def make_event(actor, unit, **fields) -> Event:
    now = utcnow()
    data = {"title": "Ward meeting", "start_at": now - HOUR, "end_at": now + 3 * HOUR, "unit_id": unit.id,
            "status": "upcoming"}
    data.update(fields)
    return ev.create_event(actor, data)


@pytest.fixture()
def coord(client, staff):
    login(client, "coord@test.org")
    return client


def form_data(client, url: str, **fields) -> dict:
    return {"csrf_token": csrf_token_from(page(client, url)), **fields}


def test_coordinator_creates_an_event_with_validation(coord, tree):
    url = "/admin/events/new"
    html = page(coord, url)
    assert "Lukashya Ward 1" in html and "Luangeni" not in html  # units offered: the coordinator's
    base = form_data(coord, url, title="Ward AGM", event_type="meeting", unit=str(tree["w1"].id),
                     start_at="2031-06-01T10:00", end_at="2031-06-01T09:00", venue="Hall", checkin_rule="once",
                     status="upcoming", registration_required="y", capacity="")
    response = coord.post(url, data=base)
    assert response.status_code == 200 and "The end must be after the start." in text(response)
    response = coord.post(url, data={**base, "end_at": "2031-06-01T12:00",
                                     "registration_deadline": "2031-06-02T10:00"})
    assert "The registration deadline must be before the start." in text(response)
    response = coord.post(url, data={**base, "unit": str(tree["w4"].id), "end_at": "2031-06-01T12:00"})
    assert "outside your area" in text(response)
    response = coord.post(url, data={**base, "end_at": "2031-06-01T12:00", "capacity": "80", "walk_ins_allowed": "y"})
    assert response.status_code == 302
    event = db.session.scalar(select(Event).where(Event.title == "Ward AGM"))
    assert response.headers["Location"].endswith(f"/admin/events/{event.id}/")
    assert event.capacity == 80 and event.walk_ins_allowed and event.status == "upcoming"
    assert event.start_at.isoformat() == "2031-06-01T10:00:00+00:00"  # MUSTER_TIMEZONE is UTC here
    # Edit: times are shown back in the organisation's time zone.
    edit = page(coord, f"/admin/events/{event.id}/edit")
    assert 'value="2031-06-01T10:00"' in edit
    response = coord.post(f"/admin/events/{event.id}/edit",
                          data=form_data(coord, f"/admin/events/{event.id}/edit", title="Ward AGM 2031",
                                         event_type="meeting", unit=str(tree["w1"].id), start_at="2031-06-01T10:00",
                                         end_at="2031-06-01T13:00", checkin_rule="once_per_day", status="upcoming"))
    assert response.status_code == 302
    db.session.refresh(event)
    assert event.title == "Ward AGM 2031" and event.checkin_rule == "once_per_day"


def test_list_and_calendar_are_scoped(coord, tree, staff):
    mine = make_event(staff["admin"], tree["w1"], title="Ward one gathering")
    make_event(staff["admin"], tree["w4"], title="Elsewhere rally")
    db.session.commit()
    html = page(coord, "/admin/events/")
    assert "Ward one gathering" in html and "Elsewhere rally" not in html
    assert "Ward one gathering" not in page(coord, "/admin/events/?when=past")
    assert "FullCalendar" in page(coord, "/admin/events/?view=calendar") or "fullcalendar" in page(
        coord, "/admin/events/?view=calendar")
    start = (utcnow() - timedelta(days=3)).date().isoformat()
    end = (utcnow() + timedelta(days=3)).date().isoformat()
    feed = coord.get(f"/admin/events/feed?start={start}T00:00:00Z&end={end}T00:00:00Z").get_json()
    assert [item["id"] for item in feed] == [mine.id]
    assert feed[0]["url"].endswith(f"/admin/events/{mine.id}/")
    assert coord.get("/admin/events/feed?start=soon").status_code == 400
    far = make_event(staff["admin"], tree["w4"])
    db.session.commit()
    assert coord.get(f"/admin/events/{far.id}/").status_code == 404
    assert coord.get(f"/admin/events/{far.id}/checkin").status_code == 404


def test_event_page_registrations_attendance_and_exports(coord, tree, staff, make_member):
    event = make_event(staff["coordinator"], tree["w1"], capacity=2)
    a = make_member(tree["w1"], first_name="Ann", last_name="Abel", phone="0977000001")
    b = make_member(tree["w1"], first_name="Ben", last_name="Banda")
    c = make_member(tree["w1"], first_name="Cat", last_name="=cmd|calc")
    outsider = make_member(tree["w4"], first_name="Out", last_name="Sider")
    db.session.commit()
    url = f"/admin/events/{event.id}/"

    found = page(coord, f"/admin/events/{event.id}/search?q=abel")
    assert "Ann Abel" in found and "Register" in found
    assert "Sider" not in page(coord, f"/admin/events/{event.id}/search?q=sider")
    for m in (a, b, c):
        response = coord.post(f"/admin/events/{event.id}/register", data=form_data(coord, url, member_id=m.id))
        assert response.status_code == 302
    assert coord.post(f"/admin/events/{event.id}/register",
                      data=form_data(coord, url, member_id=outsider.id)).status_code == 404
    html = page(coord, url)
    assert "Ann Abel" in html and 'id="count-waitlisted">1<' in html
    assert ev.registration_for(event, c).status == "waitlisted"

    coord.post(f"/admin/events/{event.id}/members/{a.id}/attendance", data=form_data(coord, url, status="attended"))
    assert ev.registration_for(event, a).status == "attended"
    coord.post(f"/admin/events/{event.id}/members/{b.id}/cancel", data=form_data(coord, url))
    assert ev.registration_for(event, b).status == "cancelled"
    assert ev.registration_for(event, c).status == "registered"  # promoted
    attended = page(coord, url + "?status=attended")
    assert f'data-member="{a.id}"' in attended and f'data-member="{b.id}"' not in attended
    counts = page(coord, f"/admin/events/{event.id}/counts")
    assert 'id="count-attended">1<' in counts and "hx-trigger" in counts

    exported = coord.get(f"/admin/events/{event.id}/export/csv")
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["Membership no.", "First name", "Last name"]
    by_name = {r[2]: r for r in rows[1:]}
    assert by_name["Abel"][5] == "attended" and by_name["Abel"][3] == "+260977000001"
    assert "'=cmd|calc" in by_name  # formula injection defused
    xlsx = coord.get(f"/admin/events/{event.id}/export/xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.get_data())).active
    values = [[cell for cell in row] for row in sheet.iter_rows(values_only=True)]
    assert values[0][0] == "Ward meeting" and values[3][0] == "Membership no." and len(values) == 4 + 3
    assert coord.get(f"/admin/events/{event.id}/export/pdf").status_code == 404


def test_no_shows_after_the_event(coord, tree, staff, make_member):
    now = utcnow()
    event = make_event(staff["coordinator"], tree["w1"], start_at=now - 5 * HOUR, end_at=now - HOUR)
    m = make_member(tree["w1"])
    from app.models import EventRegistration

    db.session.add(EventRegistration(event_id=event.id, member_id=m.id, status="registered"))
    db.session.commit()
    url = f"/admin/events/{event.id}/"
    assert "no-show" in page(coord, url)
    coord.post(f"/admin/events/{event.id}/no-shows", data=form_data(coord, url))
    assert ev.registration_for(event, m).status == "no_show"


def test_attachments_upload_and_download(coord, tree, staff):
    event = make_event(staff["coordinator"], tree["w1"])
    db.session.commit()
    url = f"/admin/events/{event.id}/"
    pdf = b"%PDF-1.4\n%%EOF\n"
    response = coord.post(f"/admin/events/{event.id}/attachments",
                          data=form_data(coord, url, kind="agenda", file=(io.BytesIO(pdf), "agenda.pdf")),
                          content_type="multipart/form-data")
    assert response.status_code == 302
    html = page(coord, url)
    assert "agenda.pdf" in html
    db.session.refresh(event)
    row = event.attachments[0]
    download = coord.get(f"/admin/events/{event.id}/attachments/{row.id}")
    assert download.get_data() == pdf and download.mimetype == "application/pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    fake = coord.post(f"/admin/events/{event.id}/attachments",
                      data=form_data(coord, url, kind="flyer", file=(io.BytesIO(b"<script>x</script>"), "x.pdf")),
                      content_type="multipart/form-data", follow_redirects=True)
    assert "Attach a PDF, PNG, JPEG or Word" in text(fake)
    coord.post(f"/admin/events/{event.id}/attachments/{row.id}/delete", data=form_data(coord, url))
    db.session.refresh(event)
    assert event.attachments == []


def test_console_checkin_twin(coord, tree, staff, make_member):
    event = make_event(staff["coordinator"], tree["w1"], walk_ins_allowed=True)
    member = make_member(tree["w1"], first_name="Mutale", last_name="Kabwe")
    token = cards.card_token(cards.issue_card(None, member))
    db.session.commit()
    html = page(coord, f"/admin/events/{event.id}/checkin")
    assert "jsQR.js" in html and "checkin.js" in html and 'name="viewport"' in html
    csrf = csrf_token_from(html.replace('<meta name="csrf-token" content="', '<input name="csrf_token" value="'))
    url = f"/admin/events/{event.id}/checkin"
    headers = {"X-CSRFToken": csrf}
    answer = coord.post(url, json={"token": token, "gate": "East", "nonce": "c1"}, headers=headers).get_json()
    assert answer["result"] == "admitted" and answer["member"]["full_name"] == "Mutale Kabwe"
    again = coord.post(url, json={"token": token, "gate": "West", "nonce": "c2"}, headers=headers).get_json()
    assert again["result"] == "already_checked_in" and again["first_gate"] == "East"
    assert coord.post(url, json={"token": token, "nonce": "c3"}).status_code == 400  # no CSRF token
    assert coord.post(url, json={"token": 5}, headers=headers).status_code == 400
    assert coord.post(url, json={}, headers=headers).status_code == 422
    bad = coord.post(url, json={"token": "nonsense"}, headers=headers).get_json()
    assert bad["reason"] == "invalid_token"
    found = coord.get(f"/admin/events/{event.id}/checkin/lookup?q=kabwe").get_json()
    assert found["items"][0]["registration_status"] == "attended"
    assert coord.get(f"/admin/events/{event.id}/checkin/lookup?q=k").get_json()["items"] == []


def test_cancel_and_delete_from_the_console(client, tree, staff):
    login(client, "admin@test.org")
    event = make_event(staff["admin"], tree["w1"])
    db.session.commit()
    url = f"/admin/events/{event.id}/"
    client.post(f"/admin/events/{event.id}/status", data=form_data(client, url, status="cancelled"))
    db.session.refresh(event)
    assert event.status == "cancelled"
    assert "Cancelled" in page(client, url)
    response = client.post(f"/admin/events/{event.id}/delete", data=form_data(client, url))
    assert response.status_code == 302
    assert db.session.get(Event, event.id) is None

"""``/events``: events open to the member, their event pages, registering and cancelling (waiting list included)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import EventRegistration
from app.models.base import utcnow
from app.services import events as event_service
from tests.conftest import login
from tests.portal.conftest import post, text

TITLES = re.compile(r'<div class="fw-semibold text-break">([^<]+)</div>')


def open_titles(page: str) -> list[str]:
    section = page.split('id="open-events"', 1)[1].split('id="history"', 1)[0]
    return TITLES.findall(section)


def status_of(event, member) -> str | None:
    db.session.expire_all()
    reg = event_service.registration_for(event, member)
    return reg.status if reg is not None else None


def test_empty_states(portal):
    page = text(portal.get("/events"))
    assert "No upcoming events" in page and "No past events yet" in page
    assert 'id="my-registrations"' not in page


def test_lists_published_events_of_the_ward_and_the_units_above_it(portal, tree, make_event):
    make_event(tree["p1"], days=4, title="Province rally")
    make_event(tree["w1"], days=1, title="Ward meeting")
    make_event(tree["c1"], days=2, title="Constituency training")
    make_event(tree["w1"], days=-0.02, hours=2, title="Happening now")
    for unit, title in (("w2", "Sibling ward"), ("w3", "Cousin ward"), ("w4", "Other province")):
        make_event(tree[unit], days=1, title=title)
    make_event(tree["w1"], days=1, title="Draft", status="draft")
    make_event(tree["w1"], days=1, title="Cancelled", status="cancelled")
    make_event(tree["w1"], days=-3, title="Finished")
    page = text(portal.get("/events"))
    assert open_titles(page) == ["Happening now", "Ward meeting", "Constituency training", "Province rally"]
    assert 'class="badge text-bg-info">Now<' in page


def test_the_list_is_paged(portal, make_event):
    for day in range(1, 13):
        make_event(days=day, title=f"Meeting {day:02d}")
    first = text(portal.get("/events"))
    assert open_titles(first) == [f"Meeting {d:02d}" for d in range(1, 11)]
    assert "1 / 2" in first and 'href="/events?past_page=1&amp;page=2"' in first
    second = text(portal.get("/events?page=2"))
    assert open_titles(second) == ["Meeting 11", "Meeting 12"]
    assert open_titles(text(portal.get("/events?page=3"))) == []
    for bad in ("0", "-1", "x", "99999999999999999999", "1.5"):
        assert portal.get(f"/events?page={bad}").status_code == 400
        assert portal.get(f"/events?past_page={bad}").status_code == 400


def test_event_page_shows_details_and_a_register_button(portal, make_event):
    event = make_event(title="Ward meeting", venue="Community hall", location="Plot 4", capacity=30,
                       description="Agenda:\nbudget")
    response = portal.get(f"/events/{event.id}")
    assert response.status_code == 200
    page = text(response)
    assert "Ward meeting" in page and "Community hall, Plot 4" in page and "30 of 30 left" in page
    assert "Lukashya Ward 1 (ward)" in page
    assert 'id="register"' in page and 'id="cancel"' not in page
    assert 'data-status="none"' in page


def test_register_and_cancel(portal, member, make_event):
    event = make_event(title="Ward meeting", capacity=10)
    response = post(portal, f"/events/{event.id}/register")
    assert response.status_code == 302 and response.headers["Location"] == f"/events/{event.id}"
    assert status_of(event, member) == "registered"
    page = text(portal.get(f"/events/{event.id}"))
    assert "You are registered for Ward meeting." in page
    assert 'id="my-registration" class="mt-3" data-status="registered"' in page
    assert 'id="cancel"' in page and 'id="register"' not in page
    listing = text(portal.get("/events"))
    assert 'id="my-registrations"' in listing and 'data-registration="registered"' in listing

    again = post(portal, f"/events/{event.id}/register")
    assert again.status_code == 302 and status_of(event, member) == "registered"
    assert "already registered" in text(portal.get(f"/events/{event.id}"))

    assert post(portal, f"/events/{event.id}/cancel").status_code == 302
    assert status_of(event, member) == "cancelled"
    page = text(portal.get(f"/events/{event.id}"))
    assert "Your registration for Ward meeting is cancelled." in page and 'id="register"' in page
    assert 'id="my-registrations"' not in text(portal.get("/events"))

    assert post(portal, f"/events/{event.id}/register").status_code == 302  # and back again
    assert status_of(event, member) == "registered"


def test_a_full_event_puts_the_member_on_the_waiting_list_with_their_place(portal, member, tree, make_member,
                                                                          make_event):
    event = make_event(title="Small training", capacity=1)
    first, second = make_member(tree["w1"]), make_member(tree["w1"])
    event_service.register(None, event, first)
    event_service.register(None, event, second)  # waitlisted, number 1
    page = text(portal.get(f"/events/{event.id}"))
    assert "0 of 1 left · 1 waiting" in page and "Join the waiting list" in page

    post(portal, f"/events/{event.id}/register")
    assert status_of(event, member) == "waitlisted"
    page = text(portal.get(f"/events/{event.id}"))
    assert "you are on the waiting list (number 2)" in page
    assert "On the waiting list · number 2" in page
    assert "On the waiting list · number 2" in text(portal.get("/events"))

    reg = event_service.registration_for(event, first)
    event_service.cancel_registration(None, reg)  # second moves up; Chanda is next
    db.session.commit()
    assert "On the waiting list · number 1" in text(portal.get(f"/events/{event.id}"))
    event_service.cancel_registration(None, event_service.registration_for(event, second))
    db.session.commit()
    assert status_of(event, member) == "registered"


def test_cancelling_a_place_promotes_the_waiting_list(portal, member, tree, make_member, make_event):
    event = make_event(capacity=1)
    waiting = make_member(tree["w1"])
    post(portal, f"/events/{event.id}/register")
    event_service.register(None, event, waiting)
    assert status_of(event, waiting) == "waitlisted"
    post(portal, f"/events/{event.id}/cancel")
    assert (status_of(event, member), status_of(event, waiting)) == ("cancelled", "registered")


def test_forms_need_the_csrf_token(portal, member, make_event):
    event = make_event()
    response = post(portal, f"/events/{event.id}/register", token=False)
    assert response.status_code == 400 and "This form has expired" in text(response)
    assert status_of(event, member) is None
    event_service.register(None, event, member)
    db.session.commit()
    assert post(portal, f"/events/{event.id}/cancel", token=False).status_code == 400
    assert status_of(event, member) == "registered"
    bad = post(portal, f"/events/{event.id}/cancel", {"csrf_token": "forged"}, token=False)
    assert bad.status_code == 400 and status_of(event, member) == "registered"


def test_cancel_without_a_registration_says_so(portal, make_event):
    event = make_event()
    response = post(portal, f"/events/{event.id}/cancel")
    assert response.status_code == 302
    assert "You are not registered for this event." in text(portal.get(f"/events/{event.id}"))


def test_rules_of_the_event_service_come_back_as_messages(portal, member, make_event):
    closed = make_event(title="Late", registration_deadline=utcnow() + timedelta(minutes=1))
    closed.registration_deadline = utcnow() - timedelta(minutes=1)
    page_before = text(portal.get(f"/events/{closed.id}"))
    assert 'id="register"' not in page_before
    post(portal, f"/events/{closed.id}/register")
    assert "Registration for this event has closed." in text(portal.get(f"/events/{closed.id}"))
    assert status_of(closed, member) is None

    over = make_event(days=-2, title="Over")
    post(portal, f"/events/{over.id}/register")
    page = text(portal.get(f"/events/{over.id}"))
    assert "This event is over." in page and status_of(over, member) is None


def test_a_suspended_member_cannot_register(client, tree, make_member, make_user, make_event):
    from app.services import members as member_service

    suspended = make_member(tree["w1"])
    member_service.change_status(None, suspended, "suspended", "Dues unpaid")
    make_user("suspended@test.org", "member", member=suspended)
    login(client, "suspended@test.org")
    event = make_event(title="Meeting")
    post(client, f"/events/{event.id}/register")
    assert "is suspended and cannot register" in text(client.get(f"/events/{event.id}"))
    assert status_of(event, suspended) is None


def test_events_outside_the_members_area_do_not_exist_for_them(portal, member, tree, make_event):
    hidden = [make_event(tree["w2"]), make_event(tree["w4"]), make_event(tree["w1"], status="draft")]
    for event in hidden:
        assert portal.get(f"/events/{event.id}").status_code == 404
        assert post(portal, f"/events/{event.id}/register").status_code == 404
        assert post(portal, f"/events/{event.id}/cancel").status_code == 404
        assert status_of(event, member) is None
    for hostile in ("999999", "0", "-1", "99999999999999999999", "1e3", "\u0661", "x"):
        assert portal.get(f"/events/{hostile}").status_code == 404
        assert post(portal, f"/events/{hostile}/register").status_code == 404


def test_history_shows_past_events_and_attendance(portal, member, make_event):
    attended = make_event(days=-10, title="Spring rally")
    missed = make_event(days=-5, title="Training day")
    cancelled = make_event(days=-3, title="Quiz night")
    for event in (attended, missed, cancelled):
        db.session.add(EventRegistration(event_id=event.id, member_id=member.id, status="registered",
                                         source="self", registered_at=event.start_at - timedelta(days=1)))
    db.session.flush()
    regs = {r.event_id: r for r in db.session.scalars(select(EventRegistration))}
    regs[attended.id].status, regs[missed.id].status, regs[cancelled.id].status = "attended", "no_show", "cancelled"
    db.session.commit()
    page = text(portal.get("/events"))
    history = page.split('id="history"', 1)[1]
    assert "Quiz night" not in history  # a cancelled registration is no attendance
    assert history.index("Training day") < history.index("Spring rally")  # latest first
    assert 'data-registration="attended"' in history and 'data-registration="no_show"' in history
    assert "Did not attend" in history
    # The page of a past event they attended stays readable.
    assert "This event is over." in text(portal.get(f"/events/{attended.id}"))


def test_a_past_event_of_a_ward_they_left_stays_readable_through_their_registration(portal, member, tree,
                                                                                    make_event):
    event = make_event(tree["w2"], days=-4, title="Old ward meeting")
    db.session.add(EventRegistration(event_id=event.id, member_id=member.id, status="attended", source="staff",
                                     registered_at=event.start_at))
    db.session.commit()
    assert "Old ward meeting" in text(portal.get("/events")).split('id="history"', 1)[1]
    assert portal.get(f"/events/{event.id}").status_code == 200
    assert post(portal, f"/events/{event.id}/register").status_code == 404  # but no registering there


def test_event_pages_need_a_sign_in(client, tree, make_event):
    event = make_event()
    for path in ("/events", f"/events/{event.id}"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.post(f"/events/{event.id}/register")
    assert response.status_code in (302, 400)  # no session: the CSRF check or the login, never a registration
    assert db.session.scalar(select(EventRegistration).where(EventRegistration.event_id == event.id)) is None

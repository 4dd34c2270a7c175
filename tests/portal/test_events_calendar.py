"""``/events/calendar``: the member's events as a month grid (server-rendered), with a list of the month below it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from app.extensions import db
from app.models.base import utcnow
from app.services import events as event_service
from tests.portal.conftest import text

DAY_LINK = re.compile(r'<a class="portal-month-day" href="#day-([\d-]+)" data-events="\d+">(.*?)</a>', re.DOTALL)


def day_links(page: str) -> list[tuple[str, str]]:
    """(date, the link's text as read out) for each day with events."""
    return [(day, " ".join(re.sub(r"<[^>]+>", "", inner).split())) for day, inner in DAY_LINK.findall(page)]


def at(event, start: datetime, hours: float = 2):
    event.start_at, event.end_at = start, start + timedelta(hours=hours)
    db.session.flush()
    return event


def month_titles(page: str) -> list[str]:
    section = page.split('id="month-events"', 1)[1]
    return re.findall(r'<div class="fw-semibold text-break">([^<]+)</div>', section)


def test_the_month_grid_marks_days_with_events_and_lists_them(portal, member, tree, make_event, make_member):
    march = datetime(2027, 3, 1, tzinfo=UTC)
    at(make_event(tree["w1"], title="Ward meeting", capacity=1), march + timedelta(days=2, hours=16))
    at(make_event(tree["p1"], title="Province rally"), march + timedelta(days=2, hours=9))
    at(make_event(tree["c1"], title="Two-day training"), march + timedelta(days=19, hours=8), hours=30)
    at(make_event(tree["w2"], title="Sibling ward"), march + timedelta(days=5))
    at(make_event(tree["w1"], title="Draft", status="draft"), march + timedelta(days=6))
    at(make_event(tree["w1"], title="April meeting"), march + timedelta(days=40))

    response = portal.get("/events/calendar?month=2027-03")
    assert response.status_code == 200
    page = text(response)
    assert '<h2 class="h5 mb-0 text-center" id="month-title">March 2027</h2>' in page
    assert "<caption" in page and 'abbr="Monday"' in page
    # March 2027 starts on a Monday and has five weeks: 35 cells, the first 1 March.
    assert page.count("<td ") == 35 and 'data-date="2027-03-01"' in page
    assert day_links(page) == [("2027-03-03", "3 March: 2 events"), ("2027-03-20", "20 March: 1 event"),
                                      ("2027-03-21", "21 March: 1 event")]
    assert month_titles(page) == ["Province rally", "Ward meeting", "Two-day training", "Two-day training"]
    assert "Sibling ward" not in page and "Draft" not in page and "April meeting" not in page
    assert 'href="/events/calendar?month=2027-02"' in page and 'href="/events/calendar?month=2027-04"' in page
    assert 'id="view-calendar"\n     href="/events/calendar" aria-current="page"' in page


def test_the_members_own_place_shows_on_the_calendar(portal, member, tree, make_event, make_member):
    event = at(make_event(title="Small training", capacity=1), datetime(2027, 5, 10, 15, tzinfo=UTC))
    event_service.register(None, event, make_member(tree["w1"]))
    event_service.register(None, event, member)
    db.session.commit()
    page = text(portal.get("/events/calendar?month=2027-05"))
    assert "On the waiting list · number 1" in page


def test_this_month_by_default_with_today_marked_and_an_empty_state(portal):
    page = text(portal.get("/events/calendar"))
    today = event_service.local(utcnow()).date()
    assert f'data-month="{today:%Y-%m}"' in page
    assert f'data-date="{today.isoformat()}" aria-current="date"' in page
    assert "No events this month" in page


def test_local_days_in_the_organisations_time_zone(app, portal, monkeypatch, make_event):
    monkeypatch.setitem(app.config, "TIMEZONE", "Africa/Lusaka")
    # 31 March 23:00 UTC is 1 April 01:00 in Lusaka: an April event there.
    at(make_event(title="Night vigil"), datetime(2027, 3, 31, 23, tzinfo=UTC))
    assert "Night vigil" not in text(portal.get("/events/calendar?month=2027-03"))
    assert day_links(text(portal.get("/events/calendar?month=2027-04"))) == [("2027-04-01", "1 April: 1 event")]


def test_bad_months_are_400(portal):
    for bad in ("2027-13", "2027-00", "27-03", "2027-3", "1999-12", "2201-01", "x", "2027-03-01", "٢٠٢٧-٠٣",
                "99999999999999999999-01"):
        assert portal.get(f"/events/calendar?month={bad}").status_code == 400, bad
    first = text(portal.get("/events/calendar?month=2000-01"))
    assert 'id="prev-month"' not in first and 'id="next-month"' in first
    assert 'id="next-month"' not in text(portal.get("/events/calendar?month=2200-12"))


def test_the_list_links_to_the_calendar(portal):
    page = text(portal.get("/events"))
    assert 'href="/events/calendar"' in page and 'id="view-list"\n     href="/events" aria-current="page"' in page


def test_a_login_without_a_member_and_anonymous(client, staff):
    assert client.get("/events/calendar").status_code == 302  # to sign in
    from tests.conftest import login

    login(client, "admin@test.org")
    assert client.get("/events/calendar").status_code == 404

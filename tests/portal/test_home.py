"""``/``: the public landing page, the member's dashboard, and the page for logins without a membership."""

from __future__ import annotations

import re
from datetime import date, timedelta

from app.extensions import db
from tests.conftest import login
from tests.portal.conftest import text


def test_anonymous_gets_the_landing_page_with_a_sign_in_link(client):
    response = client.get("/")
    assert response.status_code == 200
    page = text(response)
    assert 'id="landing"' in page and 'href="/login"' in page
    assert 'href="/join"' in page  # joining through the portal (issue 11)
    assert 'id="nav-card"' not in page and 'id="sign-out"' not in page


def test_staff_without_membership_see_a_short_page_and_the_console_link(client, staff):
    login(client, "coord@test.org")
    page = text(client.get("/"))
    assert 'id="account"' in page and "not linked to a membership record" in page
    assert 'id="nav-console"' in page and 'id="nav-card"' not in page


def test_dashboard_shows_membership_ward_card_and_empty_states(portal, member):
    response = portal.get("/")
    assert response.status_code == 200
    page = text(response)
    assert "Hello, Chanda" in page
    assert re.search(r'id="member-status" data-status="active">Active<', page)
    assert member.membership_number in page
    assert "<dt class=\"col-5\">Ward</dt>" in page and "Lukashya Ward 1" in page
    assert 'data-status="none"' in page and "do not have a membership card yet" in page
    assert "No upcoming events" in page and "No notices yet" in page
    for link in ('id="nav-dashboard"', 'id="nav-card"', 'id="nav-events"', 'id="sign-out"'):
        assert link in page
    assert 'id="nav-console"' not in page  # a plain member is no staff


def test_dashboard_lists_the_next_five_events_of_the_area_only(portal, tree, make_event):
    for days, unit in ((1, "w1"), (2, "c1"), (3, "d1"), (4, "p1"), (5, "w1"), (6, "w1"), (7, "w1")):
        make_event(tree[unit], days=days, title=f"Near {days}")
    make_event(tree["w2"], days=0.5, title="Sibling ward")
    make_event(tree["w4"], days=0.5, title="Other province")
    make_event(tree["w1"], days=0.5, title="Still a draft", status="draft")
    make_event(tree["w1"], days=0.5, title="Called off", status="cancelled")
    make_event(tree["w1"], days=-2, title="Long over")
    db.session.commit()
    page = text(portal.get("/"))
    shown = re.findall(r'<div class="fw-semibold text-break">([^<]+)</div>', page)
    assert shown == ["Near 1", "Near 2", "Near 3", "Near 4", "Near 5"]
    assert "All events (7)" in page and 'href="/events"' in page


def test_dashboard_shows_the_members_place_on_each_event(portal, member, make_event):
    from app.services import events as event_service

    event = make_event(title="Ward meeting")
    event_service.register(None, event, member)
    page = text(portal.get("/"))
    assert 'data-registration="registered"' in page


def test_dashboard_card_near_expiry_says_renewal_opens_with_dues(portal, member, make_card):
    card = make_card(member, expires_on=date.today() + timedelta(days=20))
    page = text(portal.get("/"))
    assert 'data-status="active"' in page and card.card_number in page
    assert "expires in 20 days: renewal opens with dues" in page


def test_pending_member_is_told_approval_is_awaited(client, tree, make_member, make_user):
    pending = make_member(tree["w1"], status="pending")
    make_user("pending@test.org", "member", member=pending)
    login(client, "pending@test.org")
    page = text(client.get("/"))
    assert "Pending approval" in page and "waiting for approval" in page


def test_portal_pages_keep_the_content_security_policy_and_run_no_inline_script(portal):
    response = portal.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    scripts = re.findall(r"<script([^>]*)>", text(response))
    assert scripts and all("src=" in attrs for attrs in scripts)
    assert not re.search(r"\son[a-z]+=", text(response))
    assert portal.get("/static/js/portal.js").status_code == 200
    assert portal.get("/static/css/portal.css").status_code == 200


def test_pages_fit_a_phone(portal):
    page = text(portal.get("/"))
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "navbar-toggler" in page  # the menu folds away on narrow screens


def test_dashboard_shows_the_newest_notifications_and_links_to_all(portal, member, other):
    from app.extensions import db
    from app.services import notifications

    for n in range(4):
        notifications.notify(member, "card.issued", f"Notice number {n}", "", "/card")
    notifications.notify(other, "card.issued", "Someone else's notice")
    db.session.commit()
    page = portal.get("/").get_data(as_text=True)
    shown = [f"Notice number {n}" for n in range(4) if f"Notice number {n}" in page]
    assert shown == ["Notice number 1", "Notice number 2", "Notice number 3"]  # the newest three
    assert "Someone else" not in page and 'id="all-notifications"' in page and 'href="/card"' in page

"""The portal's notifications (issue 12): the bell on every page, the list with its empty state and pages,
mark read / mark all read (POST, CSRF), email preferences, the one-click unsubscribe page, and a member never
seeing or changing another member's notifications."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from app.extensions import db
from app.models import Notification
from app.services import notifications as notes
from tests.conftest import login
from tests.portal.conftest import post, text


def _bell(html: str) -> str:
    match = re.search(r'<a[^>]*id="notification-bell".*?</a>', html, re.DOTALL)
    assert match, "no bell on the page"
    return match.group(0)


def test_the_bell_shows_the_unread_count_on_every_portal_page(app, portal, member, make_card):
    make_card(member)  # issuing a card notifies: one unread
    notes.notify(member, "reminder.renewal", "Renew soon")
    db.session.commit()
    for path in ("/", "/card", "/events", "/profile", "/notifications", "/notifications/preferences",
                 "/account/password"):
        bell = _bell(text(portal.get(path)))
        assert 'id="notification-count">2<' in bell, path
        assert 'aria-label="Notifications: 2 unread"' in bell
        assert 'hx-trigger="every 60s"' in bell and 'hx-get="/notifications/bell"' in bell
    assert "vendor/htmx/htmx.min.js" in text(portal.get("/"))


def test_the_bell_fragment_is_the_count_alone_and_follows_the_config(app, portal, member, monkeypatch):
    monkeypatch.setitem(app.config, "NOTIFICATIONS_POLL_SECONDS", 2)
    response = portal.get("/notifications/bell")
    assert response.status_code == 200 and "notification-count" not in text(response)
    assert 'aria-label="Notifications"' in text(response) and 'hx-trigger="every 2s"' in text(response)
    notes.notify(member, "card.issued", "New card")
    db.session.commit()
    assert 'id="notification-count">1<' in text(portal.get("/notifications/bell"))
    assert "<html" not in text(portal.get("/notifications/bell"))  # a fragment, not a page


def test_signed_out_the_bell_stops_polling_instead_of_showing_a_login_form(client):
    response = client.get("/notifications/bell")
    assert response.status_code == 286 and text(response) == ""


def test_no_bell_for_a_login_without_membership_nor_signed_out(client, staff):
    assert 'id="notification-bell"' not in text(client.get("/"))
    login(client, "admin@test.org")
    assert 'id="notification-bell"' not in text(client.get("/"))


def test_the_list_is_empty_at_first_then_shows_newest_first_in_pages(portal, member):
    page = text(portal.get("/notifications"))
    assert "No notifications yet" in page and 'id="mark-all-read"' not in page
    for i in range(12):
        notes.notify(member, "card.issued", f"Notice {i:02d}", f"Message {i:02d}")
    db.session.commit()
    first = text(portal.get("/notifications"))
    assert first.index("Notice 11") < first.index("Notice 10") and "Notice 01" not in first
    assert "1 / 2" in first and "Message 11" in first
    second = text(portal.get("/notifications?page=2"))
    assert "Notice 01" in second and "Notice 00" in second and "Notice 11" not in second
    assert portal.get("/notifications?page=x").status_code == 400
    assert portal.get("/notifications?page=99999999999999999999").status_code == 400


def test_mark_read_open_and_mark_all_read(portal, member):
    one = notes.notify(member, "card.issued", "Card ready", link="/card")
    two = notes.notify(member, "reminder.event", "Meeting tomorrow")
    db.session.commit()
    response = post(portal, f"/notifications/{two.id}/read")
    assert response.status_code == 302 and response.headers["Location"].endswith("/notifications")
    db.session.expire_all()
    assert db.session.get(Notification, two.id).read_at is not None
    assert 'id="notification-count">1<' in _bell(text(portal.get("/")))
    assert "Unread (1)" in text(portal.get("/notifications"))
    assert "No unread notifications" not in text(portal.get("/notifications?unread=1"))

    opened = post(portal, f"/notifications/{one.id}/read", {"open": "1"})
    assert opened.status_code == 302 and opened.headers["Location"] == "/card"
    assert "No unread notifications" in text(portal.get("/notifications?unread=1"))

    notes.notify(member, "card.issued", "A", link="/card")
    notes.notify(member, "card.issued", "B")
    db.session.commit()
    response = post(portal, "/notifications/read-all")
    assert response.status_code == 302
    assert "All notifications are marked read." in text(portal.get("/notifications"))
    assert "notification-count" not in _bell(text(portal.get("/")))


def test_posts_without_the_csrf_token_change_nothing(portal, member):
    note = notes.notify(member, "card.issued", "Card ready")
    db.session.commit()
    for url in (f"/notifications/{note.id}/read", "/notifications/read-all"):
        response = post(portal, url, token=False)
        assert response.status_code in (302, 400)
    db.session.expire_all()
    assert db.session.get(Notification, note.id).read_at is None


def test_a_member_never_sees_or_marks_another_members_notifications(portal, member, other):
    theirs = notes.notify(other, "card.issued", "Bwalya's secret notice", "Private text")
    db.session.commit()
    assert "Bwalya" not in text(portal.get("/notifications"))
    assert "notification-count" not in _bell(text(portal.get("/")))
    for url in (f"/notifications/{theirs.id}/read", f"/notifications/{theirs.id + 1000}/read"):
        assert post(portal, url).status_code == 404
        assert post(portal, url, {"open": "1"}).status_code == 404
    post(portal, "/notifications/read-all")
    db.session.expire_all()
    assert db.session.get(Notification, theirs.id).read_at is None


def test_signed_out_the_pages_ask_for_sign_in(client, member):
    for url in ("/notifications", "/notifications/preferences"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- preferences -----------------------------------------------------------------------------


def test_preferences_page_saves_optional_kinds_and_shows_required_ones_always_on(portal, member):
    page = text(portal.get("/notifications/preferences"))
    assert re.search(r'id="pref-card.revoked"[^>]*checked disabled', page)
    assert re.search(r'name="emailed" value="reminder.renewal" id="pref-reminder.renewal"\s*checked', page)
    assert "Always on" in page and "cannot be switched off" in page
    response = post(portal, "/notifications/preferences", {"emailed": ["card.issued", "reminder.event"]})
    assert response.status_code == 302
    assert "Your email preferences are saved." in text(portal.get("/notifications/preferences"))
    db.session.expire_all()
    assert notes.wants_email(member, "card.issued") and notes.wants_email(member, "reminder.event")
    assert not notes.wants_email(member, "reminder.renewal")
    # A forged form trying to switch a required kind off has no field for it: it stays on.
    post(portal, "/notifications/preferences", {"emailed": [], "card.revoked": "off"})
    assert notes.wants_email(member, "card.revoked") and not notes.wants_email(member, "card.issued")
    # An unknown kind is refused with a message, not a 500, and changes nothing.
    response = post(portal, "/notifications/preferences", {"emailed": ["reminder.event", "no.such"]})
    assert response.status_code == 422 and "no such kind" in text(response)
    db.session.rollback()
    assert not notes.wants_email(member, "card.issued")


def test_preferences_without_csrf_are_refused(portal, member):
    response = post(portal, "/notifications/preferences", {"emailed": []}, token=False)
    assert response.status_code == 400
    assert notes.wants_email(member, "reminder.renewal")


# --- unsubscribe -------------------------------------------------------------------------------


@pytest.fixture()
def link(member):
    return urlsplit(notes.unsubscribe_url(member, "reminder.renewal")).path


def test_unsubscribe_get_only_asks_then_post_switches_off_without_sign_in(client, member, link):
    db.session.commit()
    page = client.get(link)
    assert page.status_code == 200
    assert "Stop emails about “Renewal reminders”?" in text(page) and 'id="unsubscribe-confirm"' in text(page)
    assert notes.wants_email(member, "reminder.renewal")  # a mail scanner fetching the link changes nothing
    done = client.post(link)  # the button (no CSRF token: the signed link is the proof)
    assert done.status_code == 200 and "You will no longer get emails about “Renewal reminders”" in text(done)
    db.session.expire_all()
    assert not notes.wants_email(member, "reminder.renewal") and notes.wants_email(member, "reminder.event")
    assert "already switched off" in text(client.get(link))


def test_rfc8058_one_click_post_unsubscribes(client, member, link):
    db.session.commit()
    response = client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 204
    db.session.expire_all()
    assert not notes.wants_email(member, "reminder.renewal")


def test_a_tampered_unsubscribe_link_is_refused(client, member, link):
    db.session.commit()
    bad = link[:-3] + ("xyz" if not link.endswith("xyz") else "abc")
    for response in (client.get(bad), client.post(bad, data={"List-Unsubscribe": "One-Click"})):
        assert response.status_code == 400 and "not valid" in text(response)
    assert client.get("/unsubscribe/" + "9" * 400).status_code == 400
    db.session.expire_all()
    assert notes.wants_email(member, "reminder.renewal")

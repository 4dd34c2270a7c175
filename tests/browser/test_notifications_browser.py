"""The portal bell in a real browser (Chromium, 360 x 740): a notification created while the page is open shows
up in the bell after the next htmx poll, without a reload; the notifications page lists it and "Mark all read"
clears the count. The poll interval comes from MUSTER_NOTIFICATIONS_POLL_SECONDS (1 s here, 60 s by default),
so the test does not wait a minute."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.services import notifications as notes
from tests.browser.support import PHONE, fits, shot, sign_in
from tests.browser.test_portal_a11y import axe_violations, report
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_the_bell_shows_a_new_notification_after_the_poll(live_server, committing_app, browser, tree, make_member,
                                                          make_user, monkeypatch):
    monkeypatch.setitem(committing_app.config, "NOTIFICATIONS_POLL_SECONDS", 1)
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", email="chanda.m@example.org")
    make_user("chanda@test.org", "member", member=member)
    db.session.commit()

    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        sign_in(page, live_server, "chanda@test.org", PASSWORD)
        bell = page.locator("#notification-bell")
        assert bell.is_visible()  # outside the collapsed menu: seen on a phone without opening it
        assert bell.get_attribute("data-unread") == "0" and page.locator("#notification-count").count() == 0
        assert bell.get_attribute("hx-trigger") == "every 1s"

        # Staff act meanwhile (another process, as far as this page knows).
        notes.notify(member, "card.issued", "Your membership card MX-1 was issued", "Valid until next year.", "/card")
        db.session.commit()

        page.wait_for_selector("#notification-count", timeout=10_000)  # no reload: htmx swapped the bell
        assert page.locator("#notification-count").inner_text() == "1"
        assert page.locator("#notification-bell").get_attribute("aria-label") == "Notifications: 1 unread"
        assert fits(page)
        shot(page, "notifications-bell")

        with page.expect_navigation():
            page.click("#notification-bell")
        assert "Your membership card MX-1 was issued" in page.locator("#notification-list").inner_text()
        assert fits(page)
        shot(page, "notifications-list")
        with page.expect_navigation():
            page.click("#mark-all-read button")
        assert "All notifications are marked read." in page.content()
        assert page.locator("#notification-count").count() == 0
        assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    finally:
        context.close()


def test_notification_pages_have_no_serious_or_critical_axe_violations(live_server, browser, tree, make_member,
                                                                       make_user):
    from urllib.parse import urlsplit

    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", email="chanda.m@example.org")
    make_user("chanda@test.org", "member", member=member)
    notes.notify(member, "card.issued", "Your membership card MX-1 was issued", "Valid until next year.", "/card")
    notes.notify(member, "reminder.event", "Ward meeting tomorrow")
    unsubscribe = urlsplit(notes.unsubscribe_url(member, "reminder.renewal")).path
    db.session.commit()
    # bypass_csp lets the test inject axe (the pages themselves run no inline script).
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True,
                                  bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    found = {}
    try:
        page.goto(f"{live_server}{unsubscribe}")  # signed out: the one-click page
        found["unsubscribe"] = axe_violations(page)
        sign_in(page, live_server, "chanda@test.org", PASSWORD)
        for path in ("/notifications", "/notifications?unread=1", "/notifications/preferences"):
            page.goto(f"{live_server}{path}")
            assert fits(page), path
            found[path] = axe_violations(page)
        page.goto(f"{live_server}/")
        found["dashboard with the bell"] = axe_violations(page)
    finally:
        context.close()
    assert not any(found.values()), report(found)

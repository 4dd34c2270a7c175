"""A member on a phone (360 x 740): signs in, sees the dashboard, shows the card's QR, registers for an event.

The QR code is read back from a screenshot of the page with zxing-cpp and
verified like a scan at the door. Set PORTAL_SCREENSHOTS=/some/dir to keep
screenshots of the pages along the way.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import zxingcpp
from PIL import Image

from app.extensions import db
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import events as event_service
from tests.browser.support import PHONE, fits, menu, shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_member_shows_card_and_registers_on_a_phone(live_server, browser, tree, make_member, make_user):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa")
    make_user("chanda@test.org", "member", member=member)
    card = card_service.issue_card(None, member)
    start = utcnow() + timedelta(days=2)
    event = event_service.create_event(None, {"title": "Ward meeting", "start_at": start,
                                              "end_at": start + timedelta(hours=2), "unit_id": tree["w1"].id,
                                              "status": "upcoming", "capacity": 20, "venue": "Community hall"})
    db.session.commit()

    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{live_server}/")
        assert page.locator("#landing").is_visible()
        with page.expect_navigation():
            page.click("#landing-sign-in")
        page.fill("input[name=email]", "chanda@test.org")
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.url == f"{live_server}/"

        # The dashboard.
        assert page.locator("h1").inner_text() == "Hello, Chanda"
        assert page.locator("#membership-number").inner_text() == member.membership_number
        assert page.locator("#member-unit").inner_text() == "Lukashya Ward 1"
        assert page.locator("#dashboard-card #card-status").get_attribute("data-status") == "active"
        assert "Ward meeting" in page.locator("#dashboard-events").inner_text()
        assert f"Your membership card {card.card_number} was issued" in page.locator("#notices").inner_text()
        assert not page.locator("#nav-card").is_visible()  # folded into the menu on a phone
        assert fits(page)
        shot(page, "portal-1-dashboard")

        # My card: the QR code on screen scans to a credential that verifies.
        menu(page, "nav-card")
        qr = page.locator("#card-qr")
        qr.scroll_into_view_if_needed()
        page.wait_for_function("document.getElementById('card-qr').complete "
                               "&& document.getElementById('card-qr').naturalWidth > 0")
        box = qr.bounding_box()
        assert box["width"] >= 250 and abs(box["width"] - box["height"]) < 2  # big and square on a 360 px screen
        assert fits(page)
        shot(page, "portal-2-card")
        picture = Image.open(io.BytesIO(qr.screenshot()))
        found = zxingcpp.read_barcodes(picture)
        assert len(found) == 1, "the QR code on the screen could not be read"
        verdict = card_service.verify_token(card_service.scanned_token(found[0].text))
        assert (verdict.status, verdict.card_number) == ("valid", card.card_number)
        assert page.locator("#card-number").inner_text() == card.card_number
        with page.expect_download() as download:
            page.click("#card-pdf")
        assert download.value.suggested_filename == f"card-{card.card_number}.pdf"

        # My events: open the event, register, and find it among "You are going to".
        menu(page, "nav-events")
        assert page.locator("#my-registrations").count() == 0
        with page.expect_navigation():
            page.click(f"#open-events [data-event-id='{event.id}']")
        assert page.locator("#my-registration").get_attribute("data-status") == "none"
        with page.expect_navigation():
            page.click("#register")
        assert "You are registered for Ward meeting." in page.locator(".alert-success").inner_text()
        assert page.locator("#my-registration").get_attribute("data-status") == "registered"
        assert fits(page)
        shot(page, "portal-3-registered")
        menu(page, "nav-events")
        going = page.locator("#my-registrations")
        assert "Ward meeting" in going.inner_text() and "Registered" in going.inner_text()
        assert fits(page)
        shot(page, "portal-4-my-events")
    finally:
        context.close()

    db.session.rollback()  # a fresh transaction sees what the server committed
    assert event_service.registration_for(event, member).status == "registered"

"""Issue 11's "Done when", as a person meets it: one member's whole journey on a phone, with real mail.

A visitor joins on a 360 x 740 phone (the ward picked through the htmx
cascade), confirms the address from the mail, a ward coordinator approves
them in the console, an admin issues a card from the member's console page,
and the member signs in, shows the card's QR (read back from a screenshot
with zxing-cpp and verified), downloads the PDF, registers for an event,
recovers a forgotten password and gets a change of name approved. Every mail
goes through the app's real path (outbox, queue in immediate mode, SMTP) to
an aiosmtpd server, and every link is read from the mail's text body: it
must start with MUSTER_PUBLIC_URL, set here to the live server's address.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import Member
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import events as event_service
from app.services.auth import WRONG_CREDENTIALS
from tests.browser.support import (
    desktop_page,
    fits,
    link_in,
    menu,
    open_menu,
    phone_page,
    sign_in,
    submit,
    wait_for_mail,
)
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

EMAIL = "mutale.zulu@example.org"
FIRST_PASSWORD = "a-long-enough-password"
NEW_PASSWORD = "a-much-better-passphrase"


def _join(page, base: str, tree) -> None:
    """Step 1: the join form on the phone, the ward through the cascading selects."""
    page.goto(f"{base}/join")
    assert fits(page)
    for level, key in enumerate(("p1", "d1", "c1", "w1")):
        option = page.locator(f"#unit_{level} option[value='{tree[key].id}']")
        option.wait_for(state="attached")  # loaded by htmx once the level above is chosen
        page.select_option(f"#unit_{level}", str(tree[key].id))
    for name, value in (("first_name", "Mutale"), ("last_name", "Zulu"), ("date_of_birth", "1992-03-14"),
                        ("national_id", "123456/78/1"), ("phone", "0977000111"), ("email", EMAIL),
                        ("address", "Plot 4, Kasama"), ("password", FIRST_PASSWORD), ("confirm", FIRST_PASSWORD)):
        page.fill(f"#{name}", value)
    page.check("#consent")
    submit(page, "#join-submit")
    done = page.locator("#join-done")
    assert "We have sent you an email" in done.inner_text()
    assert fits(page)


def _scan_qr(page) -> str:
    """Step 5: what a door scanner reads from the QR code on the phone's screen."""
    qr = page.locator("#card-qr")
    qr.scroll_into_view_if_needed()
    page.wait_for_function("document.getElementById('card-qr').complete "
                           "&& document.getElementById('card-qr').naturalWidth > 0")
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.screenshot())))
    assert len(found) == 1, "the QR code on the screen could not be read"
    return found[0].text


def test_a_person_joins_on_a_phone_and_uses_the_portal(live_server, browser, tree, make_user, smtp_mail,
                                                        app, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", live_server)  # mailed and printed links point here
    make_user("coord@test.org", "ward_coordinator", tree["w1"])
    make_user("admin@test.org", "admin")
    start = utcnow() + timedelta(days=3)
    event = event_service.create_event(None, {"title": "Ward meeting", "start_at": start,
                                              "end_at": start + timedelta(hours=2), "unit_id": tree["w1"].id,
                                              "status": "upcoming", "capacity": 20, "venue": "Community hall"})
    db.session.commit()

    phone = phone_page(browser)
    console = desktop_page(browser)
    admin = desktop_page(browser)
    try:
        # 1. Join on the phone.
        _join(phone, live_server, tree)

        # 2. The verification mail, its link, the confirm button.
        verify_mail = wait_for_mail(smtp_mail, EMAIL, "Confirm your email address")
        phone.goto(link_in(verify_mail, "/join/verify/", live_server))
        assert phone.locator("#verify-email").get_attribute("data-state") == "confirm"
        submit(phone, "#verify-confirm")
        assert phone.locator("#verify-done").inner_text() == f"Your email address {EMAIL} is confirmed."

        # 3. The ward's coordinator approves in the console; the welcome mail arrives.
        sign_in(console, live_server, "coord@test.org", PASSWORD)
        assert console.url == f"{live_server}/admin/"
        with console.expect_navigation():
            console.click("nav a:has-text('Pending approvals')")
        row = console.locator("#approvals-list tr", has_text="Mutale Zulu")
        assert row.locator("[data-verified]").inner_text() == "verified"
        with console.expect_navigation():
            row.locator("button:has-text('Approve')").click()
        assert "Approved Mutale Zulu" in console.locator(".alert-success").inner_text()
        expect(console.locator("#no-approvals")).to_be_visible()
        welcome = wait_for_mail(smtp_mail, EMAIL, "Welcome to ")
        assert "has been approved" in welcome.get_body(("plain",)).get_content()
        link_in(welcome, "/login", live_server)

        # 4. An admin issues the card from the member's console page (the "Issue card" button).
        db.session.rollback()  # a fresh transaction sees what the server committed
        member = db.session.scalar(select(Member).where(Member.national_id == "123456/78/1"))
        sign_in(admin, live_server, "admin@test.org", PASSWORD)
        admin.goto(f"{live_server}/admin/member/details/?id={member.id}")
        submit(admin, "#issue-card-form button[type=submit]")
        issued = admin.locator(".alert-success").inner_text()
        assert "issued to Mutale Zulu" in issued
        card_number = issued.split("Card ", 1)[1].split(" ", 1)[0]

        # 5. The member signs in on the phone: the dashboard, the card, its QR, its PDF.
        sign_in(phone, live_server, EMAIL, FIRST_PASSWORD)
        assert phone.url == f"{live_server}/"
        assert phone.locator("h1").inner_text() == "Hello, Mutale"
        assert phone.locator("#member-status").get_attribute("data-status") == "active"
        assert phone.locator("#member-unit").inner_text() == "Lukashya Ward 1"
        assert phone.locator("#dashboard-card #card-status").get_attribute("data-status") == "active"
        assert "Ward meeting" in phone.locator("#dashboard-events").inner_text()
        assert fits(phone)
        menu(phone, "nav-card")
        assert phone.locator("#card-number").inner_text() == card_number
        assert fits(phone)
        scanned = _scan_qr(phone)
        assert scanned.startswith(f"{live_server}/verify/")
        db.session.rollback()
        verdict = card_service.verify_token(card_service.scanned_token(scanned))
        assert (verdict.status, verdict.card_number) == ("valid", card_number)
        with phone.expect_download() as download:
            phone.click("#card-pdf")
        assert download.value.suggested_filename == f"card-{card_number}.pdf"
        with open(download.value.path(), "rb") as pdf:
            assert pdf.read(5) == b"%PDF-"
        door = phone.context.new_page()  # the link in the QR, opened as a phone camera would
        door.goto(scanned)
        assert door.locator("#verification").get_attribute("data-status") == "valid"
        door.close()

        # 6. An event in the ward: register, see it under My events, the confirmation mail.
        menu(phone, "nav-events")
        with phone.expect_navigation():
            phone.click(f"#open-events [data-event-id='{event.id}']")
        submit(phone, "#register")
        assert "You are registered for Ward meeting." in phone.locator(".alert-success").inner_text()
        menu(phone, "nav-events")
        going = phone.locator("#my-registrations")
        assert "Ward meeting" in going.inner_text() and "Registered" in going.inner_text()
        assert fits(phone)
        registered = wait_for_mail(smtp_mail, EMAIL, "You are registered: Ward meeting")
        link_in(registered, f"/events/{event.id}", live_server)

        # 7. Sign out, forget the password, reset it from the mail, sign in with the new one only.
        if not phone.locator("#sign-out").is_visible():
            open_menu(phone)
        submit(phone, "#sign-out")
        with phone.expect_navigation():
            phone.click("#forgot-link")
        phone.fill("input[name=login]", EMAIL)
        submit(phone)
        assert phone.locator("#forgot-sent h1").inner_text() == "Check your email"
        reset = wait_for_mail(smtp_mail, EMAIL, "Choose a new password")
        phone.goto(link_in(reset, "/password/reset/", live_server))
        assert phone.locator("#reset h1").inner_text() == "Choose a new password"
        phone.fill("input[name=password]", NEW_PASSWORD)
        phone.fill("input[name=confirm]", NEW_PASSWORD)
        submit(phone)
        assert "Your new password is set" in phone.locator("main").inner_text()
        sign_in(phone, live_server, EMAIL, FIRST_PASSWORD)
        assert phone.url == f"{live_server}/login"  # the old password no longer works
        expect(phone.locator(".invalid-feedback")).to_have_text(WRONG_CREDENTIALS)
        sign_in(phone, live_server, EMAIL, NEW_PASSWORD)
        assert phone.url == f"{live_server}/"
        assert phone.locator("h1").inner_text() == "Hello, Mutale"

        # 8. A change of name: asked on the profile, approved by the coordinator, shown on the profile.
        menu(phone, "nav-profile")
        assert phone.locator("#profile-name").inner_text() == "Mutale Zulu"
        phone.fill("#last_name", "Zulu-Banda")
        phone.fill("#note", "Married in June")
        submit(phone, "#change-send")
        assert "Zulu-Banda" in phone.locator("#pending-change").inner_text()
        console.goto(f"{live_server}/admin/change-requests/")
        with console.expect_navigation():
            console.click("#change-list a:has-text('Mutale Zulu')")
        assert "Married in June" in console.locator("#member-note").inner_text()
        submit(console, "#approve")
        assert "Approved: Mutale Zulu-Banda's record is changed" in console.locator(".alert-success").inner_text()
        wait_for_mail(smtp_mail, EMAIL, "Your change request was approved")
        phone.reload()
        assert phone.locator("#profile-name").inner_text() == "Mutale Zulu-Banda"
        expect(phone.locator("#pending-change")).to_have_count(0)
        assert fits(phone)
    finally:
        for page in (phone, console, admin):
            page.context.close()

"""The profile on a phone (360 x 740): a change request, a coordinator approves it in the console, the profile shows it.

Also: the profile fits the screen, the pending request shows, and the
coordinator's queue lists it. Set PORTAL_SCREENSHOTS=/some/dir to keep
screenshots of the pages along the way.
"""

from __future__ import annotations

import pytest

from app.extensions import db
from tests.browser.support import PHONE, fits, open_menu, shot, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_change_request_approved_by_the_coordinator_shows_on_the_profile(live_server, browser, tree, make_member,
                                                                         make_user):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", email="chanda.m@example.org")
    make_user("chanda@test.org", "member", member=member)
    make_user("coord@test.org", "ward_coordinator", tree["w1"])
    db.session.commit()

    phone = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = phone.new_page()
    page.set_default_timeout(15_000)
    console = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    console.set_default_timeout(15_000)
    try:
        sign_in(page, live_server, "chanda@test.org", PASSWORD)
        open_menu(page)
        with page.expect_navigation():
            page.click("#nav-profile")
        assert page.locator("h1").inner_text() == "My profile"
        assert page.locator("[data-field=last_name]").inner_text() == "Mwansa"
        assert fits(page)
        shot(page, "profile-profile")

        page.fill("#last_name", "Mwansa-Banda")
        page.fill("#note", "Married in June")
        with page.expect_navigation():
            page.click("#change-send")
        assert "Change request pending" in page.locator("#pending-change").inner_text()
        assert "Mwansa-Banda" in page.locator("#pending-change").inner_text()
        assert fits(page)
        shot(page, "profile-pending")

        sign_in(console, live_server, "coord@test.org", PASSWORD)
        console.goto(f"{live_server}/admin/change-requests/")
        with console.expect_navigation():
            console.click("#change-list a:has-text('Chanda Mwansa')")
        assert "Married in June" in console.locator("#member-note").inner_text()
        console.fill("#approve-form textarea[name=note]", "Congratulations")
        with console.expect_navigation():
            console.click("#approve")
        assert "Approved" in console.content()

        page.reload()
        assert page.locator("[data-field=last_name]").inner_text() == "Mwansa-Banda"
        assert page.locator("#pending-change").count() == 0
        assert "Approved" in page.locator("#earlier-changes").inner_text()
        assert fits(page)
        shot(page, "profile-approved")
    finally:
        phone.close()
        console.context.close()

"""On a phone (360 x 740): forgot password -> the mail (real SMTP) -> the link -> a new password -> sign in by phone.

Then "Change password" from the portal's menu. Every page fits the screen's width.
"""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from tests.browser.support import PHONE, fits, open_menu, submit
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

NEW = "a-much-better-passphrase"
NEWER = "an-even-better-passphrase"


def test_forgot_password_to_sign_in_on_a_phone(live_server, browser, tree, make_member, make_user, smtp_mail):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", phone="0977123456")
    make_user("chanda@test.org", "member", member=member)
    db.session.commit()

    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{live_server}/login")
        with page.expect_navigation():
            page.click("#forgot-link")
        assert fits(page)
        page.fill("input[name=login]", "0977 123 456")
        submit(page)
        assert page.locator("#forgot-sent h1").inner_text() == "Check your email"

        [mail] = smtp_mail.wait_for(1)
        body = mail.get_body(("plain",)).get_content()
        path = re.search(r"http://[^/\s]+(/password/reset/\S+)", body).group(1)
        page.goto(f"{live_server}{path}")
        assert page.locator("#reset h1").inner_text() == "Choose a new password"
        assert fits(page)
        page.fill("input[name=password]", NEW)
        page.fill("input[name=confirm]", "not the same at all")
        submit(page)
        assert "The two passwords are not the same." in page.locator("#reset").inner_text()
        page.fill("input[name=password]", NEW)
        page.fill("input[name=confirm]", NEW)
        submit(page)
        assert page.url == f"{live_server}/login"
        assert "Your new password is set" in page.locator("main").inner_text()

        page.fill("input[name=email]", "0977 123 456")
        page.fill("input[name=password]", NEW)
        submit(page)
        assert page.url == f"{live_server}/"
        assert page.locator("h1").inner_text() == "Hello, Chanda"

        # Change it again from the menu.
        if not page.locator("#nav-password").is_visible():
            open_menu(page)
        with page.expect_navigation():
            page.click("#nav-password")
        assert fits(page)
        page.fill("input[name=current_password]", PASSWORD)  # the old one: refused
        page.fill("input[name=password]", NEWER)
        page.fill("input[name=confirm]", NEWER)
        submit(page)
        assert "This is not your current password." in page.locator("#change-password").inner_text()
        page.fill("input[name=current_password]", NEW)
        page.fill("input[name=password]", NEWER)
        page.fill("input[name=confirm]", NEWER)
        submit(page)
        assert "Your password is changed" in page.locator("main").inner_text()
        page.goto(f"{live_server}/")
        assert page.locator("h1").inner_text() == "Hello, Chanda"  # still signed in
    finally:
        context.close()

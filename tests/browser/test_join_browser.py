"""The join form on a phone (360 x 740): the cascading ward selects load with htmx under the real CSP.

Only the picker and the submit are driven here (the whole journey, with the
verification mail and the approval, is the portal's end-to-end test). Set
PORTAL_SCREENSHOTS=/some/dir to keep screenshots.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Member

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}


def test_the_ward_picker_cascades_and_the_form_fits_a_phone(live_server, browser, tree):
    db.session.commit()
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(f"{live_server}/join")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert not page.locator("#next-list").is_visible()  # the no-JavaScript button stays hidden
        page.select_option("#unit_0", str(tree["p1"].id))
        page.wait_for_selector(f"#unit_1 option[value='{tree['d1'].id}']", state="attached")
        page.select_option("#unit_1", str(tree["d1"].id))
        page.wait_for_selector(f"#unit_2 option[value='{tree['c1'].id}']", state="attached")
        page.select_option("#unit_2", str(tree["c1"].id))
        page.wait_for_selector(f"#unit_3 option[value='{tree['w2'].id}']", state="attached")
        page.select_option("#unit_3", str(tree["w2"].id))
        # Changing the province empties the lists below it.
        page.select_option("#unit_0", str(tree["p2"].id))
        page.wait_for_selector(f"#unit_1 option[value='{tree['d3'].id}']", state="attached")
        assert page.locator("#unit_3 option").all_inner_texts() == ["Choose a constituency first"]
        for key in ("d3", "c3", "w4"):
            level = {"d3": 1, "c3": 2, "w4": 3}[key]
            page.wait_for_selector(f"#unit_{level} option[value='{tree[key].id}']", state="attached")
            page.select_option(f"#unit_{level}", str(tree[key].id))
        for name, value in (("first_name", "Mutale"), ("last_name", "Zulu"), ("date_of_birth", "1992-03-14"),
                            ("national_id", "123456/78/1"), ("phone", "0977000111"),
                            ("email", "mutale@example.org"), ("address", "Plot 4"),
                            ("password", "a-long-enough-password"), ("confirm", "a-long-enough-password")):
            page.fill(f"#{name}", value)
        page.check("#consent")
        if os.environ.get("PORTAL_SCREENSHOTS"):
            page.screenshot(path=os.path.join(os.environ["PORTAL_SCREENSHOTS"], "join-form.png"), full_page=True)
        with page.expect_navigation():
            page.click("#join-submit")
        assert page.locator("#join-done").is_visible()
    finally:
        context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    db.session.rollback()  # a fresh read: the server thread committed the application
    member = db.session.scalar(select(Member).where(Member.national_id == "123456/78/1"))
    assert member is not None and member.unit_id == tree["w4"].id and member.status == "pending"

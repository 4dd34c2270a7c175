"""A coordinator works in the console through a real browser, confined to their ward."""

import pytest

from app.extensions import db
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_coordinator_adds_and_finds_a_member_but_not_other_wards(live_server, page, tree, staff, make_member):
    make_member(tree["w3"], first_name="Hidden", last_name="Outsider", phone="+260977000003")
    make_member(tree["w1"], first_name="Known", last_name="Insider", phone="+260977000001")
    db.session.commit()

    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "coord@test.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/admin/")

    page.goto(f"{live_server}/admin/member/new/")
    page.fill("#first_name", "Thandiwe")
    page.fill("#last_name", "Zulu")
    page.fill("#phone", "0977 123 456")
    page.select_option("#unit", label=page.locator("#unit option", has_text="Lukashya Ward 1").first.inner_text())
    page.click("input[type=submit][value=Save], button[type=submit]:has-text('Save')")
    page.wait_for_url(f"{live_server}/admin/member/**")
    assert "Thandiwe" in page.content() or "Record was successfully created" in page.content()

    page.goto(f"{live_server}/admin/member/")
    page.fill("input[name=search]", "zulu")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    rows = page.locator("table tbody tr")
    assert rows.count() == 1
    assert "Thandiwe" in rows.first.inner_text() and "+260977123456" in rows.first.inner_text()

    page.goto(f"{live_server}/admin/member/")
    page.fill("input[name=search]", "outsider")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Hidden" not in page.locator("body").inner_text()
    page.fill("input[name=search]", "+260977000003")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Hidden" not in page.locator("body").inner_text()

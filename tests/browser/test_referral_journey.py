"""Issue 13's "Done when", as people meet it: a member shares their join link, a friend joins through it,
a coordinator approves, and the referrer sees the credit, their points and their rank.

The referrer reads the link from the "Refer a friend" page on a phone and its
QR code from the screen (zxing-cpp, as a friend's camera would); the friend
opens that link on a phone of their own, finds the code filled in and joins;
the ward's coordinator approves in the console; the referrer's page then
shows the points (the ledger's sum) and rank 1 in ward and constituency.
"""

from __future__ import annotations

import io
from urllib.parse import unquote

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import Member, PointsEntry, Referral
from tests.browser.support import desktop_page, fits, menu, phone_page, sign_in, submit
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

FRIEND_EMAIL = "mutale.zulu@example.org"


def _read_qr(page, selector: str) -> str:
    image = page.locator(selector)
    image.scroll_into_view_if_needed()
    page.wait_for_function(f"document.querySelector('{selector}').complete "
                           f"&& document.querySelector('{selector}').naturalWidth > 0")
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.screenshot())))
    assert len(found) == 1, "the QR code on the screen could not be read"
    return found[0].text


def test_a_friend_joins_through_the_link_and_the_referrer_sees_the_credit_and_rank(
        live_server, browser, tree, make_member, make_user, smtp_mail, app, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", live_server)  # shared links point at this server
    ada = make_member(tree["w1"], first_name="Ada", last_name="Banda", phone="0971000001", email="ada@example.org")
    make_user("ada@test.org", "member", member=ada)
    make_user("coord@test.org", "ward_coordinator", tree["w1"])
    db.session.commit()

    referrer = phone_page(browser)
    friend = phone_page(browser)
    console = desktop_page(browser)
    try:
        # 1. Ada opens "Refer a friend": her code, her link, its QR on the screen.
        sign_in(referrer, live_server, "ada@test.org", PASSWORD)
        menu(referrer, "nav-referrals")
        code = referrer.locator("#referral-code").inner_text()
        link = referrer.locator("#join-link").input_value()
        assert link == f"{live_server}/join?ref={code}"
        assert _read_qr(referrer, "#referral-qr") == link
        assert link in unquote(referrer.locator("#share-whatsapp").get_attribute("href"))
        assert referrer.locator("#points-balance").inner_text() == "0"
        assert fits(referrer)

        # 2. The friend opens the link on their own phone: the code is filled in; they join.
        friend.goto(link)
        assert friend.locator("#referral_code").input_value() == code
        for level, key in enumerate(("p1", "d1", "c1", "w1")):
            friend.locator(f"#unit_{level} option[value='{tree[key].id}']").wait_for(state="attached")
            friend.select_option(f"#unit_{level}", str(tree[key].id))
        for name, value in (("first_name", "Mutale"), ("last_name", "Zulu"), ("date_of_birth", "1992-03-14"),
                            ("national_id", "123456/78/1"), ("phone", "0977000111"), ("email", FRIEND_EMAIL),
                            ("address", "Plot 4, Kasama"), ("password", "a-long-enough-password"),
                            ("confirm", "a-long-enough-password")):
            friend.fill(f"#{name}", value)
        friend.check("#consent")
        submit(friend, "#join-submit")
        assert friend.locator("#join-done").is_visible()

        # Ada's list already shows the friend, joined and waiting for approval; no points yet.
        referrer.reload()
        item = referrer.locator("#my-referrals li[data-status='registered']")
        assert "Mutale Zulu" in item.inner_text() and "Joined" in item.inner_text()
        assert referrer.locator("#points-balance").inner_text() == "0"

        # 3. The ward's coordinator approves the application.
        sign_in(console, live_server, "coord@test.org", PASSWORD)
        with console.expect_navigation():
            console.click("nav a:has-text('Pending approvals')")
        row = console.locator("#approvals-list tr", has_text="Mutale Zulu")
        with console.expect_navigation():
            row.locator("button:has-text('Approve')").click()
        assert "Approved Mutale Zulu" in console.locator(".alert-success").inner_text()

        # 4. Ada sees the credit, her points and her rank.
        referrer.reload()
        points = app.config["REFERRAL_POINTS"]
        assert referrer.locator("#points-balance").inner_text() == str(points)
        credited = referrer.locator("#my-referrals li[data-status='credited']")
        assert "Mutale Zulu" in credited.inner_text() and f"{points} points" in credited.inner_text()
        ward_rank = referrer.locator(f"#ranks li[data-unit-id='{tree['w1'].id}'] .rank").inner_text()
        constituency_rank = referrer.locator(f"#ranks li[data-unit-id='{tree['c1'].id}'] .rank").inner_text()
        assert (ward_rank, constituency_rank) == ("rank 1", "rank 1")
    finally:
        for page in (referrer, friend, console):
            page.context.close()

    db.session.rollback()  # a fresh read of what the server committed
    newcomer = db.session.scalar(select(Member).where(Member.email == FRIEND_EMAIL))
    referral = db.session.scalar(select(Referral).where(Referral.referred_member_id == newcomer.id))
    assert (referral.referrer_id, referral.source, referral.status) == (ada.id, "link", "credited")
    assert sum(db.session.scalars(select(PointsEntry.points).where(PointsEntry.member_id == ada.id))) == points

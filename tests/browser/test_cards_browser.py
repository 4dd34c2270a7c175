"""An admin prints a ward's cards in bulk through a real browser; a phone opens a card's QR link.

Set CARD_SCREENSHOTS=/some/dir to keep screenshots of the pages along the way.
"""

import os
import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import MembershipCard
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _shot(page, name):
    folder = os.environ.get("CARD_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def test_admin_prints_a_ward_and_a_revoked_card_says_so(live_server, page, tree, staff, make_member):
    for first, last in (("Chanda", "Mwansa"), ("Zoë", "Łukasiewicz"), ("محمد", "عبد الله")):
        make_member(tree["w1"], first_name=first, last_name=last)
    db.session.commit()

    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "admin@test.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/admin/")

    page.goto(f"{live_server}/admin/cards/")
    page.click("#card-batch-link")
    page.select_option("#unit", label=page.locator("#unit option", has_text="Lukashya Ward 1").first.inner_text())
    page.check("input[name=mode][value=issue]")
    _shot(page, "1-batch-form")
    with page.expect_navigation():
        page.click("#card-batch-form button[type=submit]")
    assert "/admin/jobs/" in page.url
    page.wait_for_selector("#job-progress[data-state=succeeded]")
    _shot(page, "2-job-done")
    with page.expect_download() as download:
        page.click("a:has-text('Download cards-')")
    assert download.value.suggested_filename.endswith(".pdf")

    db.session.expire_all()
    card = db.session.scalars(select(MembershipCard).order_by(MembershipCard.id)).first()
    page.goto(f"{live_server}/admin/cards/details/?id={card.id}")
    _shot(page, "3-card-detail")
    with page.expect_navigation():
        page.click("#card-revoke-form button[type=submit]")  # asks first, with a reason
    assert "cannot be undone" in page.locator("#confirm-warning").inner_text()
    page.fill("#card-revoke-confirm-form textarea", "Reported stolen")
    with page.expect_navigation():
        page.click("#confirm-revoke")
    assert "Revoked" in page.locator("#card-status").inner_text()

    from app.services import cards

    token = cards.card_token(card)
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 800})
    phone.goto(f"{live_server}/verify/{token}")
    assert phone.locator("#verification").get_attribute("data-status") == "revoked"
    assert re.search(r"has been revoked", phone.locator("#verification-message").inner_text())
    _shot(phone, "4-verify-revoked")
    other = db.session.scalars(select(MembershipCard).where(MembershipCard.id != card.id)).first()
    phone.goto(f"{live_server}/verify/{cards.card_token(other)}")
    assert phone.locator("#verification").get_attribute("data-status") == "valid"
    _shot(phone, "5-verify-valid")
    phone.close()

"""The door: the check-in page in Chromium, scanning a printed card through a fake camera.

The camera is Chromium's fake capture device playing a Y4M video made here
from the card's own PDF (issue 4's renderer): page 1 rendered with
pypdfium2, framed at 640x480 and written as YUV 4:2:0 frames with Pillow.
The page decodes the QR code (jsQR; BarcodeDetector where the platform has
one), posts the credential and shows the answer.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import EventCheckin, EventRegistration
from app.models.base import utcnow
from app.services import card_pdf, cards
from app.services import events as ev
from app.services import members as member_service
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 640, 480


def write_y4m(pdf: bytes, path: Path, frames: int = 20) -> None:
    """The card's front page, centred on a grey 640x480 frame, as a Y4M (4:2:0) video."""
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[0]
        width_pt, _ = page.get_size()
        card = page.render(scale=(WIDTH - 40) / width_pt).to_pil().convert("RGB")
    finally:
        document.close()
    frame = Image.new("RGB", (WIDTH, HEIGHT), (110, 110, 110))
    frame.paste(card, ((WIDTH - card.width) // 2, (HEIGHT - card.height) // 2))
    y, cb, cr = frame.convert("YCbCr").split()
    half = (WIDTH // 2, HEIGHT // 2)
    planes = y.tobytes() + cb.resize(half, Image.BILINEAR).tobytes() + cr.resize(half, Image.BILINEAR).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)


@pytest.fixture()
def camera_page():
    """A Chromium page whose camera plays the given Y4M file (call it with the path)."""
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    opened = []
    with sync_playwright() as playwright:

        def open_page(video: Path, viewport=(390, 844)):
            browser = playwright.chromium.launch(executable_path=path, headless=True, args=[
                *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={video}", "--autoplay-policy=no-user-gesture-required",
            ])
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                          device_scale_factor=2, is_mobile=True, has_touch=True)
            page = context.new_page()
            page.set_default_timeout(20_000)
            opened.append(browser)
            return page

        try:
            yield open_page
        finally:
            for browser in opened:
                browser.close()


def log_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def door(tree, staff, make_member, **event_fields):
    now = utcnow()
    event = ev.create_event(staff["coordinator"], {
        "title": "Ward rally", "start_at": now - timedelta(minutes=30), "end_at": now + timedelta(hours=3),
        "unit_id": tree["w1"].id, "status": "upcoming", **event_fields})
    member = make_member(tree["w1"], first_name="Natasha", last_name="Mulenga")
    photo = io.BytesIO()
    Image.new("RGB", (120, 160), (30, 90, 160)).save(photo, "PNG")
    member_service.set_photo(None, member, photo.getvalue())
    ev.register(None, event, member)
    card = cards.issue_card(None, member)
    return event, member, card


def open_scanner(camera_page, live_server, video: Path, event_id: int, gate: str = "North gate"):
    page = camera_page(video)
    log_in(page, live_server, "coord@test.org")
    page.goto(f"{live_server}/admin/events/{event_id}/checkin")
    page.fill("#gate-input", gate)  # asked once per device
    page.click("#gate-form button[type=submit]")
    return page


def test_a_printed_card_is_admitted_through_the_camera(live_server, camera_page, tree, staff, make_member,
                                                       tmp_path):
    event, member, card = door(tree, staff, make_member)
    db.session.commit()
    video = tmp_path / "card.y4m"
    write_y4m(card_pdf.render_card_pdf(card, base_url=live_server), video)

    page = open_scanner(camera_page, live_server, video, event.id)
    page.wait_for_selector("#result[data-result=admitted]", timeout=30_000)
    assert page.inner_text("#verdict").lower() == "admitted"
    assert "Natasha Mulenga" in page.inner_text("#who")
    assert page.locator("#result-photo img").count() == 1
    page.screenshot(path=str(tmp_path / "checkin-admitted.png"))

    db.session.rollback()  # end the test's read transaction: see what the server committed
    reg = db.session.scalar(select(EventRegistration).where(EventRegistration.member_id == member.id))
    assert reg.status == "attended" and reg.checkin_gate == "North gate"
    assert len(db.session.scalars(select(EventCheckin)).all()) == 1

    # The same card held in front of the camera is not sent again; a second check-in of the
    # member (found by name at the gate) is refused as a duplicate, with the first time and gate.
    page.fill("#lookup-q", "Mulenga")
    page.click("#lookup-form button[type=submit]")
    page.click("#lookup-results button")
    page.wait_for_selector("#result[data-result=already_checked_in]")
    assert "North gate" in page.inner_text("#detail")
    page.reload()
    assert page.input_value("#gate-input") == "" or not page.is_visible("#gate-dialog")  # gate remembered
    assert page.inner_text("#gate-name") == "North gate"
    db.session.rollback()  # end the test's read transaction: see what the server committed
    assert len(db.session.scalars(select(EventCheckin)).all()) == 1


def test_a_revoked_card_is_refused_with_the_reason(live_server, camera_page, tree, staff, make_member, tmp_path):
    event, member, card = door(tree, staff, make_member)
    pdf = card_pdf.render_card_pdf(card, base_url=live_server)
    cards.revoke_card(None, card, "Reported stolen")
    db.session.commit()
    video = tmp_path / "revoked.y4m"
    write_y4m(pdf, video)

    page = open_scanner(camera_page, live_server, video, event.id, gate="South gate")
    page.wait_for_selector("#result[data-result=rejected]", timeout=30_000)
    assert page.get_attribute("#result", "data-reason") == "card_revoked"
    assert page.inner_text("#verdict").lower() == "not admitted" and "revoked" in page.inner_text("#detail")
    db.session.rollback()  # end the test's read transaction: see what the server committed
    assert db.session.scalars(select(EventCheckin)).all() == []
    reg = db.session.scalar(select(EventRegistration).where(EventRegistration.member_id == member.id))
    assert reg.status == "registered"

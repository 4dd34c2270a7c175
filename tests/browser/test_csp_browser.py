"""The console works in a real browser under its Content-Security-Policy, and nothing is refused.

Chromium reports every blocked inline script, handler or resource on the
console; the pages' scripts must still draw the charts and the calendar, ask
before deleting, and run Flask-Admin's "With selected" actions. The door
check-in page speaks to people on screen and to engineers in the log.
"""

from datetime import timedelta

import pytest

from app.extensions import db
from app.models.base import utcnow
from app.services import events as ev
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_console_pages_run_under_the_policy(live_server, page, tree, staff, make_member):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa")
    make_member(tree["w1"], first_name="Bwalya", last_name="Mulenga")
    now = utcnow()
    event = ev.create_event(staff["super_admin"], {
        "title": "Ward meeting", "start_at": now + timedelta(days=1), "end_at": now + timedelta(days=1, hours=2),
        "unit_id": tree["w1"].id, "status": "upcoming",
    })
    db.session.commit()
    refused: list[str] = []
    page.on("console", lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None)
    dialogs: list[str] = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)

    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "super@test.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/admin/")
    page.wait_for_function("Chart.getChart('chart-status') !== undefined")

    page.goto(f"{live_server}/admin/events/?view=calendar")
    page.wait_for_selector("#calendar .fc-daygrid, #calendar .fc-list")

    page.goto(f"{live_server}/admin/events/{event.id}/")
    page.goto(f"{live_server}/admin/events/?when=all")
    with page.expect_navigation():
        page.select_option("select[name=status]", "upcoming")  # data-autosubmit
    assert "status=upcoming" in page.url

    # Asking before a delete: refusing keeps the member.
    page.goto(f"{live_server}/admin/member/details/?id={member.id}")
    page.click("button:has-text('Delete member')")
    assert dialogs == ["Delete this member? The record can be restored later."]
    page.goto(f"{live_server}/admin/member/")
    assert "Chanda" in page.locator("table.model-list").inner_text()

    # Flask-Admin's "With selected" menu runs its action, confirmation first.
    page.check("input.action-checkbox >> nth=0")
    page.click("a:has-text('With selected')")
    page.click("a[data-model-action=delete]")
    assert len(dialogs) == 2 and "Delete the selected members?" in dialogs[1]
    assert page.url.endswith("/admin/member/")

    page.goto(f"{live_server}/admin/users/{staff['admin'].id}/")
    assert refused == []


def test_the_door_page_shows_people_readable_messages_only(live_server, page, tree, staff):
    """Which decoder runs and why the camera failed are for the log, not for the person at the door."""
    now = utcnow()
    event = ev.create_event(staff["super_admin"], {
        "title": "Ward meeting", "start_at": now - timedelta(hours=1), "end_at": now + timedelta(hours=2),
        "unit_id": tree["w1"].id, "status": "upcoming",
    })
    db.session.commit()
    logged: list[str] = []
    page.on("console", lambda msg: logged.append(msg.text))
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "super@test.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/admin/")

    page.goto(f"{live_server}/admin/events/{event.id}/checkin")
    page.fill("#gate-input", "Main gate")
    page.click("#gate-form button[type=submit]")
    # Headless Chromium has no camera: the page says so in words and offers the name search.
    page.wait_for_function("!document.getElementById('camera-hint').textContent.startsWith('Starting')")
    hint = page.locator("#camera-hint").inner_text()
    assert hint.endswith("Find members by name below.")
    screen = page.locator("body").inner_text()
    for technical in ("jsQR", "barcode detector", "Decoding", "Error", "HTTPS", "getUserMedia"):
        assert technical not in screen, technical
    assert any("decoding with" in line for line in logged), logged

"""Accessibility of the member portal: axe-core (vendored, app/static/vendor/axe-core) on every portal page at 360 x 740.

A member signs in on a phone-sized window and each page is checked by axe
(WCAG 2.x A/AA rules and best practices); no violation of impact *serious*
or *critical* may remain. On failure every such violation is printed with
the nodes it hit, so the fix can be found from the test output.

Axe is injected by the test only (``page.add_script_tag``): no page of the
app loads it. The context bypasses the Content-Security-Policy for that
injection alone (the pages' own CSP is tested in test_csp_browser.py).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from app.extensions import db
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import events as event_service
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / "app" / "static" / "vendor" / "axe-core" / "axe.min.js"
PHONE = {"width": 360, "height": 740}
BLOCKING = ("serious", "critical")
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.join(" "), html: n.html.slice(0, 300),
                              summary: n.failureSummary}))}));
}"""


def axe_violations(page) -> list[dict]:
    """Serious and critical violations axe finds on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in BLOCKING]


def report(found: dict[str, list[dict]]) -> str:
    lines = []
    for url, violations in found.items():
        for v in violations:
            lines.append(f"{url}: [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
            lines += [f"    {n['target']}: {n['html']}\n      {n['summary']}" for n in v["nodes"][:8]]
    return "\n".join(lines)


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_portal_pages_have_no_serious_or_critical_violations(live_server, browser, app, tree, make_member,
                                                              make_user, staff):
    assert AXE.is_file(), "axe-core is not vendored (app/static/vendor/axe-core/axe.min.js)"
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", email="chanda.m@example.org")
    make_user("chanda@test.org", "member", member=member)
    card_service.issue_card(None, member)
    start = utcnow() + timedelta(days=2)
    event = event_service.create_event(None, {
        "title": "Ward meeting", "start_at": start, "end_at": start + timedelta(hours=2), "unit_id": tree["w1"].id,
        "status": "upcoming", "capacity": 1, "venue": "Community hall", "description": "Agenda: budget"})
    full = event_service.create_event(None, {
        "title": "Province rally", "start_at": start + timedelta(days=1), "end_at": start + timedelta(days=1, hours=3),
        "unit_id": tree["p1"].id, "status": "upcoming", "capacity": 1})
    event_service.register(None, full, make_member(tree["w1"]))
    event_service.register(None, full, member)  # waiting list, number 1
    past = event_service.create_event(None, {
        "title": "Spring rally", "start_at": utcnow() - timedelta(days=9), "end_at": utcnow() - timedelta(days=9) +
        timedelta(hours=2), "unit_id": tree["w1"].id, "status": "upcoming"})
    reg, _ = event_service.register(None, past, member, now=utcnow() - timedelta(days=10))
    reg.status = "attended"
    db.session.commit()
    routes = {rule.rule for rule in app.url_map.iter_rules()}

    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True,
                                  bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    found: dict[str, list[dict]] = {}

    def check(path: str, label: str | None = None) -> None:
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        violations = axe_violations(page)
        if violations:
            found[label or path] = violations

    try:
        check("/", "/ (landing)")
        check("/verify/")
        for extra in ("/join", "/password/forgot"):  # pages for anyone, when they exist
            if extra in routes:
                check(extra)
        sign_in(page, live_server, "chanda@test.org")
        check("/", "/ (dashboard)")
        check("/card")
        check("/events")
        check("/events/calendar")
        check(f"/events/calendar?month={start:%Y-%m}")
        check(f"/events/{event.id}")
        check(f"/events/{full.id}", "/events/<full event> (waiting list)")
        for extra in ("/profile", "/account/password"):  # the member's own account pages, when they exist
            if extra in routes:
                check(extra)
        # The same pages with the menu unfolded (a phone shows it as a drop-down).
        page.goto(f"{live_server}/")
        page.click(".navbar-toggler")
        page.wait_for_selector("#portal-nav.show")
        if violations := axe_violations(page):
            found["/ (menu open)"] = violations

        # A login without a member record: the account page.
        page.click("#sign-out")
        page.wait_for_load_state()
        sign_in(page, live_server, "member@test.org")
        check("/", "/ (account, no membership)")
    finally:
        context.close()
    assert not found, "axe found serious or critical violations:\n" + report(found) + "\n" + json.dumps(
        sorted({v["id"] for vs in found.values() for v in vs}))

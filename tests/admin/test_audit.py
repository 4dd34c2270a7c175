"""The audit log console page: read-only, scoped, filtered, newest first."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry
from app.services import audit, geo
from tests.conftest import csrf_token_from, login

LOG = "/admin/audit/"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _entry(actor, action, unit=None, *, summary, at=None, object_type="Member", object_id="1", changes=None):
    entry = AuditEntry(actor_id=actor.id if actor else None, action=action, unit_id=unit.id if unit else None,
                       summary=summary, object_type=object_type, object_id=object_id, changes=changes,
                       ip="203.0.113.9", user_agent="TestAgent/1.0")
    if at is not None:
        entry.at = at
    db.session.add(entry)
    db.session.flush()
    return entry


@pytest.fixture()
def entries(staff, tree):
    """Entries in W1 (P1), in W4 (P2) and without a unit, at known times."""
    base = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)
    admin = staff["admin"]
    result = {
        "w1": _entry(admin, "member.update", tree["w1"], summary="Changed phone of Ward-one member", at=base,
                     changes={"phone": {"before": "+260971111111", "after": "+260972222222"}}),
        "w4": _entry(staff["super_admin"], "member.create", tree["w4"], summary="Created Ward-four member",
                     at=base + timedelta(days=1), object_id="2"),
        "global": _entry(staff["super_admin"], "role.update", None, summary="Updated role globalish",
                         at=base + timedelta(days=2), object_type="Role", object_id="3"),
    }
    db.session.commit()
    return result


def test_admin_sees_entries_newest_first(client, entries):
    login(client, "admin@test.org")
    response = client.get(LOG)
    assert response.status_code == 200
    html = _text(response)
    positions = [html.index(s) for s in ("Updated role globalish", "Created Ward-four member",
                                         "Changed phone of Ward-one member")]
    assert positions == sorted(positions)
    assert "2025-03-10 12:00:00 UTC" in html
    assert "admin@test.org" in html
    # Read-only: no create, edit or delete anywhere.
    assert "/admin/audit/new/" not in html and "/admin/audit/edit/" not in html
    assert "/admin/audit/delete/" not in html
    assert client.get("/admin/audit/new/").status_code in (302, 403)
    token = csrf_token_from(html)
    client.post("/admin/audit/delete/", data={"csrf_token": token, "id": entries["w1"].id})
    assert db.session.get(AuditEntry, entries["w1"].id) is not None


def test_coordinator_without_reports_read_gets_403_and_no_menu(client, staff, entries):
    login(client, "coord@test.org")
    assert client.get(LOG).status_code == 403
    assert client.get(f"/admin/audit/details/?id={entries['w1'].id}").status_code == 403
    assert "Audit log" not in _text(client.get("/admin/"))


def test_anonymous_is_sent_to_login(client, entries):
    response = client.get(LOG)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_province_admin_sees_only_their_province(client, staff, tree, entries, make_user):
    make_user("p2admin@test.org", "admin", tree["p2"])
    db.session.commit()
    login(client, "p2admin@test.org")
    html = _text(client.get(LOG))
    assert "Created Ward-four member" in html
    assert "Changed phone of Ward-one member" not in html  # W1 lies in P1
    assert "Updated role globalish" not in html  # no unit: global holders only
    assert client.get(f"/admin/audit/details/?id={entries['w1'].id}").status_code == 404
    assert client.get(f"/admin/audit/details/?id={entries['global'].id}").status_code == 404
    assert client.get(f"/admin/audit/details/?id={entries['w4'].id}").status_code == 200
    # Filters cannot widen the scope either.
    assert "Ward-one" not in _text(client.get(LOG + "?flt0_action_equals=member.update"))


def test_filters(client, entries):
    login(client, "admin@test.org")
    db.session.commit()
    html = _text(client.get(LOG))
    # Filters are offered for action, actor, date and object type.
    for label in ("Action", "Actor email", "Date", "Object type"):
        assert label in html

    def shown(query):
        page = _text(client.get(LOG + "?" + query))
        return {name for name in ("Ward-one", "Ward-four", "globalish") if name in page}

    assert shown("flt0_action_equals=member.update") == {"Ward-one"}
    assert shown("flt0_action_starts_with=member.") == {"Ward-one", "Ward-four"}
    assert shown("flt0_actor_email_equals=super@test.org") == {"Ward-four", "globalish"}
    assert shown("flt0_actor_email_contains=admin@") == {"Ward-one"}
    assert shown("flt0_object_type_equals=Role") == {"globalish"}
    assert shown("flt0_date_on_or_after=2025-03-11") == {"Ward-four", "globalish"}
    assert shown("flt0_date_on_or_before=2025-03-11") == {"Ward-one", "Ward-four"}
    assert shown("flt0_date_between=2025-03-11+to+2025-03-11") == {"Ward-four"}
    assert shown("flt0_date_on_or_after=2025-03-11&flt1_object_type_equals=Member") == {"Ward-four"}


def test_detail_shows_changes_as_before_after_table(client, entries):
    login(client, "admin@test.org")
    response = client.get(f"/admin/audit/details/?id={entries['w1'].id}")
    assert response.status_code == 200
    html = _text(response)
    assert "<th>Before</th><th>After</th>" in html
    assert "<th scope=\"row\">phone</th><td>+260971111111</td><td>+260972222222</td>" in html
    assert "203.0.113.9" in html and "TestAgent/1.0" in html
    assert "Lukashya Ward 1 (W1)" in html


def test_detail_of_unknown_or_malformed_id_is_404(client, entries):
    login(client, "admin@test.org")
    assert client.get("/admin/audit/details/?id=999999").status_code == 404
    assert client.get("/admin/audit/details/?id=abc").status_code == 404


def test_console_changes_appear_in_the_log(client, staff, tree):
    login(client, "super@test.org")
    db.session.commit()
    page = client.get("/admin/geography/new")
    client.post("/admin/geography/new", data={"csrf_token": csrf_token_from(_text(page)), "parent": tree["c3"].id,
                                              "name": "Luangeni Ward 2", "code": "W5"})
    html = _text(client.get(LOG + "?flt0_action_equals=unit.create"))
    assert "Created ward Luangeni Ward 2" in html
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "unit.create")
                              .order_by(AuditEntry.id.desc()))
    detail = _text(client.get(f"/admin/audit/details/?id={entry.id}"))
    assert "super@test.org" in detail


def test_many_rows_are_paged(client, staff, tree):
    # A bulk insert: the log grows large in production; the list shows one page and the total.
    rows = [{"action": "member.update", "unit_id": tree["w1"].id, "summary": f"bulk {i:04d}",
             "actor_id": staff["admin"].id, "at": datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=i)}
            for i in range(230)]
    db.session.execute(AuditEntry.__table__.insert(), rows)
    db.session.commit()
    login(client, "admin@test.org")
    html = _text(client.get(LOG))
    total = db.session.scalar(select(func.count()).select_from(AuditEntry))
    assert f"List ({total})" in html
    assert "bulk 0229" in html and "bulk 0100" not in html  # newest first, 50 per page
    assert "bulk 0179" in _text(client.get(LOG + "?page=1"))


def test_geo_service_entries_are_scoped_by_unit(client, staff, tree, make_user):
    """Entries written by services carry the unit, so scoping works without any special case."""
    geo.create_unit(staff["super_admin"], "Lunte Ward 2", "W6", tree["c2"])
    audit.record(staff["super_admin"], "note", summary="Unitless note")
    make_user("p2admin@test.org", "admin", tree["p2"])
    db.session.commit()
    login(client, "p2admin@test.org")
    html = _text(client.get(LOG))
    assert "Lunte Ward 2" not in html and "Unitless note" not in html

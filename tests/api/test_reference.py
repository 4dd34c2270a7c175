"""The API describes itself (/api/v1/, the document, /api/docs) and its schemas keep the contract.

The console and the portal keep their HTML error pages with spectree in (it
registers no error handler), ids sent as 4.0 are ids, declared limits are
enforced, and a caller without the permission hears 403 before any body check.
"""

from __future__ import annotations

import re
from datetime import timedelta

from app.extensions import db
from app.models import Role
from app.models.base import utcnow
from tests.api.conftest import assert_error
from tests.conftest import login


def test_the_api_root_links_to_its_description(api, client):
    for path in ("/", ""):
        body = api.get(path).get_json()
        assert body["openapi"] == "/api/v1/openapi.json" and body["docs"] == "/api/docs"
        assert body["title"].endswith("Muster API")
    assert client.get(body["openapi"]).get_json()["openapi"] == "3.1.0"
    assert client.get(body["docs"]).status_code == 200


def test_the_reference_page_works_offline_under_the_policy(client):
    page = client.get("/api/docs")

    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert 'data-document-url="/api/v1/openapi.json"' in html
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        response = client.get(asset)
        assert response.status_code == 200, asset
        response.close()
    assert client.get("/static/vendor/swagger-ui/LICENSE").status_code == 200


def test_the_console_menu_links_to_the_reference(client, staff):
    login(client, "admin@test.org")
    assert 'href="/api/docs"' in client.get("/admin/").get_data(as_text=True)


def test_console_and_portal_keep_html_error_pages(client, staff):
    for path in ("/no-such-page", "/login/no-such-page", "/admin/no-such-page"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html", path
    login(client, "super@test.org")
    for path in ("/admin/no-such-page", "/admin/events/999999/", "/admin/member/details/?id=999999"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html", path
        assert "<html" in response.get_data(as_text=True)


def test_integral_floats_are_ids(as_admin, tree, make_member, as_coord):
    """JSON Schema's integer: 4.0 names the row 4 (it was refused); 1.5 and "4" are still no ids."""
    created = as_admin.post("/members", json={"first_name": "A", "last_name": "B", "unit_id": float(tree["w1"].id)})
    assert created.status_code == 201 and created.get_json()["unit_id"] == tree["w1"].id
    for bad in (tree["w1"].id + 0.5, str(tree["w1"].id), True):
        assert_error(as_admin.post("/members", json={"first_name": "A", "last_name": "B", "unit_id": bad}), 400,
                     "unit_id")
    member = make_member(tree["w1"])
    now = utcnow()
    event = as_coord.post("/events", json={"title": "T", "start_at": (now - timedelta(hours=1)).isoformat(),
                                           "end_at": (now + timedelta(hours=1)).isoformat(), "status": "upcoming",
                                           "unit_id": tree["w1"].id}).get_json()
    registered = as_coord.post(f"/events/{event['id']}/register", json={"member_id": float(member.id)})
    assert registered.status_code == 201 and registered.get_json()["member_id"] == member.id
    answer = as_coord.post(f"/events/{event['id']}/checkin", json={"member_id": float(member.id)})
    assert answer.status_code == 200 and answer.get_json()["member"]["id"] == member.id


def test_declared_limits_are_enforced(as_super, as_admin):
    """What the document declares is what the API refuses (the role description was cut short silently)."""
    doc = as_super.get("/openapi.json").get_json()
    assert doc["components"]["schemas"]["RoleCreate"]["properties"]["description"]["anyOf"][0]["maxLength"] == 200
    body = assert_error(as_super.post("/roles", json={"name": "long_one", "description": "x" * 201}), 422,
                        "description")
    assert body["details"]["fields"] == {"description": "'description' is too long (200 characters at most)."}
    assert db.session.query(Role).filter_by(name="long_one").first() is None
    assert as_super.post("/roles", json={"name": "long_one", "description": "x" * 200}).status_code == 201
    assert_error(as_admin.get("/members?q=" + "x" * 201), 422, "q")
    assert_error(as_super.post("/auth/token", json={"email": "a@b.c", "password": "x", "name": "n" * 81}), 422,
                 "name")


def test_choices_and_text_are_read_as_the_services_always_read_them(as_admin, as_super, tree):
    """Case and surrounding spaces never mattered to the services; the schemas keep it so."""
    created = as_admin.post("/members", json={"first_name": "  Ann  ", "last_name": "B", "unit_id": tree["w1"].id,
                                              "gender": " Female", "status": "ACTIVE"}).get_json()
    assert (created["first_name"], created["gender"], created["status"]) == ("Ann", "female", "active")
    assert as_super.post("/roles", json={"name": " Auditor "}).get_json()["name"] == "auditor"


def test_without_the_permission_the_body_is_never_read(as_member, tree):
    """403 comes first, as before the schemas: nothing about the body is told to someone who may not act."""
    body = assert_error(as_member.post("/members", json={"unit_id": "not an id"}), 403)
    assert body["details"] == {"permission": "members.create"}
    assert_error(as_member.post("/members", data="{not json", headers={"Content-Type": "application/json"}), 403)


def test_schema_and_service_report_every_field_together(as_admin, tree):
    """A rule the schema refuses (a status) and one only the service knows (a phone) are both listed."""
    body = assert_error(as_admin.post("/members", json={"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id,
                                                        "status": "deceased", "phone": "12"}), 422)
    assert set(body["details"]["fields"]) == {"status", "phone"}
    assert body["details"]["fields"]["status"] == "'status' must be one of: pending, active."

"""The OpenAPI document: public, well-formed, in step with the routes, and true of the real answers.

The document is generated from the operations' pydantic models (``app/api/spec.py``).
Every answer the API tests get is checked against it (``tests/api/contract.py``);
``test_every_operation_answers_as_documented`` calls each operation once so that
none goes unchecked.
"""

from __future__ import annotations

import io

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest

from app.models.base import utcnow
from app.services import cards
from tests.api.contract import Contract
from tests.conftest import PASSWORD

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def openapi_path(rule: str) -> str:
    """/api/v1/members/<pk:member_id> -> /members/{member_id} (paths are relative to the server URL)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)[len("/api/v1"):]


def api_routes(app) -> dict[tuple[str, str], str]:
    """(path, method) -> endpoint for every route of the API."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1":
            for method in sorted(rule.methods - IGNORED_METHODS):
                routes[(openapi_path(rule.rule), method.lower())] = rule.endpoint
    return routes


def test_document_is_public(client):
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": "/api/v1"}]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "A token from POST /auth/token."}
    assert doc["security"] == [{"bearerAuth": []}]


def test_every_route_and_method_is_documented(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    routes = api_routes(app)
    assert len(routes) > 20

    for (path, method), endpoint in routes.items():
        assert path in doc["paths"], f"{path} is not in the OpenAPI document"
        assert method in doc["paths"][path], f"{method.upper()} {path} is not in the OpenAPI document"
        assert doc["paths"][path][method]["operationId"] == endpoint


def test_nothing_documented_is_missing_from_the_app(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    routes = api_routes(app)

    for path, operations in doc["paths"].items():
        for method in operations:
            assert (path, method) in routes, f"{method.upper()} {path} is documented but not routed"


def test_path_parameters_are_declared(client):
    doc = client.get("/api/v1/openapi.json").get_json()

    for path, operations in doc["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, op in operations.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}: path parameters {declared} != {names}"


def test_operations_have_responses_and_public_ones_are_marked(client):
    doc = client.get("/api/v1/openapi.json").get_json()

    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            success = [code for code in op["responses"] if code.startswith("2")]
            assert success, f"{method.upper()} {path} documents no success response"
            public = op.get("security") == []
            assert public == ((path, method) in {("/auth/token", "post"), ("/openapi.json", "get"),
                                                ("/cards/verify", "post"), ("/", "get"),
                                                ("/referrals/code/{code}", "get")})
            if method in ("post", "put"):
                (media, body), = op["requestBody"]["content"].items()  # a JSON body, or an upload's form
                assert media == ("multipart/form-data" if path == "/members/imports" else "application/json")
                assert body["schema"]["$ref"]


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_reference_resolves(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    refs = _refs(doc)
    assert len(refs) > 50

    for ref in refs:
        assert ref.startswith("#/")
        node = doc
        for part in ref[2:].split("/"):
            assert part in node, f"unresolved $ref {ref}"
            node = node[part]


def test_every_operation_answers_as_documented(api, as_super, staff, tree, make_member, make_user):
    """One call to each operation, each answer validated against the document by the client."""
    doc = api.get("/openapi.json").get_json()
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    called: set[tuple[str, str]] = set()

    def call(method: str, template: str, status: int, **kwargs):
        client = kwargs.pop("client", as_super)
        response = client.request(method.upper(), template.format(**kwargs.pop("ids", {})), **kwargs)
        assert response.status_code == status, (method, template, response.get_data(as_text=True)[:300])
        called.add((method, template))
        return response.get_json(silent=True)

    member = make_member(tree["w1"], first_name="Tour", last_name="Guide", status="active")
    user = make_user("tour@test.org")
    unit = {"unit_id": tree["w1"].id}
    call("get", "/", 200)
    call("get", "/openapi.json", 200)
    assert api.post("/auth/token", json={"email": "admin@test.org", "password": PASSWORD}).status_code == 200
    called.add(("post", "/auth/token"))
    # members and units
    call("get", "/members", 200, query_string={"status": "active", "per_page": 1})
    new = call("post", "/members", 201, json={"first_name": "A", "last_name": "B", **unit, "tags": ["x"]})
    call("get", "/members/{member_id}", 200, ids={"member_id": new["id"]})
    call("put", "/members/{member_id}", 200, ids={"member_id": new["id"]}, json={"notes": "seen"})
    call("get", "/members/export", 200, query_string={"format": "csv"})
    call("get", "/units", 200)
    call("get", "/units/{unit_id}", 200, ids=unit)
    # roles and users' roles
    call("get", "/permissions", 200)
    call("get", "/roles", 200)
    role = call("post", "/roles", 201, json={"name": "tour_role", "permissions": ["members.read"]})
    ids = {"role_id": role["id"], "user_id": user.id}
    call("get", "/roles/{role_id}", 200, ids=ids)
    call("put", "/roles/{role_id}", 200, ids=ids, json={"description": "Tours"})
    call("get", "/roles/{role_id}/permissions", 200, ids=ids)
    call("put", "/roles/{role_id}/permissions", 200, ids=ids, json={"permissions": ["members.read", "cards.read"]})
    assignment = call("post", "/users/{user_id}/roles", 201, ids=ids, json={"role_id": role["id"], **unit})
    call("get", "/users/{user_id}/roles", 200, ids=ids)
    call("get", "/users/{user_id}/permissions", 200, ids=ids)
    call("delete", "/users/{user_id}/roles/{assignment_id}", 204, ids={**ids, "assignment_id": assignment["id"]})
    call("delete", "/roles/{role_id}", 204, ids=ids)
    # events, registrations, the door
    now = utcnow()
    times = {"start_at": (now - timedelta(hours=1)).isoformat(), "end_at": (now + timedelta(hours=2)).isoformat()}
    event = call("post", "/events", 201, json={"title": "Tour", **times, **unit, "status": "upcoming",
                                               "capacity": 10, "walk_ins_allowed": True})
    ids = {"event_id": event["id"], "member_id": member.id}
    call("get", "/events", 200, query_string={"status": "ongoing,upcoming", "from": times["start_at"]})
    call("get", "/events/{event_id}", 200, ids=ids)
    call("put", "/events/{event_id}", 200, ids=ids, json={"venue": "Hall"})
    call("post", "/events/{event_id}/register", 201, ids=ids, json={"member_id": member.id, "notes": "x"})
    call("get", "/events/{event_id}/attendees", 200, ids=ids)
    call("put", "/events/{event_id}/attendance/{member_id}", 200, ids=ids, json={"status": "attended"})
    call("post", "/events/{event_id}/checkin", 200, ids=ids, json={"member_id": member.id, "nonce": "tour-1"})
    call("get", "/members/{member_id}/events", 200, ids=ids)
    other = make_member(tree["w1"], status="active")
    as_super.post(f"/events/{event['id']}/register", json={"member_id": other.id})
    call("delete", "/events/{event_id}/register/{member_id}", 200, ids={**ids, "member_id": other.id})
    spare = call("post", "/events", 201, json={"title": "Spare", **times, **unit})
    call("delete", "/events/{event_id}", 204, ids={"event_id": spare["id"]})
    # cards
    card = call("post", "/cards", 201, json={"member_id": member.id, "card_type": "standard"})
    ids = {"card_id": card["id"], "member_id": member.id}
    call("get", "/cards", 200, query_string={"card_type": "standard"})
    call("get", "/cards/{card_id}", 200, ids=ids)
    call("put", "/cards/{card_id}", 200, ids=ids, json={"status": "suspended", "reason": "tour"})
    call("put", "/cards/{card_id}", 200, ids=ids, json={"status": "active", "reason": "tour"})
    call("get", "/cards/{card_id}/qr", 200, ids=ids)
    call("get", "/cards/{card_id}/pdf", 200, ids=ids)
    call("get", "/members/{member_id}/card", 200, ids=ids)
    call("post", "/members/{member_id}/card/renew", 200, ids=ids)
    # self-service, as the member themselves (the super admin has no member record of their own)
    make_user("tour-member@test.org", "member", member=member)
    mine = {"client": api.login("tour-member@test.org")}
    call("get", "/me", 200, **mine)
    call("patch", "/me", 200, json={"address": "Tour street"}, **mine)
    call("get", "/me/card", 200, **mine)
    call("get", "/me/card/qr", 200, query_string={"format": "svg"}, **mine)
    call("get", "/me/card/pdf", 200, **mine)
    call("get", "/me/events", 200, query_string={"when": "all"}, **mine)
    from app.services import notifications  # issue 12: the member's own notifications

    mine_note = notifications.notify(member, "card.issued", "Tour")
    call("get", "/me/notifications", 200, query_string={"unread": "true"}, **mine)
    call("post", "/me/notifications/{notification_id}/read", 200, ids={"notification_id": mine_note.id}, **mine)
    own = as_super.post("/events", json={"title": "Own", **times, **unit, "status": "upcoming"}).get_json()
    assert mine["client"].post(f"/events/{own['id']}/register").status_code == 201
    call("delete", "/events/{event_id}/register", 200, ids={"event_id": own["id"]}, **mine)
    # referrals (issue 13): the member invites someone, staff correct and withdraw it; a credit is revoked
    from app.services import referrals as referral_service

    invited = call("post", "/referrals", 201, json={"name": "Tour Prospect", "phone": "0971888001"}, **mine)
    refs = {"referral_id": invited["id"], "member_id": member.id, "code": referral_service.code_for(member)}
    call("get", "/referrals", 200, query_string={"status": "pending", "unit_id": tree["w1"].id})
    call("get", "/referrals/{referral_id}", 200, ids=refs)
    call("patch", "/referrals/{referral_id}", 200, ids=refs, json={"name": "Tour Prospect II", "phone": None,
                                                                    "email": "tour.prospect@example.org"})
    call("delete", "/referrals/{referral_id}", 200, ids=refs, json={"reason": "tour"})
    brought = make_member(tree["w1"], status="pending")
    credited = referral_service.record_join(brought, refs["code"])
    assert as_super.post(f"/members/{brought.id}/approve").status_code == 200  # active: the credit is earned
    call("post", "/referrals/{referral_id}/revoke", 200, ids={"referral_id": credited.id}, json={"reason": "tour"})
    call("get", "/members/{member_id}/referrals", 200, ids=refs)
    call("get", "/referrals/stats", 200, query_string={"unit_id": tree["c1"].id, "level": 3, "limit": 5})
    call("get", "/referrals/code/{code}", 200, ids=refs, client=api)  # public: no token
    call("get", "/me/referrals", 200, **mine)
    # dues (issue 14): tiers, a payment recorded by staff, the lists
    from app.services.dues import tiers as dues_tiers

    tier = dues_tiers.create_tier(None, {"name": "Tour tier", "price": "10", "currency": "ZMW", "duration_months": "12"})
    call("get", "/tiers", 200)
    paid = call("post", "/payments", 201, json={"member_id": member.id, "tier_id": tier.id, "method": "cash"})
    call("get", "/payments/{payment_id}/receipt", 200, ids={"payment_id": paid["id"]})
    call("get", "/payments", 200, query_string={"status": "completed", "method": "cash"})
    call("get", "/members/{member_id}/payments", 200, ids=refs)
    call("get", "/me/payments", 200, **mine)
    call("post", "/me/payments/checkout", 409, json={"tier_id": tier.id}, **mine)  # Stripe is off in the tests
    token_of_card = cards.card_token(cards.current_card(member))
    called.add(("post", "/cards/verify"))
    assert api.post("/cards/verify", json={"token": token_of_card}).get_json()["status"] == "valid"
    new_card = call("post", "/cards/{card_id}/reissue", 201, ids=ids, json={"reason": "lost"})
    call("delete", "/cards/{card_id}", 200, ids={"card_id": new_card["id"]}, json={"reason": "tour"})
    # long work: an import and a print run answer 202 with their job (the queue is immediate here)
    upload = {"file": (io.BytesIO(b"first_name,last_name,ward\nTour,Import,W1\n"), "tour.csv"),
              "default_unit_id": str(tree["w1"].id)}
    imported = call("post", "/members/imports", 202, data=upload, content_type="multipart/form-data")
    call("get", "/jobs/{job_id}", 200, ids={"job_id": imported["job"]["id"]})
    printed = call("post", "/cards/print", 202, json={"member_ids": [member.id]})
    name = as_super.get(f"/jobs/{printed['job']['id']}").get_json()["job"]["files"][0]["name"]
    called.add(("get", "/jobs/{job_id}/files/{name}"))
    assert as_super.get(f"/jobs/{printed['job']['id']}/files/{name}").status_code == 200
    # the scheduler's record of sweep runs (issue 12)
    from app.scheduler import runs as scheduler_runs

    scheduler_runs.queue_run("cards.expire", due_at=member.created_at, triggered_by="cli", scheduled_by="tour")
    call("get", "/scheduler/runs", 200, query_string={"status": "queued", "sweep": "cards.expire"})
    # pending members: approve one, turn one down (issue 11)
    waiting = make_member(tree["w1"], status="pending")
    call("post", "/members/{member_id}/approve", 200, ids={"member_id": waiting.id})
    refused = make_member(tree["w1"], status="pending")
    call("post", "/members/{member_id}/reject", 200, ids={"member_id": refused.id}, json={"reason": "tour"})
    # last: members and the token itself
    call("delete", "/members/{member_id}", 204, ids={"member_id": new["id"]})
    call("delete", "/auth/token", 204)

    assert called == documented, f"not toured: {sorted(documented - called)}; unknown: {sorted(called - documented)}"


def test_the_contract_check_catches_drift(app, client):
    """The check above can fail: an answer the document does not describe is reported."""
    contract = Contract(app, client.get("/api/v1/openapi.json").get_json())
    drifted = SimpleNamespace(status_code=200, mimetype="application/json",
                              get_json=lambda: {"items": [], "page": 0, "per_page": 50, "total": -1},
                              get_data=lambda: b"{}")
    with pytest.raises(AssertionError, match="links.*required|page.*minimum|total.*minimum"):
        contract.check("GET", "/api/v1/members", drifted)
    undocumented = SimpleNamespace(status_code=418, mimetype="application/json", get_json=dict, get_data=bytes)
    with pytest.raises(AssertionError, match="418"):
        contract.check("GET", "/api/v1/members", undocumented)


def test_answers_are_checked_by_their_models(as_admin, monkeypatch):
    """A view whose answer does not match its response model fails loudly instead of drifting."""
    from app.api import members
    from app.api.spec import ResponseDrift

    monkeypatch.setattr(members, "page_of", lambda *args, **kwargs: {"items": [], "page": 1})
    with pytest.raises(ResponseDrift, match="links"):
        as_admin.client.get("/api/v1/members", headers={"Authorization": f"Bearer {as_admin.token}"})

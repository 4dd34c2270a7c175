"""The OpenAPI document: public, well-formed, and in step with the routes."""

from __future__ import annotations

import re

from app.api.openapi import SCHEMAS

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
                                                ("/cards/verify", "post"), ("/", "get")})
            if method in ("post", "put"):
                assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"]


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


def test_member_schema_matches_the_json_we_send(as_admin, tree):
    created = as_admin.post("/members", json={"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id})

    assert set(created.get_json()) == set(SCHEMAS["Member"]["properties"])

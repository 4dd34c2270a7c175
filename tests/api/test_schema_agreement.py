"""The document and the API agree on which requests are valid (what schemathesis ``--checks all`` holds them to).

Each test takes a rule schemathesis found the document did not say, or said
and the API did not keep, and checks both sides: what the document's JSON
Schema calls valid (jsonschema, 2020-12, patterns as Python reads them, as
schemathesis generates from them) and what the API answers. The run itself is
``bench/schemathesis.sh`` (docs/api.md, "Checking the document").
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator

from app.api.cards import MAX_QUERY_REASON
from app.api.schema import NOT_BLANK
from app.models.base import utcnow
from app.services import cards as card_service
from tests.api.conftest import assert_error
from tests.api.contract import FORMATS

# gunicorn's default limit on the request line ("DELETE /api/v1/... HTTP/1.1"); beyond it, 414.
REQUEST_LINE_LIMIT = 4094


@pytest.fixture()
def doc(api):
    return api.get("/openapi.json").get_json()


def body_validator(doc, path: str, method: str) -> Draft202012Validator:
    schema = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": doc["components"]}, format_checker=FORMATS)


def body_schemas(doc) -> list[dict]:
    """Every request body's component, by the operations that send it."""
    refs = {body["schema"]["$ref"].rsplit("/", 1)[1]  # JSON bodies and multipart forms (an upload's options)
            for ops in doc["paths"].values() for op in ops.values() if "requestBody" in op
            for body in op["requestBody"]["content"].values()}
    return [doc["components"]["schemas"][name] for name in sorted(refs)]


def strings(node) -> list[dict]:
    """The string schemas inside a schema (its properties, branches and items)."""
    if not isinstance(node, dict):
        return []
    found = [node] if node.get("type") == "string" else []
    for key in ("properties",):
        found += [s for value in node.get(key, {}).values() for s in strings(value)]
    for key in ("anyOf", "oneOf", "allOf"):
        found += [s for value in node.get(key, []) for s in strings(value)]
    return found + strings(node.get("items"))


def test_every_string_the_api_reads_says_it_may_not_hold_nul(doc, as_admin, tree):
    """inputs.py refuses NUL (400) before any schema; each body and query string says so with its pattern."""
    texts = [s for schema in body_schemas(doc) for s in strings(schema)]
    texts += [s for ops in doc["paths"].values() for op in ops.values() for p in op.get("parameters", [])
              if p["in"] == "query" for s in strings(p["schema"])]
    assert len(texts) > 60
    for schema in texts:
        if schema.get("format") == "binary":
            continue  # a file (multipart), not text
        assert "enum" in schema or (schema.get("pattern") and not re.search(schema["pattern"], "ab\x00c")), schema
    assert_error(as_admin.post("/members", json={"first_name": "A\x00", "last_name": "B", "unit_id": tree["w1"].id}),
                 400, "first_name")


def test_required_text_is_more_than_what_the_services_strip(doc, as_admin, tree):
    """"  " or "\\x1c" for a name: str.strip() leaves nothing, so the document calls it invalid too."""
    schemas = doc["components"]["schemas"]
    for component, field in [("MemberCreate", "first_name"), ("MemberUpdate", "last_name"), ("MemberCreate", "email"),
                             ("EventCreate", "title"), ("EventUpdate", "title"), ("CardReissue", "reason")]:
        text = strings(schemas[component]["properties"][field])[0]
        assert text["minLength"] == 1 and text["pattern"] == NOT_BLANK, (component, field)
    spaces = [chr(c) for c in range(0x3001) if chr(c).isspace()]
    assert not [c for c in spaces if re.search(NOT_BLANK, c * 2)]
    assert re.search(NOT_BLANK, " Ann ") and re.search(NOT_BLANK, "\u00e9")

    for blank in ("  ", "\x1c", "\u3000"):
        assert_error(as_admin.post("/members", json={"first_name": blank, "last_name": "B",
                                                     "unit_id": tree["w1"].id}), 422, "first_name")


def test_lengths_count_the_text_as_sent(as_admin, tree):
    """maxLength is of the value sent: 81 characters are refused even if a space is among them."""
    assert_error(as_admin.post("/members", json={"first_name": " " + "a" * 80, "last_name": "B",
                                                 "unit_id": tree["w1"].id}), 422, "first_name")
    created = as_admin.post("/members", json={"first_name": " Ann ", "last_name": "B", "unit_id": tree["w1"].id})
    assert created.status_code == 201 and created.get_json()["first_name"] == "Ann"


def test_a_required_reason_is_documented_as_required(doc, as_admin, make_member, tree):
    card = card_service.issue_card(None, make_member(tree["w1"]))
    for component in ("CardReissue", "CardStatusChange"):
        reason = doc["components"]["schemas"][component]["properties"]["reason"]
        assert reason["minLength"] == 1 and reason["pattern"] == NOT_BLANK
    body = assert_error(as_admin.post(f"/cards/{card.id}/reissue", json={"reason": "   "}), 422, "reason")
    assert body["error"] == "'reason' may not be empty."


@pytest.mark.parametrize(("path", "status", "field"), [
    ("/cards?expires_to=", 422, "expires_to"),
    ("/cards?expires_from=20270131", 422, "expires_from"),  # ISO 8601's basic form is no JSON Schema date
    ("/cards?card_type=", 422, "card_type"),
    ("/events?to=", 422, "to"),
    ("/events?from=", 422, "from"),
    ("/members?unit_id=", 400, "unit_id"),
    ("/members?status=", 422, "status"),
    ("/members?status=active,", 422, "status"),
    ("/events/1/attendees?status=", 422, "status"),
])
def test_a_typed_query_parameter_sent_needs_a_value(as_super, path, status, field):
    """An empty value is no date, number or choice: refused, as the document's types say (leave it out)."""
    assert_error(as_super.get(path), status, field)


def test_an_empty_text_filter_is_no_filter(as_super):
    assert as_super.get("/members?q=&per_page=1").status_code == 200
    assert as_super.get("/cards?card_number=").status_code == 200


def test_dates_in_bodies_are_full_dates(as_admin, tree):
    unit = {"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id}
    for value in ("", " ", "20200131", "2020-01-31T00:00:00"):
        assert_error(as_admin.post("/members", json={**unit, "joined_on": value}), 422, "joined_on")
        assert_error(as_admin.post("/members", json={**unit, "date_of_birth": value}), 422, "date_of_birth")
    assert as_admin.post("/members", json={**unit, "joined_on": None, "date_of_birth": "1990-04-25"}
                         ).status_code == 201
    now = utcnow()
    event = {"title": "T", "unit_id": tree["w1"].id, "start_at": (now + timedelta(days=1)).isoformat(),
             "end_at": (now + timedelta(days=1, hours=2)).isoformat()}
    assert_error(as_admin.post("/events", json={**event, "registration_deadline": ""}), 422,
                 "registration_deadline")
    assert as_admin.post("/events", json={**event, "registration_deadline": None}).status_code == 201


def test_an_email_is_an_address_or_null(as_admin, tree):
    unit = {"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id}
    assert_error(as_admin.post("/members", json={**unit, "email": ""}), 422, "email")
    assert as_admin.post("/members", json={**unit, "email": None}).status_code == 201


def test_bounds_are_written_as_json_schema(doc):
    """pydantic writes constraints placed after a validator as "ge"/"le", which JSON Schema ignores."""
    def keys(node):
        if isinstance(node, dict):
            return set(node) | {k for value in node.values() for k in keys(value)}
        return {k for value in node for k in keys(value)} if isinstance(node, list) else set()

    assert not keys(doc) & {"ge", "le", "gt", "lt"}
    capacity = doc["components"]["schemas"]["EventCreate"]["properties"]["capacity"]["anyOf"][0]
    assert (capacity["minimum"], capacity["maximum"]) == (1, 1_000_000)


def test_an_overlong_url_is_documented_everywhere(doc):
    """gunicorn answers 414 (HTML) to a request line over ~4 KB, before the app: every operation says so."""
    for ops in doc["paths"].values():
        for op in ops.values():
            assert "414" in op["responses"] and "content" not in op["responses"]["414"]


def test_the_longest_reason_the_url_may_carry_fits_the_request_line(as_admin, make_member, tree):
    widest = "\U0001F600" * MAX_QUERY_REASON  # 4 bytes each, 12 characters percent-encoded
    line = f"DELETE /api/v1/cards/2147483647?reason={quote(widest)} HTTP/1.1"
    assert len(line) <= REQUEST_LINE_LIMIT
    card = card_service.issue_card(None, make_member(tree["w1"]))
    assert_error(as_admin.delete(f"/cards/{card.id}?reason=" + "x" * (MAX_QUERY_REASON + 1)), 422, "reason")
    revoked = as_admin.delete(f"/cards/{card.id}", json={"reason": "y" * 1000})
    assert revoked.status_code == 200 and revoked.get_json()["transactions"][0]["reason"] == "y" * 1000


def test_a_checkin_is_exactly_one_of_token_and_member_id(doc, as_admin, make_member, tree):
    member = make_member(tree["w1"])
    now = utcnow()
    event = as_admin.post("/events", json={
        "title": "Door", "unit_id": tree["w1"].id, "status": "upcoming", "walk_ins_allowed": True,
        "start_at": (now - timedelta(hours=1)).isoformat(), "end_at": (now + timedelta(hours=1)).isoformat()})
    path = f"/events/{event.get_json()['id']}/checkin"
    validator = body_validator(doc, "/events/{event_id}/checkin", "post")
    for body, valid in [
        ({"token": "junk"}, True), ({"member_id": member.id}, True), ({"token": "junk", "member_id": None}, True),
        ({"member_id": member.id, "token": None, "gate": "North"}, True),
        ({}, False), ({"gate": "North"}, False), ({"token": None, "member_id": None}, False),
        ({"token": "junk", "member_id": member.id}, False),
    ]:
        assert validator.is_valid(body) is valid, body
        response = as_admin.post(path, json=body)
        assert response.status_code == (200 if valid else 422), (body, response.get_json())


def test_a_role_assignment_names_its_role(doc, as_super, make_user):
    user = make_user("assignee@test.org")
    validator = body_validator(doc, "/users/{user_id}/roles", "post")
    for body in ({}, {"role": None, "role_id": None}, {"role": ""}, {"unit_id": None}):
        assert not validator.is_valid(body)
        assert_error(as_super.post(f"/users/{user.id}/roles", json=body), 422, "role")
    assert validator.is_valid({"role": "member"})
    assert as_super.post(f"/users/{user.id}/roles", json={"role": "member"}).status_code == 201


def test_permission_names_are_the_catalogue(doc, as_super):
    """The document's enum is the permissions the API knows: every one is accepted, nothing else is."""
    names = doc["components"]["schemas"]["RolePermissionsUpdate"]["properties"]["permissions"]["items"]["enum"]
    assert sorted(names) == sorted(p["name"] for p in as_super.get("/permissions").get_json()["items"])
    role = as_super.post("/roles", json={"name": "everything_role", "permissions": names})
    assert role.status_code == 201
    assert_error(as_super.put(f"/roles/{role.get_json()['id']}/permissions", json={"permissions": ["Members.read"]}),
                 422, "permissions")



def test_every_date_time_the_document_allows_is_a_time(as_super):
    """Times at the edges of year 1 and 9999 fall outside Python's range in UTC: they filter as the edges."""
    assert as_super.get("/events?from=" + quote("0001-01-01T00:04:00+15:09")).status_code == 200
    assert as_super.get("/events?to=" + quote("9999-12-31T23:59:59-12:00")).status_code == 200


def test_whatever_takes_input_documents_400_and_422(doc, as_admin, make_member, tree):
    """A query string can be malformed (a NUL, letters for a number) as much as a body: 400, besides 422."""
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", [])):
                assert {"400", "422"} <= set(op["responses"]), (method, path)
    card = card_service.issue_card(None, make_member(tree["w1"]))
    assert_error(as_admin.get(f"/cards/{card.id}/qr?format=sv%00g"), 400, "format")

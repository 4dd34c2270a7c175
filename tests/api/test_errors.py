"""Whatever goes wrong, the API answers its JSON error shape, never HTML and never a 500."""

from __future__ import annotations

import json

from tests.api.conftest import assert_error


def test_unknown_urls_are_json_404(api, as_admin):
    for client in (api, as_admin):
        assert_error(client.get("/nothing-here"), 404)
        assert_error(client.get("/members/1/nothing"), 404)
        assert_error(client.post("/roles/1/permissions/extra", json={}), 404)


def test_wrong_method_is_json_405_with_allowed_methods(as_admin, api):
    response = as_admin.request("PATCH", "/members", json={})

    body = assert_error(response, 405)
    assert body["details"]["allowed_methods"] == ["GET", "HEAD", "OPTIONS", "POST"]
    assert "POST" in response.headers["Allow"]
    assert_error(api.get("/auth/token"), 405)  # even without a token


def test_body_too_large_is_413(app, as_admin, tree, monkeypatch):
    monkeypatch.setitem(app.config, "API_MAX_BODY_BYTES", 10_000)
    payload = {"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id, "notes": "x" * 20_000}

    assert_error(as_admin.post("/members", json=payload), 413)
    assert as_admin.get("/members").get_json()["total"] == 0


def test_default_body_limit_is_one_megabyte(as_admin, tree):
    payload = {"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id, "notes": "x" * (1024 * 1024)}

    assert_error(as_admin.post("/members", json=payload), 413)


def test_the_console_keeps_html_errors(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_errors_roll_back_the_whole_request(as_admin, make_member, tree):
    """A failure after the service already flushed changes leaves nothing behind."""
    member = make_member(tree["w1"], first_name="Same", status="active")

    response = as_admin.put(f"/members/{member.id}", json={"status": "suspended", "status_reason": "Arrears",
                                                           "tags": ["x" * 61]})

    assert_error(response, 422, "tags")
    assert as_admin.get(f"/members/{member.id}").get_json()["status"] == "active"


# --- no input can make the API fail ---------------------------------------------------

GARBAGE = [
    None, True, False, 0, -1, 2**31, 10**30, 1.5, "", " ", "x" * 5000, "a\u0000b", "\ud800", "\U0010ffff",
    "zz\U0010ffff", [], {}, ["x"], [None], [1], {"a": 1}, "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00",
    "0001-01-01", "9999-12-31", "2024-02-30", "+260 977 123 456", "x@y", "*", "members.read",
]


def _schema_properties(doc: dict, operation: dict) -> list[str]:
    (body,) = operation["requestBody"]["content"].values()  # a JSON body, or a multipart form
    return list(doc["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]["properties"])


def test_no_body_can_cause_a_server_error(as_super, api, staff, make_member, tree):
    """Every documented request body, each field set to each kind of junk: never a 500."""
    member = make_member(tree["w1"])
    role = as_super.post("/roles", json={"name": "fuzz_role"}).get_json()
    ids = {"member_id": member.id, "role_id": role["id"], "user_id": staff["admin"].id,
           "notification_id": 1}
    ids["event_id"] = as_super.post("/events", json={"title": "Fuzz", "start_at": "2030-01-01T10:00:00Z",
                                                     "end_at": "2030-01-01T12:00:00Z", "unit_id": tree["w1"].id,
                                                     "status": "upcoming"}).get_json()["id"]
    ids["card_id"] = as_super.post("/cards", json={"member_id": member.id}).get_json()["id"]
    from app.services import referrals  # issue 13: an invitation of the member's, to correct, withdraw, revoke

    ids["referral_id"] = referrals.record_prospect(member, "Fuzz Prospect", "0971999999", None).id
    valid_base = {("/members", "post"): {"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id}}
    doc = api.get("/openapi.json").get_json()
    checked = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation:
                continue
            url = path.format(**ids)
            client = api if path == "/auth/token" else as_super
            for field in _schema_properties(doc, operation):
                for value in GARBAGE:
                    body = {**valid_base.get((path, method), {}), field: value}
                    if "multipart/form-data" in operation["requestBody"]["content"]:
                        # Form values are text: the junk as it would be typed (no file: nothing is stored).
                        text = value if isinstance(value, str) else json.dumps(value)
                        if not text.isascii() and text != text.encode("utf-8", "ignore").decode():
                            continue  # a lone surrogate: no HTTP client can put it in a form
                        form = {field: text}
                        response = client.request(method.upper(), url, data=form,
                                                  content_type="multipart/form-data")
                    else:
                        response = client.request(method.upper(), url, json=body)
                    checked += 1
                    assert response.status_code < 500, (method, url, body)
                    if response.status_code >= 400:
                        assert_error(response, response.status_code)
    assert checked > 500


def test_no_query_can_cause_a_server_error(as_admin, make_member, tree):
    make_member(tree["w1"], last_name="Smith")
    values = ["", "abc", "-1", "0", "1", "2147483648", "99999999999999999999", "1e3", "%00", "%F4%8F%BF%BF",
              "sm%F4%8F%BF%BF", "%FF", "active,zombie", "+260977", "x" * 300, "%ED%A0%80"]
    for name in ("q", "status", "unit_id", "page", "per_page"):
        for value in values:
            response = as_admin.get(f"/members?{name}={value}")
            assert response.status_code < 500, (name, value)
            if response.status_code >= 400:
                assert_error(response, response.status_code, name)

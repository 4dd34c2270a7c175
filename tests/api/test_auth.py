"""Bearer tokens: issuing, using, revoking; lockout and rate limit shared with the login page."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, AuditEntry
from tests.api.conftest import ApiClient, assert_error
from tests.conftest import PASSWORD, csrf_token_from, login


def test_token_is_issued_for_good_credentials(api, staff):
    response = api.post("/auth/token", json={"email": "coord@test.org", "password": PASSWORD})

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert len(body["token"]) >= 32
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=29) < expires_at - datetime.now(timezone.utc) <= timedelta(days=30)


def test_email_is_case_insensitive_and_token_works(api, staff):
    token = api.post("/auth/token", json={"email": " Coord@Test.org ", "password": PASSWORD}).get_json()["token"]

    response = ApiClient(api.client, token).get("/members")

    assert response.status_code == 200


def test_token_issue_needs_no_csrf_token_and_sets_no_session(api, staff):
    response = api.post("/auth/token", json={"email": "coord@test.org", "password": PASSWORD})

    assert response.status_code == 200  # CSRF is on in tests, the API is exempt
    assert "Set-Cookie" not in response.headers


def test_wrong_password_and_unknown_email_are_401(api, staff):
    wrong = api.post("/auth/token", json={"email": "coord@test.org", "password": "nope-nope-nope"})
    unknown = api.post("/auth/token", json={"email": "ghost@test.org", "password": PASSWORD})

    assert assert_error(wrong, 401)["error"] == "Wrong email or password."
    assert assert_error(unknown, 401)["error"] == "Wrong email or password."


def test_disabled_account_gets_no_token(api, staff):
    staff["coordinator"].active = False

    response = api.post("/auth/token", json={"email": "coord@test.org", "password": PASSWORD})

    assert "disabled" in assert_error(response, 401)["error"]


def test_token_request_is_validated(api, staff):
    assert_error(api.post("/auth/token", json={"email": "coord@test.org"}), 422, "password")
    assert_error(api.post("/auth/token", json={"password": PASSWORD}), 422, "email")
    assert_error(api.post("/auth/token", json={"email": 5, "password": PASSWORD}), 400, "email")
    assert_error(api.post("/auth/token", json={"email": "coord@test.org", "password": PASSWORD, "x": 1}),
                 422, "x")
    assert_error(api.post("/auth/token", data="email=coord@test.org"), 400)


def test_requests_without_a_token_are_401(api, staff):
    response = api.get("/members")

    body = assert_error(response, 401)
    assert "Bearer" in body["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_invalid_token_and_other_schemes_are_401(api, staff):
    assert_error(ApiClient(api.client, "not-a-real-token").get("/members"), 401)
    assert_error(api.get("/members", headers={"Authorization": "Basic Y29vcmQ6eA=="}), 401)
    assert_error(api.get("/members", headers={"Authorization": "Bearer "}), 401)


def test_expired_token_is_401(api, staff):
    coord = api.login("coord@test.org")
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == staff["coordinator"].id))
    row.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)

    body = assert_error(coord.get("/members"), 401)

    assert "expired" in body["error"]


def test_token_of_a_disabled_user_stops_working(api, staff):
    coord = api.login("coord@test.org")
    staff["coordinator"].active = False

    assert_error(coord.get("/members"), 401)


def test_revoking_a_token_ends_it_and_only_it(api, staff):
    first = api.login("coord@test.org")
    second = api.login("coord@test.org")

    response = first.delete("/auth/token")

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_error(first.get("/members"), 401)
    assert_error(first.delete("/auth/token"), 401)
    assert second.get("/members").status_code == 200
    revoked = db.session.scalars(select(ApiToken).where(ApiToken.revoked_at.is_not(None))).all()
    assert len(revoked) == 1
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "token.revoke")) is not None


def test_revoking_needs_a_token(api, staff):
    assert_error(api.delete("/auth/token"), 401)


def test_token_use_is_recorded(api, staff):
    coord = api.login("coord@test.org")

    coord.get("/members")

    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == staff["coordinator"].id))
    db.session.refresh(row)
    assert row.last_used_at is not None


def test_session_cookie_does_not_authenticate_the_api(client, api, staff):
    """Only bearer tokens count, which is why the API can be exempt from CSRF."""
    db.session.commit()
    assert login(client, "super@test.org").status_code == 302
    assert client.get("/admin/").status_code == 200  # the session is live

    assert_error(api.get("/members"), 401)
    assert_error(api.post("/members", json={"first_name": "A", "last_name": "B", "unit_id": 1}), 401)


def test_token_user_does_not_leak_into_the_next_request(client, api, staff):
    coord = api.login("coord@test.org")
    assert coord.get("/members").status_code == 200

    page = client.get("/login")

    assert "coord@test.org" not in page.get_data(as_text=True)
    assert_error(api.get("/members"), 401)


def test_five_failures_lock_the_account_for_api_and_login_page(client, api, staff):
    for _ in range(4):
        assert_error(api.post("/auth/token", json={"email": "coord@test.org", "password": "wrong-password"}), 401)
    assert_error(api.post("/auth/token", json={"email": "coord@test.org", "password": "wrong-password"}), 401)

    locked = api.post("/auth/token", json={"email": "coord@test.org", "password": PASSWORD})

    body = assert_error(locked, 401)  # a locked address is told nothing more than "wrong"
    assert body["error"] == "Wrong email or password."
    # The login page shares the lockout.
    page = login(client, "coord@test.org")
    assert page.status_code == 401
    assert "Wrong email or password." in page.get_data(as_text=True)


def test_login_page_failures_count_towards_api_lockout(client, api, staff):
    db.session.commit()
    for _ in range(5):
        page = client.get("/login")
        client.post("/login", data={"email": "coord@test.org", "password": "wrong-password",
                                    "csrf_token": csrf_token_from(page.get_data(as_text=True))})

    assert_error(api.post("/auth/token", json={"email": "coord@test.org", "password": PASSWORD}), 401)


def test_token_endpoint_is_rate_limited_per_ip(app, api, staff, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "3 per minute")
    for _ in range(3):
        api.post("/auth/token", json={"email": "ghost@test.org", "password": "whatever-it-is"})

    response = api.post("/auth/token", json={"email": "coord@test.org", "password": PASSWORD})

    body = assert_error(response, 429)
    assert body["details"] == {"limit": "3 per 1 minute"}
    assert "Retry-After" in response.headers
    # Another address is not affected.
    other = api.post("/auth/token", json={"email": "coord@test.org", "password": PASSWORD},
                     environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 200


def test_rate_limit_does_not_apply_to_other_endpoints(app, api, staff, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "1 per minute")
    coord = api.login("coord@test.org")

    for _ in range(3):
        assert coord.get("/members").status_code == 200

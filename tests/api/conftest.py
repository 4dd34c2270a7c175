"""Fixtures for the API tests: a client that speaks to /api/v1 as a given user.

Each test runs inside one rolled-back outer transaction (tests/conftest.py),
and the app shares the test's session. The API rolls that session back when a
request fails, which would also undo test data not yet committed; so the
client commits pending setup before every request, just as a real caller
only ever sees data that is already in the database. It also holds every
answer to the OpenAPI document (``tests/api/contract.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from app.extensions import db
from tests.api.contract import check
from tests.conftest import PASSWORD

API = "/api/v1"


class ApiClient:
    """``api.get("/members")`` with the bearer token of the user it was made for (if any)."""

    def __init__(self, client, token: str | None = None) -> None:
        self.client = client
        self.token = token

    def login(self, email: str, password: str = PASSWORD) -> ApiClient:
        """A client for another user, holding a fresh token from POST /auth/token."""
        response = self.post("/auth/token", json={"email": email, "password": password})
        assert response.status_code == 200, response.get_json()
        return ApiClient(self.client, response.get_json()["token"])

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any):
        db.session.commit()
        headers = dict(headers or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        response = self.client.open(API + path, method=method, headers=headers, **kwargs)
        check(self.client, method, path, response)  # every answer must be one the OpenAPI document describes
        return response

    def get(self, path: str, **kwargs: Any):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any):
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any):
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any):
        return self.request("DELETE", path, **kwargs)


@pytest.fixture()
def api(client) -> ApiClient:
    """An anonymous API client; ``api.login(email)`` gives one with a token."""
    return ApiClient(client)


@pytest.fixture()
def as_super(api, staff) -> ApiClient:
    return api.login("super@test.org")


@pytest.fixture()
def as_admin(api, staff) -> ApiClient:
    return api.login("admin@test.org")


@pytest.fixture()
def as_coord(api, staff) -> ApiClient:
    """The coordinator of ward W1."""
    return api.login("coord@test.org")


@pytest.fixture()
def as_member(api, staff) -> ApiClient:
    return api.login("member@test.org")


def assert_error(response, status: int, field: str | None = None) -> dict:
    """The response is the API's JSON error with this status (and field, when given); returns the body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str) and body["error"]
    if field is not None:
        assert body["details"]["field"] == field, body
    return body

"""Sign-in cannot be used to lock someone out or to learn who has an account.

- Failures count per account *and* address: an attacker hammering an account
  from one address does not stop its owner signing in from another, on the
  login page or the API token endpoint.
- A locked address, a wrong password and an unknown email answer the same:
  same status, same message, same page.
- Every path costs one password hash of the configured algorithm and cost, so
  timing tells nothing either (medians compared as a ratio, never as a time).
- After signing in, a ``next=`` with control characters, backslashes or
  encoded tricks is ignored for the default page.
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import LoginFailure, User
from app.models.base import utcnow
from app.services.auth import hash_password
from tests.conftest import PASSWORD, csrf_token_from, login

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"


def _client_from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _token(client, address: str, email: str, password: str):
    db.session.commit()
    return client.post("/api/v1/auth/token", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def _hammer(app, email: str, times: int = 6) -> None:
    attacker = _client_from(app, ATTACKER)
    for i in range(times):
        assert login(attacker, email, f"guess-number-{i}").status_code == 401


def _page(response, email: str) -> str:
    """The answer page with what legitimately differs (the CSRF token, the email typed) blanked."""
    html = response.get_data(as_text=True)
    html = re.sub(r'name="csrf_token"[^>]*value="[^"]+"', 'name="csrf_token" value=""', html)
    return html.replace(email, "EMAIL")


def test_an_attacker_does_not_lock_the_owner_out(app, staff):
    _hammer(app, "admin@test.org")

    assert login(_client_from(app, ATTACKER), "admin@test.org", PASSWORD).status_code == 401
    owner = _client_from(app, OWNER)
    assert login(owner, "admin@test.org", PASSWORD).status_code == 302
    assert owner.get("/admin/").status_code == 200


def test_the_api_token_endpoint_shares_the_rule(app, client, staff):
    _hammer(app, "coord@test.org")

    refused = _token(client, ATTACKER, "coord@test.org", PASSWORD)
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "Wrong email or password."
    assert _token(client, OWNER, "coord@test.org", PASSWORD).status_code == 200
    # And API failures lock the page from that address too.
    for i in range(5):
        assert _token(client, "192.0.2.50", "member@test.org", f"api-guess-{i}").status_code == 401
    assert login(_client_from(app, "192.0.2.50"), "member@test.org", PASSWORD).status_code == 401
    assert login(_client_from(app, OWNER), "member@test.org", PASSWORD).status_code == 302


def test_locked_wrong_password_and_unknown_email_answer_alike(app, staff):
    _hammer(app, "admin@test.org")
    _hammer(app, "ghost@test.org")  # no such account: it gets a lock just the same

    locked = login(_client_from(app, ATTACKER), "admin@test.org", PASSWORD)  # the right password, locked out
    wrong = login(_client_from(app, OWNER), "admin@test.org", "not-the-password")
    unknown = login(_client_from(app, OWNER), "nobody@test.org", "not-the-password")
    unknown_locked = login(_client_from(app, ATTACKER), "ghost@test.org", "not-the-password")

    assert locked.status_code == wrong.status_code == unknown.status_code == unknown_locked.status_code == 401
    assert "Wrong email or password." in locked.get_data(as_text=True)
    assert _page(locked, "admin@test.org") == _page(wrong, "admin@test.org") == _page(unknown, "nobody@test.org") \
        == _page(unknown_locked, "ghost@test.org")


def test_locked_wrong_password_and_unknown_email_answer_alike_in_the_api(app, client, staff):
    for i in range(6):
        _token(client, ATTACKER, "coord@test.org", f"guess-{i}")
    answers = [
        _token(client, ATTACKER, "coord@test.org", PASSWORD),  # locked
        _token(client, OWNER, "coord@test.org", "not-the-password"),
        _token(client, OWNER, "nobody@test.org", "not-the-password"),
    ]
    assert {a.status_code for a in answers} == {401}
    assert [a.get_json() for a in answers] == [{"error": "Wrong email or password.", "details": None}] * 3


def test_an_absurdly_long_email_is_just_wrong(app, client, staff):
    assert login(client, "x" * 5000 + "@test.org", "whatever-password").status_code == 401
    assert _token(client, OWNER, "y" * 5000 + "@test.org", "whatever-password").status_code == 401


def test_locks_grow_with_each_further_failure(app, staff):
    attacker = _client_from(app, ATTACKER)
    for i in range(5):
        login(attacker, "admin@test.org", f"guess-{i}")

    def lock_minutes() -> float:
        db.session.expire_all()
        row = db.session.scalar(select(LoginFailure).where(LoginFailure.email == "admin@test.org"))
        return (row.locked_until - utcnow()).total_seconds() / 60

    def lock_runs_out() -> None:
        row = db.session.scalar(select(LoginFailure).where(LoginFailure.email == "admin@test.org"))
        row.locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()

    assert lock_minutes() == pytest.approx(15, abs=0.5)
    lock_runs_out()
    login(attacker, "admin@test.org", "guess-again")
    assert lock_minutes() == pytest.approx(30, abs=0.5)
    lock_runs_out()
    login(attacker, "admin@test.org", "and-again")
    assert lock_minutes() == pytest.approx(60, abs=0.5)
    # While locked, even the right password is turned away; once it runs out, it works and the count is forgotten.
    assert login(attacker, "admin@test.org", PASSWORD).status_code == 401
    lock_runs_out()
    assert login(attacker, "admin@test.org", PASSWORD).status_code == 302
    assert db.session.scalars(select(LoginFailure)).all() == []


def test_unknown_and_known_emails_take_the_same_time(app, client, staff, monkeypatch):
    """The unknown-email path hashes with the configured algorithm and cost, like a real check.

    The suite hashes cheaply; here passwords cost what a slow hash costs, so a
    cheap stand-in on the unknown path (what there was before) shows at once.
    """
    monkeypatch.setitem(app.config, "PASSWORD_METHOD", "pbkdf2:sha256:100000")
    user = db.session.scalar(select(User).where(User.email == "admin@test.org"))
    user.password_hash = hash_password(PASSWORD)
    db.session.commit()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    samples: dict[str, list[float]] = {"admin@test.org": [], "nobody@test.org": []}
    for attempt in range(-1, 15):  # attempt -1 warms both paths up
        for n, (email, times) in enumerate(samples.items()):
            address = f"10.9.{attempt + 1}.{n + 1}"  # a fresh address: no lockout or rate limit in the way
            started = time.perf_counter()
            response = client.post("/login", data={"email": email, "password": "wrong-password", "csrf_token": token},
                                   environ_base={"REMOTE_ADDR": address})
            elapsed = time.perf_counter() - started
            assert response.status_code == 401
            if attempt >= 0:
                times.append(elapsed)
    known, unknown = (statistics.median(samples[e]) for e in ("admin@test.org", "nobody@test.org"))
    assert 0.5 < known / unknown < 2, (known, unknown)


# --- where a login sends you next ---------------------------------------------------------

REFUSED_NEXT = [
    "/\\evil.example/",  # browsers read a backslash as a slash: //evil.example
    "/\t/evil.example/",  # and drop tabs and newlines
    "/admin/\r\nSet-Cookie: stolen=1",
    "/admin/\x00",
    "/admin/\x7f",
    "/%5Cevil.example/",  # the same tricks, percent-encoded
    "/%2F%2Fevil.example/",
    "/%252F%252Fevil.example/",
    "/admin/?q=%0d%0aSet-Cookie:%20stolen=1",
    "/admin/%09",
    "//evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("target", REFUSED_NEXT)
def test_a_tricky_next_falls_back_to_the_default_page(client, staff, target):
    query = urlencode({"next": target})
    token = csrf_token_from(client.get(f"/login?{query}").get_data(as_text=True))
    response = client.post(f"/login?{query}",
                           data={"email": "admin@test.org", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


@pytest.mark.parametrize("target", ["/admin/member/", "/admin/member/edit/?id=5&url=%2Fadmin%2Fmember%2F",
                                    "/admin/member/?search=M%C3%BCller"])
def test_a_plain_next_is_followed(client, staff, target):
    query = urlencode({"next": target})
    token = csrf_token_from(client.get(f"/login?{query}").get_data(as_text=True))
    response = client.post(f"/login?{query}",
                           data={"email": "admin@test.org", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == target


def test_behind_a_proxy_each_client_keeps_its_own_lockout(committing_app, database_url, monkeypatch):
    """With MUSTER_PROXY_HOPS=1 the address is the client's (X-Forwarded-For), not the proxy's."""
    from app import create_app
    from app.config import TestConfig
    from app.services import rbac

    monkeypatch.setenv("MUSTER_PROXY_HOPS", "1")
    proxied = create_app(TestConfig(database_url))
    with proxied.app_context():
        user = User(email="proxied@test.org", password_hash=hash_password(PASSWORD))
        db.session.add(user)
        db.session.flush()
        rbac.assign_role(None, user, rbac.role_by_name("admin"), None)
        db.session.commit()

        def token(forwarded_for: str, password: str):
            return proxied.test_client().post(
                "/api/v1/auth/token", json={"email": "proxied@test.org", "password": password},
                headers={"X-Forwarded-For": forwarded_for}, environ_base={"REMOTE_ADDR": "10.0.0.1"})

        for i in range(6):
            assert token(ATTACKER, f"guess-{i}").status_code == 401
        assert token(ATTACKER, PASSWORD).status_code == 401  # the attacker's address is locked out
        assert token(OWNER, PASSWORD).status_code == 200  # the owner, through the same proxy, is not
        assert {r.address for r in db.session.scalars(select(LoginFailure))} == {ATTACKER}

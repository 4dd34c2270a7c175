"""The login page: CSRF, lockout, rate limit, safe redirects, logout."""

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, LoginFailure, User
from tests.conftest import PASSWORD, csrf_token_from, login


def test_login_without_csrf_token_is_refused(client, staff):
    response = client.post("/login", data={"email": "admin@test.org", "password": PASSWORD})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_wrong_password_re_renders_with_message_and_keeps_email(client, staff):
    response = login(client, "admin@test.org", "wrong-password")
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "Wrong email or password." in html
    assert 'value="admin@test.org"' in html


def test_unknown_email_gets_the_same_message(client, staff):
    response = login(client, "nobody@test.org", "whatever-password")
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)


def test_five_failures_lock_the_account_from_that_address(client, app, staff):
    for _ in range(5):
        assert login(client, "admin@test.org", "bad-password-1").status_code == 401
    locked = login(client, "admin@test.org", PASSWORD)
    assert locked.status_code == 401  # the lock looks like a wrong password (tests/test_login_abuse.py)
    assert "Wrong email or password." in locked.get_data(as_text=True)
    user = db.session.scalar(select(User).where(User.email == "admin@test.org"))
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.object_id == str(user.id))).all()
    assert actions.count("login.failed") == 4 and "login.locked" in actions
    # Once the lock has run out, the right password works again.
    failure = db.session.scalar(select(LoginFailure).where(LoginFailure.email == "admin@test.org"))
    failure.locked_until = failure.locked_until - timedelta(minutes=16)
    db.session.commit()
    assert login(client, "admin@test.org", PASSWORD).status_code == 302


def test_login_is_rate_limited_per_ip(client, app, staff, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "3 per minute")
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    codes = [client.post("/login", data={"email": f"x{i}@test.org", "password": "p", "csrf_token": token}).status_code
             for i in range(4)]
    assert codes == [401, 401, 401, 429]


def test_next_only_follows_local_paths(client, staff):
    page = client.get("/login?next=https://evil.example/")
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post("/login?next=https://evil.example/",
                           data={"email": "admin@test.org", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/admin/"
    client.post("/logout", data={"csrf_token": token})
    page = client.get("/login?next=/admin/member/")
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post("/login?next=/admin/member/",
                           data={"email": "admin@test.org", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/admin/member/"


def test_logout_needs_post_with_token(client, staff):
    login(client, "admin@test.org")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    token = csrf_token_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_session_cookie_is_http_only(client, staff):
    response = login(client, "admin@test.org")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie

"""Sessions end on the server: a copied session cookie dies at logout, password change and deactivation.

Each test copies the signed-in browser's session cookie into a second client
(what an attacker with a stolen cookie holds), then checks what that second
client gets after the owner's session is ended.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.services import users
from app.services.auth import set_password
from tests.conftest import PASSWORD, csrf_token_from, login


def _copy_session(source, target) -> None:
    cookie = source.get_cookie("session")
    assert cookie is not None, "the source client holds no session"
    target.set_cookie("session", cookie.value)


def _signed_in(client) -> bool:
    response = client.get("/admin/")
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]
        return False
    assert response.status_code == 200, response.status_code
    return True


def _owner_and_copy(app, email: str = "admin@test.org"):
    owner, thief = app.test_client(), app.test_client()
    assert login(owner, email).status_code == 302
    db.session.commit()
    _copy_session(owner, thief)
    assert _signed_in(thief), "the copied cookie should work while the session lives"
    return owner, thief


def _user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def test_a_copied_cookie_is_signed_out_after_logout(app, staff):
    owner, thief = _owner_and_copy(app)

    token = csrf_token_from(owner.get("/admin/").get_data(as_text=True))
    assert owner.post("/logout", data={"csrf_token": token}).status_code == 302

    assert not _signed_in(thief)
    assert not _signed_in(owner)
    # The owner signs in again as usual, and that new session works.
    assert login(owner, "admin@test.org").status_code == 302
    assert _signed_in(owner)
    assert not _signed_in(thief)


def test_a_password_change_ends_every_session(app, staff):
    _owner, thief = _owner_and_copy(app)

    set_password(_user("admin@test.org"), "a-brand-new-password")
    db.session.commit()

    assert not _signed_in(thief)
    assert login(app.test_client(), "admin@test.org", PASSWORD).status_code == 401
    assert login(app.test_client(), "admin@test.org", "a-brand-new-password").status_code == 302


def test_deactivation_ends_sessions_for_good(app, staff):
    _owner, thief = _owner_and_copy(app)

    users.set_active(staff["super_admin"], _user("admin@test.org"), False)
    db.session.commit()
    assert not _signed_in(thief)

    # Switching the account back on does not bring the old cookie back to life.
    users.set_active(staff["super_admin"], _user("admin@test.org"), True)
    db.session.commit()
    assert not _signed_in(thief)
    assert login(app.test_client(), "admin@test.org").status_code == 302


def test_signing_in_elsewhere_keeps_the_other_session(app, staff):
    first, _copy = _owner_and_copy(app)

    second = app.test_client()
    assert login(second, "admin@test.org").status_code == 302

    assert _signed_in(first) and _signed_in(second)


def test_the_cookie_names_the_user_by_a_random_token_not_the_id(app, staff):
    client = app.test_client()
    login(client, "admin@test.org")
    with client.session_transaction() as session:
        session_user = session["_user_id"]
    user = _user("admin@test.org")
    assert session_user == user.session_token != str(user.id)
    assert len(session_user) >= 40

    # A genuine session edited to name the admin by id (the old scheme) signs nobody in.
    forged = app.test_client()
    login(forged, "member@test.org")
    with forged.session_transaction() as session:
        session["_user_id"] = str(user.id)
    assert not _signed_in(forged)

"""Accounts (issue 11): forgot password, reset links, change password, sign in by phone, sessions rotating.

Mail goes through a real SMTP server (aiosmtpd, ``smtp_mail``); links are
read from the received message and followed as a person would. Activation
links (console, bulk, staff users) are in tests/test_accounts_activation.py.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiToken, LoginFailure, MailMessage, OneTimeLink, User
from app.models.base import utcnow
from tests.conftest import PASSWORD, api_token, csrf_token_from, login

NEW = "a-much-better-passphrase"
EMAIL = "chanda@test.org"
PHONE = "0977 123 456"  # as people type it; stored as +260977123456


@pytest.fixture()
def chanda(tree, make_member, make_user):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", phone="0977123456",
                         email="chanda.m@example.org")
    return make_user(EMAIL, "member", member=member)


def text(response) -> str:
    return response.get_data(as_text=True)


def submit(client, url: str, data: dict, *, token: bool = True):
    """POST a form the way a browser does: with the CSRF token of the page just loaded."""
    form = dict(data)
    if token:
        form["csrf_token"] = csrf_token_from(text(client.get(url)))
    db.session.commit()
    return client.post(url, data=form)


def link_in(message, path: str) -> str:
    """The link to ``path`` in a received mail (text part), as a local path."""
    body = message.get_body(("plain",)).get_content()
    found = re.search(r"http://[^/\s]+(" + re.escape(path) + r"[^\s]+)", body)
    assert found, body
    return found.group(1)


def forgot(client, login_name: str):
    return submit(client, "/password/forgot", {"login": login_name})


def signed_in(client) -> bool:
    response = client.get("/account/password")
    return response.status_code == 200


def _blank(html: str) -> str:
    return re.sub(r'name="csrf_token"[^>]*value="[^"]+"', 'name="csrf_token" value=""', html)


# --- forgot password -> mail -> link -> new password -> sign in ------------------------------------------


def test_forgot_password_mail_link_new_password_sign_in(app, client, chanda, smtp_mail):
    page = client.get("/login")
    assert 'href="/password/forgot"' in text(page)
    response = forgot(client, EMAIL.upper())
    assert response.status_code == 200
    assert "Check your email" in text(response) and "for 2 hours" in text(response)

    [mail] = smtp_mail.wait_for(1)
    assert mail["To"] == EMAIL
    assert mail["Subject"] == f"Choose a new password for {app.config['ORG_NAME']}"
    body = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "works once, for 2 hours" in body and "works once, for 2 hours" in html
    assert app.config["ORG_NAME"] in body
    link = link_in(mail, "/password/reset/")
    assert f'href="{app.config["PUBLIC_URL"]}{link}"' in html  # absolute, on the public URL
    row = db.session.scalar(select(MailMessage).where(MailMessage.kind == "account.reset-password"))
    assert row.sensitive and row.idempotency_key.startswith(f"password-reset:{chanda.id}:")

    form = client.get(link)
    assert form.status_code == 200 and "Choose a new password" in text(form)
    assert form.headers["Cache-Control"] == "no-store" and form.headers["Referrer-Policy"] == "no-referrer"
    done = submit(client, link, {"password": NEW, "confirm": NEW})
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert "Your new password is set" in text(client.get("/login"))

    assert login(app.test_client(), EMAIL, PASSWORD).status_code == 401
    assert login(app.test_client(), EMAIL, NEW).status_code == 302


def test_the_answer_is_the_same_whether_or_not_the_account_exists(app, chanda, smtp_mail):
    known = forgot(app.test_client(), EMAIL)
    unknown = forgot(app.test_client(), "nobody@test.org")
    bad_phone = forgot(app.test_client(), "0977 000 001")
    not_even = forgot(app.test_client(), "not an address")
    assert known.status_code == unknown.status_code == bad_phone.status_code == not_even.status_code == 200
    assert _blank(text(known)) == _blank(text(unknown)) == _blank(text(bad_phone)) == _blank(text(not_even))
    assert len(smtp_mail.wait_for(1)) == 1
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 1


def test_a_phone_number_finds_the_account_too(app, client, chanda, smtp_mail):
    forgot(client, PHONE)
    [mail] = smtp_mail.wait_for(1)
    assert mail["To"] == EMAIL
    assert "/password/reset/" in mail.get_body(("plain",)).get_content()


def test_a_deactivated_account_gets_no_link(app, client, chanda, smtp_mail):
    chanda.active = False
    response = forgot(client, EMAIL)
    assert response.status_code == 200 and "Check your email" in text(response)
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 0


def test_a_few_links_an_hour_per_account_then_silence(app, chanda):
    for _ in range(5):
        forgot(app.test_client(), EMAIL)
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 3


def test_the_forgot_form_is_rate_limited_per_address(app, client):
    answers = [forgot(client, f"someone{i}@test.org").status_code for i in range(6)]
    assert answers == [200] * 5 + [429]
    assert "Too many attempts" in text(forgot(client, "someone@test.org"))


def test_the_forgot_form_says_what_is_missing(client):
    response = submit(client, "/password/forgot", {"login": ""})
    assert response.status_code == 400
    assert "Give your email or phone number." in text(response)


# --- links that cannot be used ------------------------------------------------------------------------


def _reset_link(client, smtp_mail, count: int = 1) -> str:
    forgot(client, EMAIL)
    return link_in(smtp_mail.wait_for(count)[-1], "/password/reset/")


def test_an_expired_link_says_so_and_offers_a_new_one(app, client, chanda, smtp_mail):
    link = _reset_link(client, smtp_mail)
    row = db.session.scalar(select(OneTimeLink).where(OneTimeLink.purpose == "reset-password"))
    row.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    token = csrf_token_from(text(client.get("/password/forgot")))
    for response in (client.get(link), client.post(link, data={"password": NEW, "confirm": NEW, "csrf_token": token})):
        assert response.status_code == 410
        page = text(response)
        assert "This link has expired" in page and 'data-reason="expired"' in page
        assert re.search(r'<a [^>]*href="/password/forgot" id="new-link">Get a new link</a>', page)
    assert login(app.test_client(), EMAIL, PASSWORD).status_code == 302  # unchanged


def test_a_used_link_works_once(app, client, chanda, smtp_mail):
    link = _reset_link(client, smtp_mail)
    assert submit(client, link, {"password": NEW, "confirm": NEW}).status_code == 302
    again = client.get(link)
    assert again.status_code == 410 and "has been used already" in text(again)
    assert 'data-reason="used"' in text(again) and "Get a new link" in text(again)


def test_a_newer_link_replaces_the_older(app, client, chanda, smtp_mail):
    first = _reset_link(client, smtp_mail)
    second = _reset_link(client, smtp_mail, 2)
    old = client.get(first)
    assert old.status_code == 410 and "A newer link was sent" in text(old)
    assert client.get(second).status_code == 200


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # the signature changed
    lambda t: t[: len(t) // 2],  # cut short
    lambda t: "x" + t,
    lambda t: "not-a-token",
])
def test_a_tampered_link_says_so(app, client, chanda, smtp_mail, tamper):
    link = _reset_link(client, smtp_mail)
    prefix, token = link.rsplit("/", 1)
    response = client.get(f"{prefix}/{tamper(token)}")
    assert response.status_code == 400
    assert "This link is not valid" in text(response) and 'data-reason="invalid"' in text(response)
    assert "Get a new link" in text(response)


def test_a_reset_link_is_no_activation_link(app, client, chanda, smtp_mail):
    link = _reset_link(client, smtp_mail)
    response = client.get(link.replace("/password/reset/", "/activate/"))
    assert response.status_code == 400 and "This link is not valid" in text(response)


def test_the_new_password_form_shows_every_message_and_keeps_the_link(app, client, chanda, smtp_mail):
    link = _reset_link(client, smtp_mail)
    response = submit(client, link, {"password": "short", "confirm": "other"})
    assert response.status_code == 422
    page = text(response)
    assert "A password needs at least 10 characters." in page and "The two passwords are not the same." in page
    empty = submit(client, link, {"password": "", "confirm": ""})
    assert empty.status_code == 400
    assert "Choose a new password." in text(empty) and "Type the new password again." in text(empty)
    assert submit(client, link, {"password": NEW, "confirm": NEW}).status_code == 302  # still usable


# --- what a reset does to the account -------------------------------------------------------------------


def test_a_reset_unlocks_a_locked_account(app, chanda, smtp_mail):
    owner = app.test_client()
    owner.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    for i in range(6):
        assert login(owner, EMAIL, f"wrong-guess-{i}").status_code == 401
    assert login(owner, EMAIL, PASSWORD).status_code == 401  # locked from this address
    assert db.session.scalar(select(LoginFailure).where(LoginFailure.email == EMAIL)).locked_until is not None

    link = _reset_link(owner, smtp_mail)
    assert submit(owner, link, {"password": NEW, "confirm": NEW}).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(LoginFailure).where(LoginFailure.email == EMAIL)) == 0
    assert login(owner, EMAIL, NEW).status_code == 302


def test_a_reset_ends_every_session_and_api_token(app, chanda, smtp_mail):
    browser = app.test_client()
    assert login(browser, EMAIL).status_code == 302
    token = api_token(app.test_client(), EMAIL)
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    stranger = app.test_client()
    link = _reset_link(stranger, smtp_mail)
    assert submit(stranger, link, {"password": NEW, "confirm": NEW}).status_code == 302

    assert not signed_in(browser)
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert db.session.scalar(select(ApiToken).where(ApiToken.user_id == chanda.id)).revoked_at is not None


# --- change password -------------------------------------------------------------------------------------


def test_change_password_needs_the_current_one(app, client, chanda):
    login(client, EMAIL)
    assert 'id="nav-password"' in text(client.get("/"))
    wrong = submit(client, "/account/password", {"current_password": "not-it-at-all", "password": "short",
                                                   "confirm": "different"})
    assert wrong.status_code == 422
    page = text(wrong)
    for message in ("This is not your current password.", "A password needs at least 10 characters.",
                    "The two passwords are not the same."):
        assert message in page
    same = submit(client, "/account/password", {"current_password": PASSWORD, "password": PASSWORD,
                                                  "confirm": PASSWORD})
    assert same.status_code == 422 and "the one you have now" in text(same)
    assert login(app.test_client(), EMAIL, PASSWORD).status_code == 302


def test_change_password_ends_other_sessions_and_tokens_and_keeps_this_one(app, chanda):
    here, elsewhere = app.test_client(), app.test_client()
    login(here, EMAIL)
    login(elsewhere, EMAIL)
    token = api_token(app.test_client(), EMAIL)

    done = submit(here, "/account/password", {"current_password": PASSWORD, "password": NEW, "confirm": NEW})
    assert done.status_code == 302
    assert "Your password is changed" in text(here.get(done.headers["Location"]))
    assert signed_in(here)
    assert not signed_in(elsewhere)
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert login(app.test_client(), EMAIL, NEW).status_code == 302
    assert login(app.test_client(), EMAIL, PASSWORD).status_code == 401


def test_staff_reach_change_password_from_the_console(client, staff):
    login(client, "coord@test.org")
    assert 'id="console-password" href="/account/password"' in text(client.get("/admin/"))
    assert client.get("/account/password").status_code == 200


def test_change_password_needs_signing_in(client):
    response = client.get("/account/password")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- sign in by phone, sessions rotating -----------------------------------------------------------------


def test_sign_in_with_a_phone_number(app, chanda):
    for typed in (PHONE, "+260977123456", "260 97 712 3456"):
        response = login(app.test_client(), typed)
        assert response.status_code == 302, typed
    assert login(app.test_client(), PHONE, "wrong-password-1").status_code == 401
    page = text(login(app.test_client(), "0966 999 888"))
    assert "Wrong email or password." in page
    assert "Email or phone number" in text(app.test_client().get("/login"))


def test_a_phone_shared_by_two_members_signs_in_nobody(app, tree, make_member, make_user, chanda):
    other = make_member(tree["w2"])
    other.phone = "+260977123456"  # the registry refuses this; older data may still hold it
    make_user("other@test.org", "member", member=other)
    assert login(app.test_client(), PHONE).status_code == 401
    assert login(app.test_client(), EMAIL).status_code == 302


def test_phone_and_email_share_one_lockout(app, chanda):
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.66"
    for i in range(3):
        login(attacker, PHONE, f"guess-{i}")
    for i in range(2):
        login(attacker, EMAIL, f"guess-{i + 3}")
    assert db.session.scalar(select(LoginFailure.failures).where(LoginFailure.email == EMAIL)) == 5
    assert login(attacker, EMAIL, PASSWORD).status_code == 401  # locked: five failures on one account
    assert login(attacker, PHONE, PASSWORD).status_code == 401  # by either name
    assert login(app.test_client(), PHONE).status_code == 302  # the owner, elsewhere


def test_the_session_is_new_after_sign_in(app, client, chanda):
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
        before = session.get("csrf_token")
    assert before
    assert login(client, EMAIL).status_code == 302
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("csrf_token") != before
        assert session["_user_id"] == db.session.get(User, chanda.id).session_token


# --- CSRF on every new form ------------------------------------------------------------------------------


def test_every_account_form_has_and_needs_a_csrf_token(app, client, chanda, smtp_mail):
    link = _reset_link(client, smtp_mail)
    signed = app.test_client()
    login(signed, EMAIL)
    pages = [(client, "/password/forgot", {"login": EMAIL}), (client, link, {"password": NEW, "confirm": NEW}),
             (signed, "/account/password", {"current_password": PASSWORD, "password": NEW, "confirm": NEW})]
    for who, url, data in pages:
        assert 'name="csrf_token"' in text(who.get(url)), url
        refused = submit(who, url, data, token=False)
        assert refused.status_code == 400 and "This form has expired" in text(refused), url
    assert login(app.test_client(), EMAIL, PASSWORD).status_code == 302  # nothing changed


def test_a_password_change_leaves_a_security_notice_the_member_cannot_switch_off(app, chanda):
    from app.models import Notification

    client = app.test_client()
    login(client, EMAIL)
    submit(client, "/account/password", {"current_password": PASSWORD, "password": NEW, "confirm": NEW})
    notice = db.session.scalars(select(Notification).where(Notification.kind == "account.security")).one()
    assert notice.title == "Your password was changed" and notice.link == "/password/forgot"
    page = text(client.get("/notifications/preferences"))
    assert "Always on" in page

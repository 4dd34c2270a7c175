"""Activation links (issue 11): staff invite members (one, ticked rows, a whole list) and new staff users.

Each link arrives by real SMTP (aiosmtpd) and is followed to set a first
password; then the person signs in. Scope: a coordinator reaches only the
members of their own ward (others answer 404, or are left out of a bulk send).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Job, MailMessage, OneTimeLink, User
from app.models.base import utcnow
from app.services import accounts
from tests.conftest import csrf_token_from, login
from tests.test_accounts import NEW, link_in, submit, text


@pytest.fixture()
def coordinator(client, staff):
    """The test client signed in as the coordinator of ward W1."""
    assert login(client, "coord@test.org").status_code == 302
    return client


@pytest.fixture()
def people(tree, make_member):
    """Members: two in W1 (one without an email), one in W4 (outside the coordinator's ward)."""
    return {
        "mwila": make_member(tree["w1"], first_name="Mwila", email="Mwila.B@example.org", phone="0977222333"),
        "noemail": make_member(tree["w1"], first_name="Nomail"),
        "far": make_member(tree["w4"], first_name="Far", email="far@example.org"),
    }


def _csrf(client) -> str:
    return csrf_token_from(text(client.get("/admin/member/")))


def _post(client, url: str, data: dict | None = None):
    form = {"csrf_token": _csrf(client), **(data or {})}
    db.session.commit()
    return client.post(url, data=form)


def _login_of(member) -> User | None:
    return db.session.scalar(select(User).where(User.member_id == member.id))


def _activate(app, mail, password: str = NEW):
    client = app.test_client()
    link = link_in(mail, "/activate/")
    page = client.get(link)
    assert page.status_code == 200 and "Set my password" in text(page)
    assert submit(client, link, {"password": password, "confirm": password}).status_code == 302
    return link


def test_a_coordinator_invites_a_member_who_sets_a_password_and_signs_in(app, coordinator, people, smtp_mail):
    mwila = people["mwila"]
    details = text(coordinator.get(f"/admin/member/details/?id={mwila.id}"))
    assert 'id="member-account-panel"' in details and "No login yet." in details
    assert f'action="/admin/member/activation/{mwila.id}"' in details

    response = _post(coordinator, f"/admin/member/activation/{mwila.id}")
    assert response.status_code == 302
    assert "Activation link sent to Mwila" in text(coordinator.get(response.headers["Location"]))

    user = _login_of(mwila)
    assert user.email == "mwila.b@example.org" and user.password_hash == ""
    assert [a.role.name for a in user.assignments] == ["member"] and user.assignments[0].unit_id is None
    [mail] = smtp_mail.wait_for(1)
    assert mail["To"] == "mwila.b@example.org"
    assert mail["Subject"] == f"Your {app.config['ORG_NAME']} account: set your password"
    body = mail.get_body(("plain",)).get_content()
    assert "Hello Mwila," in body and mwila.membership_number in body and "for 3 days" in body
    assert f"{app.config['PUBLIC_URL']}/login" in body
    row = db.session.scalar(select(MailMessage).where(MailMessage.kind == "account.activate"))
    assert row.sensitive and row.member_id == mwila.id and not row.bulk

    assert login(app.test_client(), "mwila.b@example.org", "").status_code == 400  # no password yet
    link = _activate(app, mail)
    member_client = app.test_client()
    assert login(member_client, "0977 222 333", NEW).status_code == 302
    assert "Hello, Mwila" in text(member_client.get("/"))
    again = app.test_client().get(link)
    assert again.status_code == 410 and "Get a new link" in text(again)


def test_a_coordinator_cannot_reach_members_of_other_wards(app, coordinator, people, smtp_mail):
    response = _post(coordinator, f"/admin/member/activation/{people['far'].id}")
    assert response.status_code == 404
    assert _login_of(people["far"]) is None
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 0


def test_a_member_without_an_email_is_skipped_with_a_message(app, coordinator, people):
    member = people["noemail"]
    details = text(coordinator.get(f"/admin/member/details/?id={member.id}"))
    assert "Add an email address to invite them." in details and 'id="activation-form"' not in details
    response = _post(coordinator, f"/admin/member/activation/{member.id}")
    assert "1 skipped: no email address." in text(coordinator.get(response.headers["Location"]))
    assert _login_of(member) is None


def test_a_member_with_a_login_gets_the_link_at_its_email(app, coordinator, people, make_user, smtp_mail):
    make_user("mwila.login@test.org", "member", member=people["mwila"])
    _post(coordinator, f"/admin/member/activation/{people['mwila'].id}")
    [mail] = smtp_mail.wait_for(1)
    assert mail["To"] == "mwila.login@test.org"
    assert db.session.scalar(select(func.count()).select_from(User).where(User.member_id == people["mwila"].id)) == 1


def test_an_email_held_by_another_login_is_not_taken_over(app, coordinator, people, make_user):
    make_user("mwila.b@example.org", "member")  # someone else's login, not linked to Mwila
    response = _post(coordinator, f"/admin/member/activation/{people['mwila'].id}")
    assert "1 skipped: their email belongs to another login." in text(coordinator.get(response.headers["Location"]))
    assert _login_of(people["mwila"]) is None


def test_bulk_action_sends_to_ticked_members_in_scope_only(app, coordinator, people, smtp_mail):
    list_page = text(coordinator.get("/admin/member/"))
    assert "Send activation links" in list_page
    ids = [str(m.id) for m in people.values()]
    response = _post(coordinator, "/admin/member/action/", {"action": "activation", "rowid": ids})
    assert response.status_code == 302
    flashed = text(coordinator.get("/admin/member/"))
    assert "Activation link sent to 1 member. 1 skipped: no email address." in flashed
    [mail] = smtp_mail.wait_for(1)
    assert mail["To"] == "mwila.b@example.org"
    assert _login_of(people["far"]) is None
    assert db.session.scalar(select(MailMessage.bulk).where(MailMessage.kind == "account.activate")) is True


def test_a_whole_filtered_list_is_sent_in_the_request(app, coordinator, people, tree, make_member, smtp_mail):
    make_member(tree["w1"], first_name="Other", last_name="Zulu", email="zulu@example.org")
    page = text(coordinator.get("/admin/member/?search=Zulu"))
    assert 'id="activation-list-form"' in page
    action = re.search(r'id="activation-list-form"\s+action="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "search=Zulu" in action
    response = _post(coordinator, action)
    assert response.status_code == 302 and "search=Zulu" in response.headers["Location"]
    assert "Activation link sent to 1 member." in text(coordinator.get(response.headers["Location"]))
    assert [m["To"] for m in smtp_mail.wait_for(1)] == ["zulu@example.org"]


def test_a_long_list_goes_to_a_job(app, coordinator, people, smtp_mail, monkeypatch):
    monkeypatch.setattr(accounts, "INLINE_ACTIVATIONS", 1)
    response = _post(coordinator, "/admin/member/activation/list")  # the coordinator's whole list: W1
    assert response.status_code == 302 and "/admin/jobs/" in response.headers["Location"]
    job = db.session.scalar(select(Job).where(Job.kind == accounts.ACTIVATION_JOB))
    assert job.state == "succeeded", (job.state, job.message)
    assert job.result["sent"] == 1 and job.result["no_email"] == 1
    assert "1 skipped: no email address." in job.result["summary"]
    assert [m["To"] for m in smtp_mail.wait_for(1)] == ["mwila.b@example.org"]
    page = text(coordinator.get(response.headers["Location"]))
    assert "Send activation links to 2 members" in page


def test_a_member_of_the_portal_cannot_send_links(app, client, staff, people):
    login(client, "member@test.org")
    assert _post(client, f"/admin/member/activation/{people['mwila'].id}").status_code == 403
    assert _post(client, "/admin/member/activation/list").status_code == 403


def test_an_expired_activation_link_offers_a_new_one(app, coordinator, people, smtp_mail):
    _post(coordinator, f"/admin/member/activation/{people['mwila'].id}")
    [mail] = smtp_mail.wait_for(1)
    row = db.session.scalar(select(OneTimeLink).where(OneTimeLink.purpose == "activate"))
    assert row.expires_at - row.created_at == timedelta(hours=72)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = app.test_client().get(link_in(mail, "/activate/"))
    assert response.status_code == 410
    assert "This link has expired" in text(response) and "ask your coordinator" in text(response)


# --- staff users ---------------------------------------------------------------------------------------


@pytest.fixture()
def as_super(client, staff):
    assert login(client, "super@test.org").status_code == 302
    return client


def _users_post(client, url: str, data: dict | None = None):
    form = {"csrf_token": csrf_token_from(text(client.get("/admin/users/new"))), **(data or {})}
    db.session.commit()
    return client.post(url, data=form)


def test_a_new_staff_user_without_a_password_gets_an_activation_link(app, as_super, tree, smtp_mail):
    assert "Leave it empty to email them an activation link" in text(as_super.get("/admin/users/new"))
    response = _users_post(as_super, "/admin/users/new", {"email": "New.Staff@Test.org", "password": "",
                                                           "role_id": "", "unit_id": ""})
    assert response.status_code == 302
    assert "An activation link is on its way to them." in text(as_super.get(response.headers["Location"]))
    user = db.session.scalar(select(User).where(User.email == "new.staff@test.org"))
    assert user.password_hash == ""
    [mail] = smtp_mail.wait_for(1)
    assert mail["To"] == "new.staff@test.org"
    assert "An account has been opened for you" in mail.get_body(("plain",)).get_content()
    _activate(app, mail)
    assert login(app.test_client(), "new.staff@test.org", NEW).status_code == 302


def test_staff_can_resend_a_link_from_the_user_page(app, as_super, staff, smtp_mail):
    coord = staff["coordinator"]
    page = text(as_super.get(f"/admin/users/{coord.id}/"))
    assert f'action="/admin/users/{coord.id}/activation"' in page
    response = _users_post(as_super, f"/admin/users/{coord.id}/activation")
    assert response.status_code == 302
    assert "An activation link is on its way to coord@test.org." in text(as_super.get(response.headers["Location"]))
    [mail] = smtp_mail.wait_for(1)
    assert mail["To"] == "coord@test.org"


def test_a_coordinator_cannot_send_a_link_to_a_staff_user(app, coordinator, staff):
    response = _post(coordinator, f"/admin/users/{staff['super_admin'].id}/activation")
    assert response.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 0

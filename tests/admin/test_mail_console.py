"""The console's "Outgoing mail": list, filters, the rendered message, retry, a test email; scoped, CSRF on.

A ward coordinator sees the mail about the members of their ward and nothing
else (another ward's message answers 404, as if it did not exist); mail about
no member (a test email) is for staff who read members everywhere.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, MailMessage
from app.services import mail
from tests.conftest import csrf_token_from, login

LIST = "/admin/mail/"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _outbox(app) -> list:
    return getattr(app.extensions["mailman"], "outbox", [])


@pytest.fixture()
def messages(app, tree, make_member, staff):
    """Mail about a W1 member, a W4 member, and about no member; one of each kind of outcome."""
    _outbox(app).clear()
    ada = make_member(tree["w1"], first_name="Ada", last_name="Banda", email="ada@example.org")
    bo = make_member(tree["w4"], first_name="Bo", last_name="Phiri", email="bo@example.org")
    in_ward = mail.send_mail("test", None, {"sent_at": "today"}, member=ada)
    out_of_ward = mail.send_mail("test", None, {"sent_at": "today"}, member=bo)
    failed = mail.send_mail("test", None, {"sent_at": "today", "sent_by": "<script>alert(1)</script>"},
                            member=ada, key="reminder:ada:1")
    global_one = mail.send_test(staff["admin"], "ops@example.org")
    db.session.commit()  # all four delivered (immediate queue, in-memory backend)
    failed.status, failed.reason = "failed", "The server refused the recipient: 550 5.1.1 unknown user"
    db.session.commit()
    return {"in": in_ward, "out": out_of_ward, "failed": failed, "global": global_one}


def _ids(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'href="/admin/mail/(\d+)"', html)}


def test_a_super_admin_sees_every_message_and_filters_them(client, messages):
    login(client, "super@test.org")
    page = client.get(LIST)
    assert page.status_code == 200
    assert _ids(_text(page)) == {m.id for m in messages.values()}
    assert "4 message(s)" in _text(page) and "Send a test email" in _text(page)

    failed = client.get(LIST, query_string={"status": "failed"})
    assert _ids(_text(failed)) == {messages["failed"].id}
    assert "550 5.1.1 unknown user" in _text(failed)
    by_address = client.get(LIST, query_string={"q": "OPS@"})
    assert _ids(_text(by_address)) == {messages["global"].id}
    assert _ids(_text(client.get(LIST, query_string={"kind": "test", "status": "sent"}))) == {
        messages["in"].id, messages["out"].id, messages["global"].id}
    assert _ids(_text(client.get(LIST, query_string={"kind": "nothing-like-it"}))) == set()
    assert client.get(LIST, query_string={"page": "-1"}).status_code == 400


def test_the_list_pages(client, messages, monkeypatch):
    import app.admin.mail as view

    monkeypatch.setattr(view, "PAGE_SIZE", 3)
    login(client, "super@test.org")
    first, second = client.get(LIST), client.get(LIST, query_string={"page": 1})
    assert len(_ids(_text(first))) == 3 and len(_ids(_text(second))) == 1
    assert "Page 1 of 2" in _text(first)
    past = client.get(LIST, query_string={"page": 5})
    assert "past the end of this list" in _text(past)


def test_a_coordinator_sees_only_mail_about_their_ward(client, messages):
    login(client, "coord@test.org")
    page = client.get(LIST)
    assert page.status_code == 200
    assert _ids(_text(page)) == {messages["in"].id, messages["failed"].id}
    assert "Send a test email" not in _text(page)
    assert client.get(f"{LIST}{messages['in'].id}").status_code == 200
    for other in ("out", "global"):
        assert client.get(f"{LIST}{messages[other].id}").status_code == 404
        assert client.get(f"{LIST}{messages[other].id}/html").status_code == 404
    assert client.get(f"{LIST}999999").status_code == 404
    assert client.get(f"{LIST}test").status_code == 403


def test_a_member_and_a_stranger_get_no_console(client, messages):
    assert client.get(LIST).status_code == 302  # to the login page
    login(client, "member@test.org")
    assert client.get(LIST).status_code == 403


def test_the_message_page_shows_the_text_and_frames_the_html_safely(client, messages):
    login(client, "coord@test.org")
    message = messages["failed"]
    page = _text(client.get(f"{LIST}{message.id}"))
    assert "This is a test email from Muster" in page  # the text body
    assert "550 5.1.1 unknown user" in page and "Ada Banda" in page
    assert f'<iframe sandbox="" referrerpolicy="no-referrer" title="The HTML body" src="/admin/mail/{message.id}/html"' in page
    assert "<script>alert(1)</script>" not in page  # the HTML source is shown escaped
    assert "&amp;lt;script&amp;gt;" in page

    body = client.get(f"{LIST}{message.id}/html")
    assert body.status_code == 200 and body.mimetype == "text/html"
    csp = body.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'self'" in csp
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _text(body)  # escaped by the template


def test_a_sensitive_message_is_never_shown(client, messages, tree):
    message = mail.send_mail("test", "ada@example.org", {"sent_at": "now"}, member=messages["in"].member,
                             sensitive=True)
    db.session.commit()
    login(client, "super@test.org")
    page = _text(client.get(f"{LIST}{message.id}"))
    assert "holds a one-time link" in page and "This is a test email" not in page
    assert "This is a test email" not in _text(client.get(f"{LIST}{message.id}/html"))


def test_retry_queues_a_failed_message_again_and_it_is_sent(app, client, messages):
    login(client, "coord@test.org")
    message = messages["failed"]
    page = client.get(f"{LIST}{message.id}")
    assert "Retry" in _text(page)
    before = len(_outbox(app))

    response = client.post(f"{LIST}{message.id}/retry", data={"csrf_token": csrf_token_from(_text(page))})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/mail/{message.id}")
    db.session.expire_all()
    row = db.session.get(MailMessage, message.id)
    assert row.status == "sent" and row.attempts == 1
    assert len(_outbox(app)) == before + 1 and _outbox(app)[-1].to == ["ada@example.org"]
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "mail.retry")) is not None
    assert "Queued again" in _text(client.get(f"{LIST}{message.id}"))


def test_retry_needs_the_csrf_token_and_a_failed_message(client, messages):
    login(client, "coord@test.org")
    assert client.post(f"{LIST}{messages['failed'].id}/retry").status_code == 400  # no token
    db.session.expire_all()
    assert db.session.get(MailMessage, messages["failed"].id).status == "failed"
    token = csrf_token_from(_text(client.get(f"{LIST}{messages['in'].id}")))
    response = client.post(f"{LIST}{messages['in'].id}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    assert "Only a failed message can be sent again." in _text(client.get(f"{LIST}{messages['in'].id}"))
    assert client.post(f"{LIST}{messages['out'].id}/retry", data={"csrf_token": token}).status_code == 404


def test_a_reader_without_update_may_look_but_not_retry(client, messages, make_user, tree):
    from app.services import rbac

    role = rbac.create_role(None, "mail_reader", "Reads members", ["members.read"])
    reader = make_user("reader@test.org")
    rbac.assign_role(None, reader, role, tree["w1"])
    db.session.commit()
    login(client, "reader@test.org")
    page = client.get(f"{LIST}{messages['failed'].id}")
    assert page.status_code == 200 and "Retry" not in _text(page)
    token = csrf_token_from(_text(client.get("/admin/")))
    assert client.post(f"{LIST}{messages['failed'].id}/retry", data={"csrf_token": token}).status_code == 403


def test_an_admin_sends_a_test_email_from_the_console(app, client, staff):
    _outbox(app).clear()
    login(client, "admin@test.org")
    form = client.get(f"{LIST}test")
    assert form.status_code == 200 and 'value="admin@test.org"' in _text(form)
    token = csrf_token_from(_text(form))

    bad = client.post(f"{LIST}test", data={"to": "not an address", "csrf_token": token})
    assert bad.status_code == 200 and "Not a valid email address" in _text(bad)
    assert _outbox(app) == []

    response = client.post(f"{LIST}test", data={"to": "ops@example.org", "csrf_token": token})
    assert response.status_code == 302
    [sent] = _outbox(app)
    assert sent.to == ["ops@example.org"] and "This is a test email from Muster" in sent.body
    page = _text(client.get(response.headers["Location"]))
    assert "Test email queued for ops@example.org" in page and ">sent<" in page
    row = db.session.scalar(select(MailMessage).where(MailMessage.to_address == "ops@example.org"))
    assert row.queued_by_id == staff["admin"].id and row.member_id is None
    assert client.post(f"{LIST}test", data={"to": "ops@example.org"}).status_code == 400  # no CSRF token


def test_only_staff_who_manage_members_everywhere_send_test_emails(client, staff):
    login(client, "coord@test.org")
    assert client.get(f"{LIST}test").status_code == 403
    token = csrf_token_from(_text(client.get("/admin/")))
    assert client.post(f"{LIST}test", data={"to": "x@example.org", "csrf_token": token}).status_code == 403
    assert db.session.scalar(select(MailMessage)) is None

"""Email verification after joining, through a real SMTP server (aiosmtpd): the link is read from the mail.

The link opens a page with one button (a POST: a mail scanner opening the
link does not use it up); pressing it marks the address verified. Expired,
used, replaced and tampered links say so and offer a new one; asking for a
new one answers the same whether or not the address is known.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from app.extensions import db
from app.models import Member, OneTimeLink
from app.models.base import utcnow
from tests.conftest import csrf_token_from
from tests.portal.conftest import text
from tests.portal.test_join import application, submit

LINK_RE = re.compile(r"(https?://\S+/join/verify/[A-Za-z0-9_.\-]+)")


def delivered_link(smtp, count: int = 1) -> str:
    """The verification link of the ``count``-th mail the server received (text and HTML agree)."""
    received = smtp.wait_for(count)[count - 1]
    assert received["Subject"].startswith("Confirm your email address")
    body = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    [link] = set(LINK_RE.findall(body))
    assert f'href="{link}"' in html
    return link


def path_of(link: str, app) -> str:
    assert link.startswith(app.config["PUBLIC_URL"])  # built from MUSTER_PUBLIC_URL, never the Host header
    return link[len(app.config["PUBLIC_URL"]):]


def joined(client, tree, smtp, app) -> str:
    assert submit(client, application(tree)).status_code == 302
    return path_of(delivered_link(smtp), app)


def press(client, path: str):
    """Open the link and press its button, as a person does."""
    page = client.get(path)
    assert page.status_code == 200 and 'id="verify-confirm"' in text(page)
    db.session.commit()
    return client.post(path, data={"csrf_token": csrf_token_from(text(page))})


def member() -> Member:
    db.session.expire_all()
    return db.session.scalar(select(Member).where(Member.national_id == "123456/78/1"))


def test_the_link_from_the_mail_verifies_the_address(client, tree, smtp_mail, app):
    path = joined(client, tree, smtp_mail, app)
    [received] = smtp_mail.messages
    assert received["To"] == "mutale.zulu@example.org"
    assert member().email_verified_at is None
    assert member().email_verified_at is None  # opening the page alone verifies nothing
    response = press(client, path)
    assert response.status_code == 200 and "is confirmed" in text(response)
    assert member().email_verified_at is not None


def test_a_used_link_says_so_and_offers_a_new_one(client, tree, smtp_mail, app):
    path = joined(client, tree, smtp_mail, app)
    press(client, path)
    again = client.get(path)
    page = text(again)
    assert again.status_code == 410 and "used already" in page and 'id="verify-new-link"' in page


def test_an_expired_link_says_so(client, tree, smtp_mail, app):
    path = joined(client, tree, smtp_mail, app)
    db.session.execute(update(OneTimeLink).values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    response = client.get(path)
    assert response.status_code == 410 and "expired" in text(response)
    assert member().email_verified_at is None


def test_a_tampered_link_says_so(client, tree, smtp_mail, app):
    path = joined(client, tree, smtp_mail, app)
    for bad in (path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"), path[:-10], "/join/verify/nonsense"):
        response = client.get(bad)
        assert response.status_code == 400 and "not valid" in text(response), bad
    # A tampered token posted directly verifies nothing either.
    token = csrf_token_from(text(client.get("/join/new-link")))
    assert client.post(path[:-2] + "xx", data={"csrf_token": token}).status_code == 400
    assert member().email_verified_at is None


def test_a_new_link_replaces_the_old_and_the_answer_names_nobody(client, tree, smtp_mail, app):
    first = joined(client, tree, smtp_mail, app)
    page = client.get("/join/new-link")
    token = csrf_token_from(text(page))
    db.session.commit()
    known = client.post("/join/new-link", data={"csrf_token": token, "email": "MUTALE.ZULU@example.org"})
    unknown = client.post("/join/new-link", data={"csrf_token": token, "email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 200
    sent = 'id="new-link-sent"'
    assert sent in text(known) and sent in text(unknown)
    assert text(known).replace("MUTALE.ZULU@example.org", "X") == text(unknown).replace("nobody@example.org", "X")
    second = path_of(delivered_link(smtp_mail, 2), app)
    assert len(smtp_mail.messages) == 2  # nothing went to the unknown address
    assert second != first
    replaced = client.get(first)
    assert replaced.status_code == 410 and "newer link" in text(replaced)
    assert press(client, second).status_code == 200
    assert member().email_verified_at is not None
    # Verified: asking again sends nothing more.
    client.post("/join/new-link", data={"csrf_token": token, "email": "mutale.zulu@example.org"})
    assert len(smtp_mail.messages) == 2


def test_a_malformed_address_is_a_field_message(client, tree):
    db.session.commit()
    token = csrf_token_from(text(client.get("/join/new-link")))
    response = client.post("/join/new-link", data={"csrf_token": token, "email": "not an address"})
    assert response.status_code == 422 and "not a valid email address" in text(response)


def test_the_link_mail_is_sensitive_in_the_console(client, tree, smtp_mail, app):
    """Its body is never shown to staff and is erased once sent (docs/mail.md)."""
    from app.models import MailMessage

    joined(client, tree, smtp_mail, app)
    db.session.expire_all()
    row = db.session.scalar(select(MailMessage).where(MailMessage.kind == "portal.verify-email"))
    assert row.sensitive and row.status == "sent" and "/join/verify/" not in (row.body_text or "")

"""The profile page: all the member's data, contact details, the photo, and a new email confirmed by mail.

The email change goes through a real SMTP server (tests/mailserver.py): the
link in the message that arrived is the one followed.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta

from PIL import Image
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditEntry, MailMessage, OneTimeLink
from app.models.base import utcnow
from tests.conftest import csrf_token_from, login
from tests.portal.conftest import OTHER_EMAIL, post, text


def _png(color: str = "red", size=(50, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def _contact(portal, **fields):
    data = {"phone": "0977123456", "email": "chanda.m@example.org", "address": "", **fields}
    return post(portal, "/profile/contact", data)


def test_profile_shows_all_the_members_data(portal, member):
    member.national_id = "123456/10/1"
    member.address = "Plot 1, Kasama"
    db.session.commit()
    page = text(portal.get("/profile"))
    for value in ("Chanda", "Mwansa", member.membership_number, "123456/10/1", "+260977123456",
                  "chanda.m@example.org", "Plot 1, Kasama", "Lukashya Ward 1 (W1)", "Download my data",
                  "Ask to delete my account"):
        assert value in page, value
    assert 'id="nav-profile"' in page and 'aria-current="page" href="/profile"' in page
    assert 'id="profile-no-photo"' in page


def test_contact_details_change_at_once_and_are_audited(portal, member):
    response = _contact(portal, phone="0966 111 222", address="Plot 9, Kasama")
    assert response.status_code == 302 and response.headers["Location"].endswith("/profile")
    page = text(portal.get("/profile"))
    assert "Your contact details are saved." in page and "+260966111222" in page and "Plot 9, Kasama" in page
    db.session.expire_all()
    assert member.phone == "+260966111222"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "member.update")
                               .order_by(AuditEntry.id.desc())).first()
    assert set(entry.changes) == {"phone", "address"}


def test_every_bad_contact_field_is_shown_at_once(portal, member):
    response = _contact(portal, phone="12", email="not-an-email", address="x" * 501)
    assert response.status_code == 422
    page = text(response)
    assert page.count("invalid-feedback") == 3
    assert "not a phone number" in page or "not a valid phone number" in page
    assert "not a valid email address" in page and "too long" in page
    db.session.expire_all()
    assert member.phone == "+260977123456"


def test_a_duplicate_phone_is_refused_without_naming_the_holder(portal, other):
    response = _contact(portal, phone="0966555444")
    assert response.status_code == 409
    page = text(response)
    assert "already exists" in page and "Bwalya" not in page and "Phiri" not in page


def test_no_csrf_token_no_change(portal, member):
    response = post(portal, "/profile/contact", {"phone": "0966111222", "email": "", "address": ""}, token=False)
    assert response.status_code == 400
    db.session.expire_all()
    assert member.phone == "+260977123456"


def test_photo_upload_uses_the_consoles_checks(portal, member):
    bad = post(portal, "/profile/photo", {"photo": (io.BytesIO(b"GIF89a not really"), "me.png")})
    assert bad.status_code == 422 and "must be a JPEG or PNG image" in text(bad)
    empty = post(portal, "/profile/photo", {})
    assert empty.status_code == 422 and "empty" in text(empty)
    good = post(portal, "/profile/photo", {"photo": (io.BytesIO(_png()), "me.png")})
    assert good.status_code == 302
    page = text(portal.get("/profile"))
    assert "Your new photo is saved." in page and 'src="data:image/jpeg;base64,' in page
    db.session.expire_all()
    assert member.photo is not None and member.photo.content_type == "image/jpeg"  # re-encoded
    removed = post(portal, "/profile/photo", {"remove": "1"})
    assert removed.status_code == 302
    assert 'id="profile-no-photo"' in text(portal.get("/profile"))


# --- email change, through a real SMTP server ----------------------------------------------------


def _link_from(message) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"http://[^\s]+/profile/email/confirm/[^\s]+", body)
    assert match, body
    return match.group(0).split("localhost", 1)[-1].split("127.0.0.1:5000", 1)[-1]


def test_a_new_email_changes_only_once_the_mailed_link_is_followed(app, portal, member, smtp_mail, client):
    response = _contact(portal, email="Chanda.New@Example.org")
    assert response.status_code == 302
    page = text(portal.get("/profile"))
    assert "We sent a link to chanda.new@example.org" in page
    assert "chanda.new@example.org: pending confirmation" in page
    db.session.expire_all()
    assert member.email == "chanda.m@example.org"  # not yet
    message = smtp_mail.wait_for(1)[0]
    assert message["To"] == "chanda.new@example.org" and message["Subject"] == "Confirm your new email address"
    path = _link_from(message)
    # GET only shows what the link confirms (a mail scanner fetching it changes nothing).
    shown = portal.get(path)
    assert shown.status_code == 200 and "chanda.new@example.org" in text(shown)
    db.session.expire_all()
    assert member.email == "chanda.m@example.org"
    done = portal.post(path, data={"csrf_token": csrf_token_from(text(shown))})
    assert done.status_code == 302
    db.session.expire_all()
    assert member.email == "chanda.new@example.org" and member.email_verified_at is not None
    page = text(portal.get("/profile"))
    assert "Your email address is now chanda.new@example.org." in page and "pending confirmation" not in page
    # Used once: the same link again says so.
    again = portal.get(path)
    assert again.status_code == 410 and "used already" in text(again)
    # The mail in the outbox holds a one-time link: the console never shows it.
    row = db.session.scalar(select(MailMessage).where(MailMessage.kind == "profile.email-change"))
    assert row.sensitive


def test_the_link_works_without_signing_in(app, portal, member, smtp_mail):
    _contact(portal, email="chanda.other@example.org")
    path = _link_from(smtp_mail.wait_for(1)[0])
    anonymous = app.test_client()
    shown = anonymous.get(path)
    assert shown.status_code == 200
    assert anonymous.post(path, data={"csrf_token": csrf_token_from(text(shown))}).status_code == 302
    db.session.expire_all()
    assert member.email == "chanda.other@example.org"


def test_a_newer_request_replaces_the_older_link_and_bad_links_say_why(portal, member, smtp_mail):
    _contact(portal, email="first@example.org")
    _contact(portal, email="second@example.org")
    first, second = (_link_from(m) for m in smtp_mail.wait_for(2))
    assert "newer link" in text(portal.get(first))
    assert portal.get(first).status_code == 410
    assert "second@example.org: pending confirmation" in text(portal.get("/profile"))
    tampered = portal.get(second[:-3] + "xyz")
    assert tampered.status_code == 400 and "not valid" in text(tampered)
    db.session.execute(update(OneTimeLink).values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    expired = portal.get(second)
    assert expired.status_code == 410 and "expired" in text(expired)
    assert "pending confirmation" not in text(portal.get("/profile"))  # an expired link is no pending change


def test_an_address_taken_meanwhile_is_refused_without_naming_the_holder(portal, member, other, smtp_mail):
    _contact(portal, email="shared@example.org")
    path = _link_from(smtp_mail.wait_for(1)[0])
    other.email = "shared@example.org"
    db.session.commit()
    shown = portal.get(path)
    response = portal.post(path, data={"csrf_token": csrf_token_from(text(shown))})
    assert response.status_code == 409
    assert "already used by another member" in text(response) and "Bwalya" not in text(response)
    db.session.expire_all()
    assert member.email == "chanda.m@example.org"


def test_a_duplicate_email_is_refused_before_any_mail(portal, other):
    response = _contact(portal, email="BWALYA.P@example.org")
    assert response.status_code == 409
    assert db.session.scalar(select(MailMessage).where(MailMessage.kind == "profile.email-change")) is None


def test_the_api_and_the_portal_share_the_rule(portal, member, client):
    """PATCH /api/v1/me with a new email: the same pending state the profile page shows."""
    token = client.post("/api/v1/auth/token", json={"email": "chanda@test.org", "password": "correct-horse-battery"})
    body = client.patch("/api/v1/me", json={"email": "api.new@example.org"},
                        headers={"Authorization": f"Bearer {token.get_json()['token']}"}).get_json()
    assert body["email"] == "chanda.m@example.org" and body["pending_email"] == "api.new@example.org"
    assert "api.new@example.org: pending confirmation" in text(portal.get("/profile"))


def test_staff_without_a_member_record_get_404(client, staff):
    login(client, "admin@test.org")
    for path in ("/profile", "/profile/data", "/profile/delete"):
        assert client.get(path).status_code == 404
    assert post(client, "/profile/contact", {"phone": "0977000111"}).status_code == 404


def test_anonymous_goes_to_sign_in(client):
    for path in ("/profile", "/profile/data", "/profile/delete"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_another_member_sees_only_their_own_profile(client, member, other):
    login(client, OTHER_EMAIL)
    page = text(client.get("/profile"))
    assert "Bwalya" in page and "Chanda" not in page and member.membership_number not in page

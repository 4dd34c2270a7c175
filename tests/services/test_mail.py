"""Outgoing mail through a real SMTP server (aiosmtpd): rendering, headers, the outbox row, idempotency.

The queue is in immediate mode here (TestConfig): committing the caller's
transaction delivers at once, through the same task a worker runs.
tests/services/test_mail_delivery.py covers retries, failures and a real consumer.
"""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from app.config import EML_BACKEND
from app.extensions import db
from app.models import MailMessage
from app.services import mail


def _commit() -> None:
    db.session.commit()
    db.session.expire_all()


def test_a_test_email_arrives_as_multipart_text_and_html_with_its_headers(app, smtp_mail):
    message = mail.send_test(None, "Ada.Banda@Example.org")
    assert message.status == "queued"
    _commit()

    [received] = smtp_mail.wait_for(1)
    assert smtp_mail.envelopes == [("no-reply@muster.test", ["Ada.Banda@example.org"])]
    assert received["To"] == "Ada.Banda@example.org"
    [sender] = received["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Muster Test", "no-reply@muster.test")
    assert received["Subject"] == f"Test email from {app.config['ORG_NAME']}"
    assert received["Message-ID"] == message.message_id and message.message_id.startswith("<")
    assert received["Date"]
    assert received["Auto-Submitted"] == "auto-generated"
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    assert "This is a test email from Muster" in text
    assert "This is a test email from Muster" in html and "<strong>" + app.config["ORG_NAME"] in html
    # Links are absolute, on the public URL.
    assert f"{app.config['PUBLIC_URL']}/admin/mail/" in text
    assert f'href="{app.config["PUBLIC_URL"]}/admin/mail/"' in html

    row = db.session.get(MailMessage, message.id)
    assert (row.status, row.attempts, row.reason, row.claimed_by) == ("sent", 1, "", None)
    assert row.sent_at is not None
    assert row.kind == "test" and row.queued_by is None


def test_the_same_idempotency_key_sends_one_mail(app, smtp_mail, tree, make_member):
    member = make_member(tree["w1"], email="ada@example.org")
    first = mail.send_mail("test", None, {"sent_at": "today"}, key=f"welcome:{member.id}", member=member)
    second = mail.send_mail("test", None, {"sent_at": "today"}, key=f"welcome:{member.id}", member=member)
    assert second is first
    _commit()
    again = mail.send_mail("test", None, {"sent_at": "later"}, key=f"welcome:{member.id}", member=member)
    _commit()

    assert again.id == first.id and again.status == "sent"
    assert len(smtp_mail.wait_for(1)) == 1
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 1
    assert db.session.get(MailMessage, first.id).to_address == "ada@example.org"  # the member's address


def test_delivering_the_same_message_twice_sends_it_once(app, smtp_mail):
    from app.tasks.mail import deliver_mail

    message = mail.send_test(None, "ada@example.org")
    _commit()
    deliver_mail(message.id)  # a duplicate enqueue, after it was sent
    assert deliver_mail.call_local(message.id) == "skipped"
    assert len(smtp_mail.wait_for(1)) == 1


def test_a_claimed_message_is_not_claimed_again(app):
    from app.services.mail import delivery

    message = mail.send_mail("test", "ada@example.org", {"sent_at": "now"})
    db.session.flush()
    assert delivery.claim(message.id, "worker-a") is message
    assert delivery.claim(message.id, "worker-b") is None  # the second worker does nothing
    assert message.claimed_by == "worker-a"


def test_no_address_or_a_bad_one_is_suppressed_with_the_reason(app, smtp_mail, tree, make_member):
    member = make_member(tree["w1"])  # no email
    none = mail.send_mail("test", None, {"sent_at": "now"}, member=member)
    bad = mail.send_mail("test", "not-an-address", {"sent_at": "now"})
    injected = mail.send_mail("test", "a@example.org\r\nBcc: b@example.org", {"sent_at": "now"})
    _commit()
    assert (none.status, none.reason) == ("suppressed", "No email address.")
    assert bad.status == "suppressed" and bad.reason.startswith("Not a valid email address")
    assert injected.status == "suppressed"
    assert smtp_mail.messages == []


def test_a_rolled_back_transaction_sends_nothing(app, smtp_mail):
    mail.send_test(None, "ada@example.org")
    db.session.rollback()
    db.session.commit()
    assert smtp_mail.messages == []
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 0


def test_a_savepoint_rolled_back_drops_its_mail_only(app, smtp_mail):
    kept = mail.send_mail("test", "kept@example.org", {"sent_at": "now"})
    with pytest.raises(RuntimeError):
        with db.session.begin_nested():
            mail.send_mail("test", "dropped@example.org", {"sent_at": "now"})
            raise RuntimeError("a later step failed")
    _commit()
    [received] = smtp_mail.wait_for(1)
    assert received["To"] == "kept@example.org"
    assert db.session.get(MailMessage, kept.id).status == "sent"


def test_names_are_escaped_in_html_and_kept_in_text(app, tree, make_member):
    member = make_member(tree["w1"], first_name="<b>Ada</b>", email="ada@example.org")
    message = mail.send_mail("test", None, {"sent_by": member.first_name, "sent_at": "now"}, member=member)
    assert "by <b>Ada</b> on" in message.body_text
    assert "by &lt;b&gt;Ada&lt;/b&gt; on" in message.body_html


def test_links_use_the_public_url_even_inside_a_request_for_another_host(app):
    with app.test_request_context("/", base_url="http://attacker.example"):
        message = mail.send_mail("test", "ada@example.org", {"sent_at": "now"})
    assert "attacker.example" not in message.body_text + message.body_html
    assert mail.link_to("mail.index") == app.config["PUBLIC_URL"] + "/admin/mail/"


def test_an_unknown_kind_is_a_programming_error(app):
    with pytest.raises(ValueError, match="templates/email/no-such-kind.txt"):
        mail.send_mail("no-such-kind", "ada@example.org", {})
    with pytest.raises(ValueError):
        mail.send_mail("../base", "ada@example.org", {})


def test_sensitive_mail_is_erased_once_sent(app, smtp_mail):
    message = mail.send_mail("test", "ada@example.org", {"sent_at": "now"}, sensitive=True)
    _commit()
    [received] = smtp_mail.wait_for(1)
    assert "This is a test email" in received.get_body(("plain",)).get_content()
    row = db.session.get(MailMessage, message.id)
    assert row.status == "sent" and row.body_text == "" and row.body_html == ""


def test_the_file_backend_writes_one_eml_per_message(app, tmp_path, monkeypatch):
    state = app.extensions["mailman"]
    monkeypatch.setattr(state, "backend", EML_BACKEND)
    monkeypatch.setattr(state, "file_path", str(tmp_path / "mail"))
    first = mail.send_test(None, "ada@example.org")
    mail.send_test(None, "bob@example.org")
    _commit()

    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2 and not list((tmp_path / "mail").glob("*.part"))
    parsed = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert sorted(p["To"] for p in parsed) == ["ada@example.org", "bob@example.org"]
    ada = next(p for p in parsed if p["To"] == "ada@example.org")
    assert ada["Message-ID"] == first.message_id
    assert "This is a test email from Muster" in ada.get_body(("plain",)).get_content()
    assert db.session.get(MailMessage, first.id).status == "sent"


def test_without_mail_server_the_config_picks_the_eml_backend(monkeypatch, tmp_path):
    from app.config import Config

    monkeypatch.delenv("MAIL_SERVER", raising=False)
    monkeypatch.delenv("MAIL_BACKEND", raising=False)
    monkeypatch.setenv("MUSTER_MAIL_DIR", str(tmp_path / "outbox"))
    config = Config()
    assert config.MAIL_BACKEND == EML_BACKEND and config.MAIL_FILE_PATH == str(tmp_path / "outbox")
    monkeypatch.setenv("MAIL_SERVER", "smtp.example.org")
    assert Config().MAIL_BACKEND == "smtp"
    monkeypatch.setenv("MAIL_BACKEND", "file")
    assert Config().MAIL_BACKEND == EML_BACKEND


def test_a_key_recorded_by_another_transaction_meanwhile_wins(app, smtp_mail, monkeypatch):
    """Two senders look for the key at once and both miss it: the unique key lets one row through."""
    from app.services.mail import outbox

    first = mail.send_mail("test", "ada@example.org", {"sent_at": "now"}, key="reminder:7")
    db.session.flush()
    real, looks = outbox._by_key, []

    def look(key):  # the second sender's first look happened before the first one's insert
        looks.append(key)
        return None if len(looks) == 1 else real(key)

    monkeypatch.setattr(outbox, "_by_key", look)
    second = mail.send_mail("test", "ada@example.org", {"sent_at": "now"}, key="reminder:7")
    assert second is first and len(looks) == 2  # missed, inserted, refused by the key, looked again
    _commit()
    assert len(smtp_mail.wait_for(1)) == 1
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 1

"""`flask mail send-test ADDRESS` against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import MailMessage


def test_send_test_reaches_the_smtp_server_and_says_so(app, runner, smtp_mail):
    result = runner.invoke(args=["mail", "send-test", "ada@example.org"])
    assert result.exit_code == 0, result.output
    assert f"Test email sent to ada@example.org through the SMTP server 127.0.0.1:{smtp_mail.port}" in result.output
    [received] = smtp_mail.wait_for(1)
    assert received["To"] == "ada@example.org"
    assert "This is a test email from Muster" in received.get_body(("plain",)).get_content()
    row = db.session.scalar(select(MailMessage).where(MailMessage.to_address == "ada@example.org"))
    assert row.status == "sent" and row.queued_by_id is None


def test_send_test_reports_a_refusal(app, runner, smtp_mail):
    smtp_mail.refuse_rcpt("550 5.7.1 Relaying denied")
    result = runner.invoke(args=["mail", "send-test", "ada@example.org"])
    assert result.exit_code == 1
    assert "Test email to ada@example.org failed: The server refused the recipient: 550 5.7.1 Relaying denied" \
        in result.output


def test_send_test_reports_a_passing_failure_as_still_queued(app, runner, smtp_mail):
    smtp_mail.refuse_data("451 4.3.0 Try later")
    result = runner.invoke(args=["mail", "send-test", "ada@example.org"])
    assert result.exit_code == 1
    assert "Not sent yet" in result.output and "451 4.3.0 Try later" in result.output
    assert "`flask worker` keeps trying" in result.output


def test_send_test_refuses_a_bad_address(app, runner):
    result = runner.invoke(args=["mail", "send-test", "not-an-address"])
    assert result.exit_code == 1 and "Not a valid email address" in result.output
    assert db.session.scalar(select(MailMessage)) is None

"""`flask mail ...`: outgoing mail from a shell.

- ``flask mail send-test ADDRESS``: send the test email now and say what the
  mail server answered (the check to run after setting MAIL_SERVER);
  ``--queue`` leaves it to a worker instead, which tests the whole path.
"""

from __future__ import annotations

import time

import click
from flask import Flask
from flask.cli import AppGroup

from app.extensions import db
from app.models import MailMessage
from app.services import mail
from app.services.errors import AccessDenied, ServiceError

group = AppGroup("mail", help="Outgoing mail: test the mail server.")


@group.command("send-test")
@click.argument("address")
@click.option("--queue", "through_queue", is_flag=True,
              help="Only queue it (a running `flask worker` sends it) instead of sending it from here.")
@click.option("--wait", default=30, show_default=True, help="Seconds to wait for a worker's answer.")
def send_test_command(address: str, through_queue: bool, wait: int) -> None:
    """Send the test email to ADDRESS and report the outcome."""
    from app.tasks.mail import deliver

    try:
        message = mail.send_test(None, address)
    except (ServiceError, AccessDenied) as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()  # delivery is enqueued now (immediate mode: done now)
    message_id = message.id
    if not through_queue:
        deliver(message_id)  # a no-op when a worker (or immediate mode) already has it
    message = _settled(message_id, wait)
    where = mail.backend_label()
    if message.status == "sent":
        click.echo(f"Test email sent to {message.to_address} through {where} (message {message.id}).")
        return
    if message.status == "queued":
        raise click.ClickException(
            f"Not sent yet (message {message.id}): {message.reason or 'waiting for a worker'}. It stays queued; "
            "`flask worker` keeps trying.")
    raise click.ClickException(f"Test email to {message.to_address} {message.status}: {message.reason}")


def _settled(message_id: int, wait: float) -> MailMessage:
    """The message once it is no longer held by a worker mid-send (or after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        db.session.expire_all()
        message = db.session.get(MailMessage, message_id)
        busy = message.status == "queued" and (message.claimed_by is not None or not message.attempts)
        if not busy or time.monotonic() > deadline:
            return message
        time.sleep(0.2)


def register(app: Flask) -> None:
    app.cli.add_command(group)

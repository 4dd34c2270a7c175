"""A real SMTP server (aiosmtpd) on 127.0.0.1 for mail tests, and the fixtures that point Muster at it.

``smtp_server`` records every message it accepts (parsed, with the
envelope) and can be told to answer the next commands otherwise:
``refuse_data("421 ...", "451 ...")`` refuses the next DATA commands in
turn, ``refuse_rcpt("550 ...")`` the next recipients. ``smtp_mail``
switches the app's Flask-Mailman from the in-memory backend to SMTP at that
server for one test.

tests/conftest.py loads this module as a plugin, so every test can ask for the fixtures.
"""

from __future__ import annotations

import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """The aiosmtpd handler: accepts and records, or answers with scripted refusals."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._data_replies: list[str] = []
        self._rcpt_replies: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()

    def refuse_data(self, *replies: str) -> None:
        with self._lock:
            self._data_replies.extend(replies)

    def refuse_rcpt(self, *replies: str) -> None:
        with self._lock:
            self._rcpt_replies.extend(replies)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            reply = self._rcpt_replies.pop(0) if self._rcpt_replies else None
        if reply:
            self.refused += 1
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            reply = self._data_replies.pop(0) if self._data_replies else None
            if reply:
                self.refused += 1
                return reply
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 20) -> list[EmailMessage]:
        """The accepted messages once there are ``count`` of them (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"expected {count} messages, the server has {len(self.messages)}"
            time.sleep(0.05)
        return list(self.messages)


class SMTPServer:
    def __init__(self) -> None:
        self.handler = Recorder()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __getattr__(self, name):
        return getattr(self.handler, name)


@pytest.fixture()
def smtp_server():
    server = SMTPServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


def point_mail_at(app, monkeypatch, port: int, host: str = "127.0.0.1") -> None:
    """Send through SMTP at host:port for this test (Flask-Mailman keeps its settings in its state)."""
    state = app.extensions["mailman"]
    monkeypatch.setattr(state, "backend", "smtp")
    monkeypatch.setattr(state, "server", host)
    monkeypatch.setattr(state, "port", port)
    monkeypatch.setattr(state, "timeout", 10)


@pytest.fixture()
def smtp_mail(app, smtp_server, monkeypatch):
    """The app's mail goes to ``smtp_server`` for this test; yields the server."""
    point_mail_at(app, monkeypatch, smtp_server.port)
    return smtp_server

"""A Flask-Mailman backend that writes each message as one .eml file (the default without MAIL_SERVER).

Flask-Mailman's own ``file`` backend appends every message of a connection
to one .log file; one .eml per message opens in any mail program and is
what the README tells a newcomer to look at. The file appears whole or not
at all (written aside, then renamed), so nothing reads half a message.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

from flask_mailman.backends.base import BaseEmailBackend


class EmailBackend(BaseEmailBackend):
    """Writes ``<MAIL_FILE_PATH>/<UTC time>-<random>.eml``; ``file_path`` overrides the directory."""

    def __init__(self, *args, file_path: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.directory = Path(file_path or self.mailman.file_path or "mail")

    def send_messages(self, email_messages) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            data = message.message().as_bytes(linesep="\r\n")
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            label = re.sub(r"[^A-Za-z0-9_.-]+", "-", (message.extra_headers.get("X-Muster-Kind") or "mail"))[:40]
            target = self.directory / f"{stamp}-{label}-{secrets.token_hex(4)}.eml"
            partial = target.with_suffix(".eml.part")
            with open(partial, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
            sent += 1
        return sent

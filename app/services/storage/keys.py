"""Storage keys: relative paths that Muster builds itself, checked before any backend sees them.

A key is one or more parts joined by ``/`` (``members/12/photo-3f…9a.jpg``,
``jobs/7/errors.csv``). Each part holds letters, digits, ``.``, ``_`` and
``-`` only and never starts with a dot, so no key can climb out of the
storage root (``..``), name an absolute path (``/etc``, ``C:``), hide a file
(``.env``), or smuggle a backslash, NUL or control character into a file
system or an S3 request. The check is a whitelist: what Muster never builds
is refused, whatever the backend would make of it.
"""

from __future__ import annotations

import re

from app.services.errors import ServiceError

_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")
MAX_KEY_LENGTH = 900  # S3 allows 1,024 bytes; a prefix comes on top
MAX_PART_LENGTH = 200


class InvalidKey(ServiceError):
    """A storage key Muster would never build: refused before any backend is asked."""

    def __init__(self, key: object, reason: str) -> None:
        shown = repr(key)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"Refused storage key {shown}: {reason}.", status=400)
        self.key = key
        self.reason = reason


def check_key(key: object) -> str:
    """``key`` when it is a safe relative storage key, else ``InvalidKey`` saying why."""
    if not isinstance(key, str):
        raise InvalidKey(key, "a key is text")
    if not key:
        raise InvalidKey(key, "the key is empty")
    if "\x00" in key:
        raise InvalidKey(key, "it contains a NUL byte")
    if "\\" in key:
        raise InvalidKey(key, "it contains a backslash")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidKey(key, "it contains a control character")
    if key.startswith("/") or re.match(r"[A-Za-z]:", key):
        raise InvalidKey(key, "it is an absolute path")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(key, f"it is longer than {MAX_KEY_LENGTH} characters")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(key, "it has an empty, '.' or '..' part")
        if len(part) > MAX_PART_LENGTH:
            raise InvalidKey(key, f"a part is longer than {MAX_PART_LENGTH} characters")
        if not _PART.match(part):
            raise InvalidKey(key, "only letters, digits, '.', '_' and '-' may be used, and no part may "
                                  "start with '.'")
    return key


def safe_name(name: str, default: str = "file") -> str:
    """A file name made fit to be the last part of a key (a job's report name, say)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._")[:MAX_PART_LENGTH]
    return cleaned or default

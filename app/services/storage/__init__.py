"""Shared file storage: member photos, event attachments, import uploads and job files.

One interface, two backends, chosen by configuration in ``build_storage``
and nowhere else:

- unset ``MUSTER_STORAGE_URL`` (or ``file:///some/folder``): a folder on this
  machine, by default ``instance/files/`` (``local.LocalStorage``);
- ``MUSTER_STORAGE_URL=s3://bucket/prefix``: S3-compatible object storage
  through boto3 (``s3.S3Storage``), with AWS_* and MUSTER_S3_ENDPOINT_URL.

Usage::

    stored = storage.save(f"jobs/{job.id}/errors.csv", fileobj_or_path)   # streamed
    storage.discard_on_rollback(stored.key)      # no orphan if the row is not committed
    with storage.open(key) as stream: ...         # .read(n), chunks, .size
    storage.delete_after_commit(old_key)          # the row no longer needs it

Keys are relative paths Muster builds itself (``keys.check_key``); anything
else (``..``, absolute paths, backslashes, NUL) is refused with
``InvalidKey`` before a backend is asked. Downloads stream through
``app.downloads.send_stream`` after the view's access check: no public
bucket URLs, no redirects to signed URLs.

``scratch_dir()`` is a folder on this machine for work files (an upload
being checked, a report being written, a PDF being drawn); they are moved
into storage when finished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app

from app.services.storage.base import (
    Source,
    Storage,
    StorageUnavailable,
    Stored,
    StoredFileMissing,
    StoredStream,
)
from app.services.storage.keys import InvalidKey, check_key, safe_name
from app.transaction_outcome import on_commit, on_rollback

__all__ = [
    "InvalidKey", "Storage", "StorageUnavailable", "Stored", "StoredFileMissing", "StoredStream", "backend",
    "build_storage", "check_key", "delete", "delete_after_commit", "discard_on_rollback", "exists",
    "init_storage", "local_copy", "open", "safe_name", "save", "scratch_dir", "size",
]

log = logging.getLogger(__name__)

EXTENSION = "muster_storage"


def build_storage(config: Mapping[str, Any], instance_path: str | os.PathLike) -> Storage:
    """The backend ``config`` asks for (STORAGE_URL, S3_ENDPOINT_URL, S3_REGION); the only place that knows."""
    scratch = Path(config.get("STORAGE_SCRATCH_DIR") or Path(instance_path) / "tmp")
    url = (config.get("STORAGE_URL") or "").strip()
    if not url:
        from app.services.storage.local import LocalStorage

        return LocalStorage(Path(instance_path) / "files", scratch)
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValueError("MUSTER_STORAGE_URL must not hold credentials: set AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY (or use the machine's role) instead.")
    if parts.scheme == "file":
        from app.services.storage.local import LocalStorage

        folder = unquote(parts.path)
        if parts.netloc or not os.path.isabs(folder):
            raise ValueError(f"MUSTER_STORAGE_URL={url!r}: a folder is written file:///absolute/path.")
        return LocalStorage(folder, scratch)
    if parts.scheme == "s3":
        from app.services.storage.s3 import S3Storage

        if not parts.netloc:
            raise ValueError(f"MUSTER_STORAGE_URL={url!r} names no bucket (s3://bucket/prefix).")
        prefix = parts.path.strip("/")
        if prefix:
            check_key(prefix)
        return S3Storage(parts.netloc, prefix, scratch=scratch, endpoint_url=config.get("S3_ENDPOINT_URL") or None,
                         region=config.get("S3_REGION") or None)
    raise ValueError(f"MUSTER_STORAGE_URL={url!r}: use file:///path/to/folder or s3://bucket/prefix.")


def init_storage(app: Flask) -> None:
    """Build the app's backend at start-up, so a mistyped setting fails at once (no network is used)."""
    app.extensions[EXTENSION] = build_storage(app.config, app.instance_path)


def backend() -> Storage:
    """The current app's backend."""
    app = current_app._get_current_object()
    found = app.extensions.get(EXTENSION)
    if found is None:
        found = app.extensions[EXTENSION] = build_storage(app.config, app.instance_path)
    return found


def save(key: str, source: Source, *, move: bool = False, content_type: str | None = None) -> Stored:
    """Store a file object (read to its end, in chunks) or a file on disk (``move``: it is used up) under ``key``."""
    return backend().save(check_key(key), source, move=move, content_type=content_type)


def open(key: str) -> StoredStream:
    """The stored object as a stream with its ``size``; ``StoredFileMissing`` (a 404) when there is none."""
    return backend().open(check_key(key))


def size(key: str) -> int:
    return backend().size(check_key(key))


def exists(key: str) -> bool:
    return backend().exists(check_key(key))


def delete(key: str) -> None:
    """Delete at once (nothing happens when missing). Services mostly want ``delete_after_commit``."""
    backend().delete(check_key(key))


def local_copy(key: str) -> AbstractContextManager[Path]:
    """A readable file on this machine holding the object, for the ``with`` block (downloaded if need be)."""
    return backend().local_copy(check_key(key))


def delete_after_commit(key: str | None) -> None:
    """Delete the object once the current transaction commits (kept if it rolls back)."""
    if key:
        store, key = backend(), check_key(key)
        on_commit(lambda: _delete_quietly(store, key))


def discard_on_rollback(key: str) -> None:
    """Delete the just-stored object if the current transaction does not commit."""
    store, key = backend(), check_key(key)
    on_rollback(lambda: _delete_quietly(store, key))


def _delete_quietly(store: Storage, key: str) -> None:
    """Settle a request above; a failure is logged (an orphaned object beats a commit that seems to fail)."""
    try:
        store.delete(key)
    except Exception:  # noqa: BLE001
        log.exception("could not delete stored object %s", key)


def scratch_dir(*parts: str) -> Path:
    """A folder on this machine for work files on their way into storage (created if need be)."""
    path = backend().scratch.joinpath(*(check_key(p) for p in parts))
    path.mkdir(parents=True, exist_ok=True)
    return path

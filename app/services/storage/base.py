"""What every storage backend offers, and the small types they share.

A backend stores objects under keys (``keys.check_key``) and never holds one
whole in memory: ``save`` copies from a file object or a path in chunks,
``open`` returns a stream to read in chunks (with the object's size, so a
download can send Content-Length without asking twice).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from werkzeug.exceptions import NotFound

from app.services.errors import ServiceError

CHUNK = 256 * 1024
Source = BinaryIO | str | os.PathLike


@dataclass(frozen=True)
class Stored:
    """What ``save`` stored: the key, its size in bytes and the SHA-256 of its content (hex)."""

    key: str
    size: int
    sha256: str


class StoredFileMissing(NotFound):
    """The record exists but its object is not in storage (deleted, or never moved in).

    A 404 like any other: the console renders its error page and the API its
    JSON error, without code of their own.
    """

    description = "The file is missing from storage."

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class StorageUnavailable(ServiceError):
    """The storage backend did not answer or refused (network, credentials, missing bucket)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"The file storage is not available: {message}", status=503)


class StoredStream:
    """An object being read: ``read(n)``, iteration in chunks, ``close``, and its ``size``."""

    def __init__(self, raw, size: int) -> None:
        self._raw = raw
        self.size = size

    def read(self, n: int | None = -1) -> bytes:
        return self._raw.read() if n is None or n < 0 else self._raw.read(n)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> StoredStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalStream(StoredStream):
    """A stream over a local file: it also has ``fileno`` (gunicorn can then use sendfile)."""

    def fileno(self) -> int:
        return self._raw.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


class HashingReader:
    """Reads through to ``fh`` counting bytes and hashing them; deliberately not seekable.

    (Not seekable so that an S3 upload reads it once, front to back, and the
    hash is the hash of what was sent.)
    """

    def __init__(self, fh) -> None:
        self._fh = fh
        self.size = 0
        self._sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.size += len(data)
        self._sha.update(data)
        return data

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def is_path(source: Source) -> bool:
    return isinstance(source, (str, os.PathLike))


class Storage(ABC):
    """One storage backend. Keys are checked by the callers in ``app.services.storage``."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = Path(scratch)

    @abstractmethod
    def save(self, key: str, source: Source, *, move: bool = False, content_type: str | None = None) -> Stored:
        """Store ``source`` (a file object read to its end, or a path) under ``key``, replacing any object.

        ``move``: ``source`` is a path whose file is no longer needed (moved or
        deleted once stored).
        """

    @abstractmethod
    def open(self, key: str) -> StoredStream:
        """The object as a stream (``StoredFileMissing`` when there is none)."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes (``StoredFileMissing`` when there is none)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; nothing happens when there is none."""

    @abstractmethod
    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A path on this machine holding the object, for readers that need a real file (openpyxl).

        Read only; valid inside the ``with`` block.
        """

    @abstractmethod
    def describe(self) -> str:
        """Where objects go, in words (for ``flask storage info`` and logs); never a secret."""

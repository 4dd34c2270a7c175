"""The default backend: a directory on this machine (instance/files/ unless configured).

Writes go to a temporary file beside the target and are renamed into place
(after fsync), so a reader never sees half a file and a crash never leaves
one under a real key. A file moved in from the scratch folder is renamed
when both are on one file system (the usual case: both under instance/),
copied otherwise.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.services.storage.base import (
    CHUNK,
    HashingReader,
    LocalStream,
    Source,
    Storage,
    Stored,
    StoredFileMissing,
    file_sha256,
    is_path,
)
from app.services.storage.keys import InvalidKey


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike, scratch: str | os.PathLike) -> None:
        super().__init__(Path(scratch))
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys are checked already; this guards against a symlink planted inside the root.
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKey(key, "it leads outside the storage folder")
        return path

    def save(self, key: str, source: Source, *, move: bool = False, content_type: str | None = None) -> Stored:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if is_path(source) and move:
            try:
                os.replace(source, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
            else:
                return Stored(key, target.stat().st_size, file_sha256(target))
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            with open(temp, "wb") as out:
                if is_path(source):
                    with open(source, "rb") as fh:
                        reader = HashingReader(fh)
                        shutil.copyfileobj(reader, out, CHUNK)
                else:
                    reader = HashingReader(source)
                    shutil.copyfileobj(reader, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if is_path(source) and move:
            os.unlink(source)
        return Stored(key, reader.size, reader.sha256)

    def open(self, key: str) -> LocalStream:
        try:
            fh = open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise StoredFileMissing(key) from None
        return LocalStream(fh, os.fstat(fh.fileno()).st_size)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise StoredFileMissing(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Tidy the folders the key made (members/12/, jobs/7/), never the root itself.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise StoredFileMissing(key)
        yield path

    def describe(self) -> str:
        return f"local folder {self.root}"

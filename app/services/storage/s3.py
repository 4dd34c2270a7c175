"""S3-compatible object storage through boto3 (``MUSTER_STORAGE_URL=s3://bucket/prefix``).

Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY in the environment, a profile, or the machine's role),
the region from AWS_DEFAULT_REGION, and ``MUSTER_S3_ENDPOINT_URL`` points at
another S3-compatible service (MinIO, Ceph, R2, moto in the tests); with an
endpoint, path-style addressing is used, which they all understand.

Nothing here makes an object public or signs a URL: every byte is read by
Muster, after its own access check, and streamed to the person.

Uploads from a file object go through boto3's managed transfer, which reads
the source once, front to back, a part at a time (at most
``_TRANSFER.max_in_memory_upload_chunks`` parts of 8 MB in memory); a file
on disk is uploaded from the disk in parts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.services.storage.base import (
    HashingReader,
    Source,
    Storage,
    StorageUnavailable,
    Stored,
    StoredFileMissing,
    StoredStream,
    file_sha256,
    is_path,
)

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    mb = 1024 * 1024
    config = TransferConfig(multipart_threshold=8 * mb, multipart_chunksize=8 * mb, max_concurrency=4,
                            max_io_queue=32)
    config.max_in_memory_upload_chunks = 4  # s3transfer's setting; boto3's constructor does not take it
    return config


def make_client(endpoint_url: str | None, region: str | None):
    """A boto3 S3 client (thread-safe; one per app)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region or None,
        s3={"addressing_style": "path"} if endpoint_url else {},
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=10, read_timeout=60,
        # Checksums only where S3 requires them: several S3-compatible services refuse the newer defaults.
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str, *, scratch: str | os.PathLike, endpoint_url: str | None = None,
                 region: str | None = None, client=None) -> None:
        super().__init__(Path(scratch))
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.client = client or make_client(endpoint_url, region)
        self._transfer = _transfer_config()

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, key: str, fn, *args, **kwargs):
        """One S3 call; a missing object is ``StoredFileMissing``, any other failure ``StorageUnavailable``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if str(error.get("Code")) in _MISSING_CODES:
                raise StoredFileMissing(key) from None
            raise StorageUnavailable(f"{error.get('Code')}: {error.get('Message') or exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(str(exc)) from exc

    def save(self, key: str, source: Source, *, move: bool = False, content_type: str | None = None) -> Stored:
        extra = {"ContentType": content_type} if content_type else None
        name = self._name(key)
        if is_path(source):
            size, sha = os.path.getsize(source), file_sha256(source)
            self._call(key, self.client.upload_file, os.fspath(source), self.bucket, name, ExtraArgs=extra,
                       Config=self._transfer)
            if move:
                os.unlink(source)
            return Stored(key, size, sha)
        reader = HashingReader(source)
        self._call(key, self.client.upload_fileobj, reader, self.bucket, name, ExtraArgs=extra,
                   Config=self._transfer)
        return Stored(key, reader.size, reader.sha256)

    def open(self, key: str) -> StoredStream:
        answer = self._call(key, self.client.get_object, Bucket=self.bucket, Key=self._name(key))
        return StoredStream(answer["Body"], int(answer["ContentLength"]))

    def size(self, key: str) -> int:
        answer = self._call(key, self.client.head_object, Bucket=self.bucket, Key=self._name(key))
        return int(answer["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except StoredFileMissing:
            return False
        return True

    def delete(self, key: str) -> None:
        self._call(key, self.client.delete_object, Bucket=self.bucket, Key=self._name(key))

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="s3-", suffix=Path(key).suffix, dir=self.scratch)
        os.close(fd)
        try:
            self._call(key, self.client.download_file, self.bucket, self._name(key), name, Config=self._transfer)
            yield Path(name)
        finally:
            os.unlink(name)

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3 bucket {self.bucket}" + (f", prefix {self.prefix}/" if self.prefix else "") + where

"""The file storage interface on both backends: a local folder and S3 (moto's real HTTP server)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from app.extensions import db
from app.services import storage
from app.services.storage import InvalidKey, StoredFileMissing
from app.services.storage.local import LocalStorage
from app.services.storage.s3 import S3Storage
from tests.storage_fixtures import object_bytes, object_keys

BAD_KEYS = [
    "../outside.txt", "members/../../outside.txt", "members/..", "/etc/passwd", "C:/Windows/win.ini",
    "members\\1\\photo.jpg", "members/1/photo.jpg\x00.png", "", ".env", "members//1", "members/./1",
    "members/1/", "line\nbreak", "members/1/ photo.jpg", "a" * 901, 42, None,
]


class Generated(io.RawIOBase):
    """``size`` bytes made on demand, never held whole; remembers the largest read asked for."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.sha = hashlib.sha256()
        self.largest_read = 0
        self.n = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.largest_read = max(self.largest_read, n)
        data = bytes((self.n + i) % 251 for i in range(min(n, 256))) * (n // 256 + 1)
        data = data[:n]
        self.n += n
        self.left -= n
        self.sha.update(data)
        return data


def test_save_open_size_exists_delete(ctx, any_storage):
    stored = storage.save("members/1/photo-a.jpg", io.BytesIO(b"\xff\xd8\xff picture"), content_type="image/jpeg")
    assert (stored.key, stored.size) == ("members/1/photo-a.jpg", 11)
    assert stored.sha256 == hashlib.sha256(b"\xff\xd8\xff picture").hexdigest()
    assert object_bytes(any_storage, "members/1/photo-a.jpg") == b"\xff\xd8\xff picture"
    assert storage.exists("members/1/photo-a.jpg") and storage.size("members/1/photo-a.jpg") == 11
    with storage.open("members/1/photo-a.jpg") as stream:
        assert stream.size == 11 and stream.read(4) == b"\xff\xd8\xff " and stream.read() == b"picture"
    storage.save("members/1/photo-a.jpg", io.BytesIO(b"replaced"))
    with storage.open("members/1/photo-a.jpg") as stream:
        assert b"".join(stream) == b"replaced"
    storage.delete("members/1/photo-a.jpg")
    storage.delete("members/1/photo-a.jpg")  # already gone: nothing happens
    assert not storage.exists("members/1/photo-a.jpg") and object_keys(any_storage) == set()
    with pytest.raises(StoredFileMissing):
        storage.open("members/1/photo-a.jpg")
    with pytest.raises(StoredFileMissing):
        storage.size("members/1/photo-a.jpg")


def test_a_large_file_is_streamed_in_and_out_in_pieces(ctx, any_storage):
    """25 MB made on demand (it never exists whole) goes in, in chunks, and comes back in chunks."""
    source = Generated(25 * 1024 * 1024)
    stored = storage.save("jobs/1/cards.pdf", source)
    assert stored.size == 25 * 1024 * 1024 and stored.sha256 == source.sha.hexdigest()
    assert source.largest_read <= 8 * 1024 * 1024  # S3 parts of 8 MB; the local copy reads 256 KB at a time
    sha, largest = hashlib.sha256(), 0
    with storage.open("jobs/1/cards.pdf") as stream:
        assert stream.size == stored.size
        for chunk in stream:
            sha.update(chunk)
            largest = max(largest, len(chunk))
    assert sha.hexdigest() == stored.sha256 and largest <= 256 * 1024


def test_save_from_a_path_copies_or_moves(ctx, any_storage, tmp_path):
    report = tmp_path / "errors.csv"
    report.write_bytes(b"line,reason\n2,bad\n")
    storage.save("jobs/5/errors.csv", report)
    assert report.exists()  # copied
    storage.save("jobs/5/again.csv", report, move=True)
    assert not report.exists()  # used up
    assert object_bytes(any_storage, "jobs/5/again.csv") == b"line,reason\n2,bad\n"
    with storage.local_copy("jobs/5/again.csv") as path:
        assert path.read_bytes() == b"line,reason\n2,bad\n"
    with pytest.raises(StoredFileMissing):
        with storage.local_copy("jobs/5/none.csv"):
            pass


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_path_traversal_and_odd_keys_are_refused(ctx, any_storage, key, tmp_path):
    for call in (lambda: storage.save(key, io.BytesIO(b"x")), lambda: storage.open(key),
                 lambda: storage.exists(key), lambda: storage.delete(key), lambda: storage.size(key)):
        with pytest.raises(InvalidKey) as refused:
            call()
        assert refused.value.message.startswith("Refused storage key") and refused.value.status == 400
    assert object_keys(any_storage) == set()
    assert not (tmp_path / "outside.txt").exists()


def test_a_symlink_out_of_the_local_folder_is_refused(ctx, local_storage, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0")
    local_storage.root.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, local_storage.root / "members")
    with pytest.raises(InvalidKey, match="outside the storage folder"):
        storage.open("members/passwd")


def test_job_file_names_become_safe_keys(ctx, staff, any_storage):
    from app.services import jobs

    job = jobs.create_job(staff["admin"], next(iter(jobs.HANDLERS)), {})
    row = jobs.JobContext(job).add_file("../../etc/passwd\x00.csv", "text/csv", b"a,b\n")
    assert row.path == f"jobs/{job.id}/etc_passwd_.csv" and row.size == 4
    assert object_keys(any_storage) == {row.path}


def test_build_storage_from_the_configuration(tmp_path, moto_server):
    local = storage.build_storage({}, tmp_path)
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "files").resolve()
    elsewhere = storage.build_storage({"STORAGE_URL": f"file://{tmp_path}/shared"}, tmp_path)
    assert isinstance(elsewhere, LocalStorage) and elsewhere.root == (tmp_path / "shared").resolve()
    s3 = storage.build_storage({"STORAGE_URL": "s3://muster-files/node-a/", "S3_ENDPOINT_URL": moto_server,
                                "S3_REGION": "eu-west-1"}, tmp_path)
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == ("muster-files", "node-a")
    assert s3.describe() == f"S3 bucket muster-files, prefix node-a/ at {moto_server}"
    for url, message in [("ftp://host/x", "use file:///"), ("s3:///prefix", "names no bucket"),
                         ("s3://key:secret@bucket/p", "must not hold credentials"),
                         ("file:relative/dir", "file:///absolute/path")]:
        with pytest.raises(ValueError, match=message):
            storage.build_storage({"STORAGE_URL": url}, tmp_path)
    with pytest.raises(InvalidKey):
        storage.build_storage({"STORAGE_URL": "s3://bucket/../up"}, tmp_path)


def test_s3_objects_live_under_the_prefix(ctx, s3_storage):
    storage.save("imports/3/upload.csv", io.BytesIO(b"first_name\nAda\n"), content_type="text/csv")
    listed = s3_storage.test_client.list_objects_v2(Bucket=s3_storage.test_bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["muster-files/imports/3/upload.csv"]
    head = s3_storage.test_client.head_object(Bucket=s3_storage.test_bucket, Key="muster-files/imports/3/upload.csv")
    assert head["ContentType"] == "text/csv" and head["ContentLength"] == 15


def test_an_unreachable_s3_endpoint_is_a_clear_error(ctx, app, tmp_path, monkeypatch):
    from app.services.storage.base import StorageUnavailable

    backend = storage.build_storage({"STORAGE_URL": "s3://nowhere/x", "S3_ENDPOINT_URL": "http://127.0.0.1:9",
                                     "S3_REGION": "us-east-1"}, tmp_path)
    monkeypatch.setitem(app.extensions, storage.EXTENSION, backend)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(StorageUnavailable, match="The file storage is not available"):
        storage.exists("members/1/photo.jpg")


# --- in step with the transaction --------------------------------------------------------


def test_a_new_object_is_discarded_when_its_transaction_rolls_back(ctx, any_storage):
    storage.save("members/1/new.jpg", io.BytesIO(b"new"))
    storage.discard_on_rollback("members/1/new.jpg")
    db.session.rollback()
    assert not storage.exists("members/1/new.jpg")
    storage.save("members/1/kept.jpg", io.BytesIO(b"kept"))
    storage.discard_on_rollback("members/1/kept.jpg")
    db.session.commit()
    db.session.rollback()  # a later rollback does not touch what was committed
    assert storage.exists("members/1/kept.jpg")


def test_a_deletion_waits_for_the_commit(ctx, any_storage):
    storage.save("members/1/old.jpg", io.BytesIO(b"old"))
    storage.delete_after_commit("members/1/old.jpg")
    db.session.rollback()
    assert storage.exists("members/1/old.jpg")  # the row that needs it is back
    storage.delete_after_commit("members/1/old.jpg")
    assert storage.exists("members/1/old.jpg")
    db.session.commit()
    assert not storage.exists("members/1/old.jpg")


def test_savepoints_settle_their_own_requests(ctx, any_storage):
    storage.save("members/1/a.jpg", io.BytesIO(b"a"))
    storage.save("members/1/b.jpg", io.BytesIO(b"b"))
    try:
        with db.session.begin_nested():
            storage.delete_after_commit("members/1/a.jpg")
            storage.save("members/1/c.jpg", io.BytesIO(b"c"))
            storage.discard_on_rollback("members/1/c.jpg")
            raise RuntimeError("one bad apple")
    except RuntimeError:
        pass
    assert not storage.exists("members/1/c.jpg")  # discarded with its savepoint
    with db.session.begin_nested():
        storage.delete_after_commit("members/1/b.jpg")
    assert storage.exists("members/1/b.jpg")  # released: waits for the real commit
    db.session.commit()
    assert not storage.exists("members/1/b.jpg")
    assert storage.exists("members/1/a.jpg")  # its deletion was rolled back with the savepoint


def test_download_names_are_quoted_safely():
    from app.downloads import content_disposition

    assert content_disposition("agenda.pdf") == 'attachment; filename="agenda.pdf"'
    assert content_disposition("photo.jpg", inline=True) == 'inline; filename="photo.jpg"'
    assert content_disposition('Réunion "AGM"\r\n.pdf') == (
        'attachment; filename="R_union _AGM_  .pdf"; filename*=UTF-8\'\'R%C3%A9union%20%22AGM%22%20%20.pdf')

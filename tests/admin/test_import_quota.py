"""Files waiting to be imported are limited per person (IMPORT_PENDING_MAX, IMPORT_PENDING_MAX_BYTES).

Before, anyone with members.create could upload files without end and never
import them, filling the disk until they expired. Now the next upload past
the quota is refused with a message saying what to do, and a waiting upload
can be discarded from the console to make room.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ImportUpload
from app.models.base import utcnow
from app.services import imports as svc
from app.services import storage
from app.services.errors import ServiceError
from tests.conftest import csrf_token_from, login
from tests.storage_fixtures import object_keys

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(autouse=True)
def _uploads_in_tmp(app, local_storage, monkeypatch):
    """Uploads go to a fresh storage folder (files_kept counts them there)."""
    monkeypatch.setitem(app.config, "IMPORT_PENDING_MAX", 2)


def save(actor, name="members_utf8.csv"):
    with open(DATA / name, "rb") as fh:
        return svc.save_upload(actor, fh, name)


def files_kept(_tmp_path=None) -> int:
    return len([key for key in object_keys(storage.backend()) if key.startswith("imports/")])


def test_the_upload_past_the_quota_is_refused(tree, staff, tmp_path):
    first, _second = save(staff["coordinator"]), save(staff["coordinator"])
    with pytest.raises(ServiceError, match=r"You already have 2 files waiting to be imported \(2 at most\)\. "
                                           "Import or discard one of them") as info:
        save(staff["coordinator"])
    assert (info.value.field, info.value.status) == ("file", 409)
    assert files_kept(tmp_path) == 2
    save(staff["admin"])  # the quota is per person
    svc.discard_upload(staff["coordinator"], first)
    db.session.commit()  # its file is deleted with the commit
    assert first.stored_name == "" and files_kept(tmp_path) == 2
    save(staff["coordinator"])  # discarding made room


def test_expired_and_imported_uploads_do_not_count(tree, staff):
    old, done = save(staff["coordinator"]), save(staff["coordinator"])
    old.created_at = utcnow() - timedelta(hours=49)
    svc.delete_upload_file(done)  # what the end of an import does
    db.session.flush()
    assert svc.pending_uploads(staff["coordinator"]) == (0, 0)
    save(staff["coordinator"])


def test_the_total_size_of_waiting_uploads_is_limited(app, tree, staff, tmp_path, monkeypatch):
    size = (DATA / "members_utf8.csv").stat().st_size
    monkeypatch.setitem(app.config, "IMPORT_PENDING_MAX", 10)
    monkeypatch.setitem(app.config, "IMPORT_PENDING_MAX_BYTES", size * 3 // 2)
    save(staff["coordinator"])
    with pytest.raises(svc.ImportFileError, match="would take more than the 1 KB allowed per person"):
        save(staff["coordinator"])
    assert files_kept(tmp_path) == 1 and svc.pending_uploads(staff["coordinator"]) == (1, size)


def test_a_file_being_imported_cannot_be_discarded(tree, staff):
    upload = save(staff["admin"])
    svc.set_mapping(staff["admin"], upload, svc.guess_mapping(upload.headers),
                    {"default_unit_id": None, "date_order": "DMY", "default_status": "pending"})
    svc.start_import(staff["admin"], upload, "valid")  # queued, not run
    with pytest.raises(ServiceError, match="being imported"):
        svc.discard_upload(staff["admin"], upload)
    with pytest.raises(ServiceError, match="No such upload"):  # someone else's upload
        svc.discard_upload(staff["coordinator"], upload)


def post_upload(client, name="members_utf8.csv"):
    page = client.get("/admin/imports/").get_data(as_text=True)
    return client.post("/admin/imports/", content_type="multipart/form-data", data={
        "csrf_token": csrf_token_from(page), "file": (io.BytesIO((DATA / name).read_bytes()), name)})


def test_the_console_says_so_and_offers_to_discard(client, app, tree, staff, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_PENDING_MAX", 1)
    login(client, "coord@test.org")
    assert post_upload(client).status_code == 302
    refused = post_upload(client)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 200
    assert "You already have 1 file waiting to be imported (1 at most)" in html
    upload = db.session.scalar(select(ImportUpload))
    assert f'action="/admin/imports/{upload.id}/discard"' in html
    response = client.post(f"/admin/imports/{upload.id}/discard", data={"csrf_token": csrf_token_from(html)})
    assert response.status_code == 302
    page = client.get("/admin/imports/").get_data(as_text=True)
    assert "Discarded members_utf8.csv." in page and "discarded or expired" in page
    assert post_upload(client).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(ImportUpload)) == 2
    assert client.post(f"/admin/imports/{upload.id}/discard").status_code == 400  # no CSRF token

"""Photos, attachments, import uploads and job files through the console, on both storage backends.

Each test runs on a local folder and on S3 (moto's real HTTP server): what
the person uploads is what the backend holds and what the download sends
back, byte for byte; downloads stream with Content-Length; a download out of
the person's scope answers 404 without the object being read; deleting the
record deletes the stored object.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from app.extensions import db
from app.models import Job, MemberPhoto
from app.models.base import utcnow
from app.services import events as event_service
from app.services import imports as import_service
from app.services import jobs, member_photos, storage
from tests.admin.test_imports import latest_upload, submit_mapping, upload
from tests.admin.test_members import form_data, png_bytes
from tests.conftest import csrf_token_from, login
from tests.storage_fixtures import object_bytes, object_keys

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"


@pytest.fixture()
def reads(any_storage, monkeypatch):
    """Keys the backend was asked to open (or copy out): proves what was read, and what was not."""
    seen: list[str] = []
    for name in ("open", "local_copy"):
        real = getattr(any_storage, name)

        def spy(key, _real=real):
            seen.append(key)
            return _real(key)

        monkeypatch.setattr(any_storage, name, spy)
    return seen


def token_of(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, url
    return csrf_token_from(page.get_data(as_text=True))


def upload_photo(client, member, unit, picture: bytes):
    data = form_data(unit, first_name=member.first_name, last_name=member.last_name, phone="", email="")
    data.pop("status")
    data["photo"] = (io.BytesIO(picture), "face.png")
    data["csrf_token"] = token_of(client, f"/admin/member/edit/?id={member.id}")
    return client.post(f"/admin/member/edit/?id={member.id}", data=data, content_type="multipart/form-data")


def test_photo_upload_and_download(client, tree, staff, make_member, any_storage, reads):
    member = make_member(tree["w1"], first_name="Mwila", last_name="Banda")
    outside = make_member(tree["w3"], first_name="Peter", last_name="Zulu")
    member_photos.set_photo(None, outside, png_bytes((50, 50)))
    db.session.commit()
    login(client, "coord@test.org")
    assert upload_photo(client, member, tree["w1"], png_bytes()).status_code == 302

    photo = db.session.get(MemberPhoto, member.id)
    assert photo.content is None and photo.storage_key.startswith(f"members/{member.id}/photo-")
    held = object_bytes(any_storage, photo.storage_key)  # what the backend itself holds
    assert held[:3] == b"\xff\xd8\xff" and photo.size == len(held)

    served = client.get(f"/admin/member/photo/{member.id}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.get_data() == held and served.headers["Content-Length"] == str(len(held))
    assert served.headers["Content-Disposition"].startswith("inline; filename=")
    assert served.headers["Cache-Control"] == "private, max-age=300"

    # A new photo replaces the old one; the old object goes once that is committed.
    old_key = photo.storage_key
    assert upload_photo(client, member, tree["w1"], png_bytes((300, 400))).status_code == 302
    db.session.expire_all()
    photo = db.session.get(MemberPhoto, member.id)
    assert photo.storage_key != old_key and not storage.exists(old_key)
    assert client.get(f"/admin/member/photo/{member.id}").get_data() == object_bytes(any_storage, photo.storage_key)

    # Out of the coordinator's wards: 404, and the photo's object was never opened.
    outside_key = db.session.get(MemberPhoto, outside.id).storage_key
    reads.clear()
    assert client.get(f"/admin/member/photo/{outside.id}").status_code == 404
    assert outside_key not in reads and reads == []


def test_a_refused_photo_change_leaves_no_object(client, tree, staff, make_member, any_storage):
    member = make_member(tree["w1"])
    db.session.commit()
    before = object_keys(any_storage)
    member_photos.set_photo(None, member, png_bytes((40, 40)))
    db.session.rollback()  # as when the form's other fields are refused: nothing is kept
    assert object_keys(any_storage) == before
    assert db.session.get(MemberPhoto, member.id) is None


def test_attachment_download_and_delete(client, tree, staff, any_storage, reads):
    now = utcnow()
    event = event_service.create_event(staff["coordinator"], {
        "title": "Ward meeting", "start_at": now, "end_at": now + timedelta(hours=2), "unit_id": tree["w1"].id,
        "status": "upcoming"})
    other = event_service.create_event(None, {
        "title": "Far away", "start_at": now, "end_at": now + timedelta(hours=2), "unit_id": tree["w4"].id,
        "status": "upcoming"})
    far = event_service.add_attachment(None, other, "far.pdf", PDF)
    db.session.commit()
    login(client, "coord@test.org")
    url = f"/admin/events/{event.id}/"
    response = client.post(f"/admin/events/{event.id}/attachments", content_type="multipart/form-data",
                           data={"csrf_token": token_of(client, url), "kind": "agenda",
                                 "file": (io.BytesIO(PDF), "Agenda (final).pdf")})
    assert response.status_code == 302
    db.session.refresh(event)
    row = event.attachments[0]
    assert row.content is None and object_bytes(any_storage, row.storage_key) == PDF

    download = client.get(f"/admin/events/{event.id}/attachments/{row.id}")
    assert download.status_code == 200 and download.get_data() == PDF
    assert download.headers["Content-Length"] == str(len(PDF)) and download.mimetype == "application/pdf"
    assert download.headers["Content-Disposition"] == f'attachment; filename="{row.filename}"'

    reads.clear()
    assert client.get(f"/admin/events/{other.id}/attachments/{far.id}").status_code == 404
    assert client.get(f"/admin/events/{event.id}/attachments/{far.id}").status_code == 404  # not this event's
    assert reads == []

    client.post(f"/admin/events/{event.id}/attachments/{row.id}/delete", data={"csrf_token": token_of(client, url)})
    assert not storage.exists(row.storage_key)
    assert client.get(f"/admin/events/{event.id}/attachments/{row.id}").status_code == 404


def test_deleting_an_event_deletes_its_files(ctx, tree, staff, any_storage):
    now = utcnow()
    event = event_service.create_event(None, {"title": "Rally", "start_at": now, "end_at": now + timedelta(hours=1),
                                              "unit_id": tree["w1"].id, "status": "upcoming"})
    row = event_service.add_attachment(None, event, "flyer.pdf", PDF, "flyer")
    db.session.commit()
    assert storage.exists(row.storage_key)
    event_service.delete_event(staff["super_admin"], event)
    assert storage.exists(row.storage_key)  # not before the commit
    db.session.commit()
    assert not storage.exists(row.storage_key)


def test_import_upload_and_job_error_report(client, tree, staff, make_user, any_storage, reads):
    """A real preview job reads the upload from the storage and keeps its error report there."""
    login(client, "coord@test.org")
    assert upload(client, "members_other_wards.csv").status_code == 302
    up = latest_upload()
    assert re.fullmatch(rf"imports/{up.id}/[0-9a-f]{{32}}\.csv", up.stored_name)
    assert storage.exists(up.stored_name) and up.samples  # kept whole; first rows kept with the upload
    reads.clear()
    mapping = client.get(f"/admin/imports/{up.id}/mapping").get_data(as_text=True)
    assert "Chileshe" in mapping and reads == []  # samples shown without fetching the file

    submit_mapping(client, up.id)  # starts the preview job (run at once in tests)
    assert reads == [up.stored_name]  # the job took its copy of the upload
    preview = client.get(f"/admin/imports/{up.id}/preview").get_data(as_text=True)
    link = re.search(r'id="error-report" href="([^"]+)"', preview).group(1)
    job = db.session.get(Job, up.preview_job_id)
    report_row = job.files[0]
    assert report_row.path == f"jobs/{job.id}/members_other_wards-errors.csv"
    held = object_bytes(any_storage, report_row.path)
    report = client.get(link)
    assert report.status_code == 200 and report.get_data() == held
    assert report.headers["Content-Length"] == str(len(held)) == str(report_row.size)
    assert report.headers["Content-Disposition"] == 'attachment; filename="members_other_wards-errors.csv"'
    rows = list(csv.reader(io.StringIO(report.get_data().decode("utf-8-sig"))))
    assert [r[0] for r in rows[1:]] == ["3", "4"]

    # Someone else's job: 404, and its file was never opened.
    make_user("coord3@test.org", "ward_coordinator", tree["w3"])
    db.session.commit()
    login(client, "coord3@test.org")
    reads.clear()
    assert client.get(link).status_code == 404
    assert reads == []


def test_expired_and_imported_uploads_delete_their_files(ctx, tree, staff, any_storage, app):
    with open("tests/data/members_utf8.csv", "rb") as fh:
        up = import_service.save_upload(staff["admin"], fh, "members.csv")
    db.session.commit()
    key = up.stored_name
    assert storage.exists(key)
    up.created_at = utcnow() - timedelta(hours=app.config["IMPORT_UPLOAD_TTL_HOURS"] + 1)
    assert import_service.cleanup_uploads() == 1 and up.stored_name == ""
    assert storage.exists(key)  # until the sweep is committed
    db.session.commit()
    assert not storage.exists(key)


def test_a_job_file_missing_from_storage_is_404(client, tree, staff, any_storage):
    job = jobs.create_job(staff["coordinator"], "members.import", {})
    row = jobs.JobContext(job).add_file("report.csv", "text/csv", b"a,b\n")
    db.session.commit()
    storage.delete(row.path)
    login(client, "coord@test.org")
    response = client.get(f"/admin/jobs/{job.id}/files/{row.id}")
    assert response.status_code == 404

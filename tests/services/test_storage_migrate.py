"""Files kept the old way (blobs in the database, files in instance folders) keep working and move over.

Migration 0010 changes only the schema: photos and attachments saved before
it are read from their blobs until ``flask storage migrate`` moves them into
the storage (on both backends), and ``--into-database`` moves them back so a
downgrade loses nothing (the downgrade refuses while a file lives only in
the storage).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models import EventAttachment, ImportUpload, Job, JobFile, MemberPhoto
from app.models.base import utcnow
from app.services import events as event_service
from app.services import member_photos, storage
from tests.admin.test_members import png_bytes
from tests.conftest import login
from tests.storage_fixtures import object_bytes, object_keys

JPEG = b"\xff\xd8\xff\xe0 an old photo kept in the database"
PDF = b"%PDF-1.4\nold agenda\n%%EOF\n"


@pytest.fixture()
def legacy(app, tree, staff, make_member, tmp_path, monkeypatch):
    """A photo and an attachment as blobs, an upload in IMPORT_UPLOAD_DIR, a job file in instance/job_files."""
    member = make_member(tree["w1"])
    db.session.add(MemberPhoto(member_id=member.id, content=JPEG, content_type="image/jpeg", width=1, height=1))
    now = utcnow()
    event = event_service.create_event(None, {"title": "Old", "start_at": now, "end_at": now + timedelta(hours=1),
                                              "unit_id": tree["w1"].id, "status": "upcoming"})
    attachment = EventAttachment(event_id=event.id, kind="agenda", filename="agenda.pdf",
                                 content_type="application/pdf", size=len(PDF), content=PDF)
    db.session.add(attachment)
    uploads = tmp_path / "old-uploads"
    uploads.mkdir()
    (uploads / "0123abcd.csv").write_bytes(b"first_name,last_name\nAda,Banda\n")
    monkeypatch.setitem(app.config, "IMPORT_UPLOAD_DIR", str(uploads))
    upload = ImportUpload(filename="members.csv", stored_name="0123abcd.csv", size=31, headers=["first_name"],
                          options={}, created_by_id=staff["admin"].id)
    gone = ImportUpload(filename="gone.csv", stored_name="ffff.csv", size=1, headers=[], options={})
    job = Job(kind="members.import", title="Old import", params={}, state="succeeded",
              created_by_id=staff["coordinator"].id)
    db.session.add_all([upload, gone, job])
    db.session.flush()
    folder = Path(app.instance_path) / "job_files" / str(job.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "errors.csv").write_bytes(b"line,reason\n2,bad\n")
    report = JobFile(job_id=job.id, name="errors.csv", content_type="text/csv", size=18, path=f"{job.id}/errors.csv")
    db.session.add(report)
    db.session.commit()
    return {"member": member, "event": event, "attachment": attachment, "upload": upload, "gone": gone,
            "job": job, "report": report, "old_upload": uploads / "0123abcd.csv",
            "old_report": folder / "errors.csv"}


def test_old_blobs_are_served_until_moved_then_from_the_storage(client, runner, legacy, any_storage):
    member, event, attachment = legacy["member"], legacy["event"], legacy["attachment"]
    login(client, "coord@test.org")
    photo_url = f"/admin/member/photo/{member.id}"
    attachment_url = f"/admin/events/{event.id}/attachments/{attachment.id}"
    assert client.get(photo_url).get_data() == JPEG  # read from the blob: nothing breaks after the upgrade
    assert client.get(attachment_url).get_data() == PDF
    assert member_photos.photos_of([member.id]) == {member.id: JPEG}  # what card sheets print

    result = runner.invoke(args=["storage", "migrate", "--batch", "1"])
    assert result.exit_code == 0, result.output
    assert "photos: 1 moved." in result.output and "attachments: 1 moved." in result.output
    assert "uploads: 1 moved (1 whose file was already gone)." in result.output
    assert "job files: 1 moved." in result.output
    db.session.expire_all()

    photo = db.session.get(MemberPhoto, member.id)
    assert photo.content is None and object_bytes(any_storage, photo.storage_key) == JPEG
    assert photo.sha256 == hashlib.sha256(JPEG).hexdigest() and photo.size == len(JPEG)
    row = db.session.get(EventAttachment, attachment.id)
    assert row.content is None and row.storage_key.endswith(".pdf") and object_bytes(any_storage, row.storage_key) == PDF
    assert client.get(photo_url).get_data() == JPEG and client.get(attachment_url).get_data() == PDF

    upload = db.session.get(ImportUpload, legacy["upload"].id)
    assert upload.stored_name == f"imports/{upload.id}/0123abcd.csv" and storage.exists(upload.stored_name)
    assert not legacy["old_upload"].exists() and db.session.get(ImportUpload, legacy["gone"].id).stored_name == ""
    report = db.session.get(JobFile, legacy["report"].id)
    assert report.path == f"jobs/{legacy['job'].id}/errors.csv" and not legacy["old_report"].exists()
    download = client.get(f"/admin/jobs/{legacy['job'].id}/files/{report.id}")
    assert download.status_code == 200 and download.get_data() == b"line,reason\n2,bad\n"

    again = runner.invoke(args=["storage", "migrate"])  # nothing left: safe to run again
    assert again.exit_code == 0 and "photos: 0 moved." in again.output

    back = runner.invoke(args=["storage", "migrate", "--into-database"])
    assert back.exit_code == 0 and "photos and attachments into the database: 2 moved." in back.output
    db.session.expire_all()
    photo = db.session.get(MemberPhoto, member.id)
    assert photo.storage_key is None and photo.content == JPEG
    assert db.session.get(EventAttachment, attachment.id).content == PDF
    assert not any(k.startswith(("members/", "events/")) for k in object_keys(any_storage))
    assert client.get(photo_url).get_data() == JPEG


def test_a_new_photo_replaces_an_old_blob(ctx, legacy, local_storage):
    member = legacy["member"]
    photo = member_photos.set_photo(None, member, png_bytes((40, 40)))
    db.session.commit()
    assert photo.content is None and photo.storage_key
    assert member_photos.photo_bytes(member.id)[0] == object_bytes(local_storage, photo.storage_key)


def test_storage_info_names_the_backend(runner, s3_storage):
    result = runner.invoke(args=["storage", "info"])
    assert result.exit_code == 0
    assert f"Files are kept in the S3 bucket {s3_storage.test_bucket}, prefix muster-files/" in result.output


def test_the_downgrade_refuses_while_files_live_only_in_the_storage(tmp_path, capfd):
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from app.config import TestConfig

    fresh = create_app(TestConfig(f"sqlite:///{tmp_path / 'fresh.db'}"))
    with fresh.app_context():
        upgrade(revision="heads")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO units (id, name, code, level, path, created_at) VALUES "
                              "(1, 'North', 'N', 0, '/1/', '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO members (id, membership_number, first_name, last_name, surname_key, first_name_key,"
                " status, unit_id, joined_on, created_at, updated_at) VALUES (1, 'M1', 'Ada', 'Banda', 'banda',"
                " 'ada', 'active', 1, '2026-01-01', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
            conn.execute(text("INSERT INTO member_photos (member_id, storage_key, content_type, width, height, size,"
                              " updated_at) VALUES (1, 'members/1/photo-x.jpg', 'image/jpeg', 1, 1, 3,"
                              " '2026-01-01 00:00:00')"))
        with pytest.raises(SystemExit):  # Flask-Migrate turns the migration's RuntimeError into exit 1
            downgrade(revision="0009")
        assert "Run `flask storage migrate --into-database` first" in capfd.readouterr().err
        assert db.session.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0010"
        db.session.rollback()
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE member_photos SET content = X'FFD8FF', storage_key = NULL"))
        downgrade(revision="0009")
        assert db.session.execute(text("SELECT content FROM member_photos")).scalar() == b"\xff\xd8\xff"
        upgrade(revision="heads")

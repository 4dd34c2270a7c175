"""Move files kept the old way into the file storage (``flask storage migrate``), or blobs back.

Before the file storage (migration 0010), photos and event attachments were
blobs in the database, import uploads files under IMPORT_UPLOAD_DIR
(instance/imports/) and job files under instance/job_files/. Migration 0010
only changes the schema; reading falls back to the blobs until this moves
them (0010's docstring says why it is not done inside the migration).

Each function handles one batch and flushes; the caller commits after each
batch, so a run can stop anywhere and start again where it stopped. A blob
is cleared only after its copy's size and SHA-256 match; a stored object
that no row names after a failed batch is removed by
``storage.discard_on_rollback``. Old upload and job files are left on disk
until their batch is committed: ``leftovers`` lists them for the caller to
delete then.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import EventAttachment, ImportUpload, JobFile, MemberPhoto
from app.services import storage
from app.services.errors import ServiceError

EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}


@dataclass
class Batch:
    """What one batch did: rows moved, rows whose old file was missing, files to delete after the commit."""

    moved: int = 0
    missing: int = 0
    leftovers: list[Path] = field(default_factory=list)


def _store_blob(key: str, content: bytes, content_type: str | None) -> storage.Stored:
    stored = storage.save(key, io.BytesIO(content), content_type=content_type)
    storage.discard_on_rollback(stored.key)
    if stored.size != len(content) or stored.sha256 != hashlib.sha256(content).hexdigest():
        raise ServiceError(f"The copy of {key} in the storage does not match the database; nothing was cleared.")
    return stored


def photos_to_storage(limit: int = 50) -> Batch:
    """Move up to ``limit`` photo blobs into the storage."""
    batch = Batch()
    for photo in db.session.scalars(select(MemberPhoto).where(
            MemberPhoto.storage_key.is_(None), MemberPhoto.content.is_not(None))
            .order_by(MemberPhoto.member_id).limit(limit)):
        stored = _store_blob(f"members/{photo.member_id}/photo-{uuid.uuid4().hex}.jpg", photo.content,
                             photo.content_type)
        photo.storage_key, photo.size, photo.sha256, photo.content = stored.key, stored.size, stored.sha256, None
        batch.moved += 1
    db.session.flush()
    return batch


def attachments_to_storage(limit: int = 50) -> Batch:
    """Move up to ``limit`` attachment blobs into the storage."""
    batch = Batch()
    for row in db.session.scalars(select(EventAttachment).where(
            EventAttachment.storage_key.is_(None), EventAttachment.content.is_not(None))
            .order_by(EventAttachment.id).limit(limit)):
        suffix = Path(row.filename).suffix.lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,10}", suffix):
            suffix = EXTENSIONS.get(row.content_type, "")
        stored = _store_blob(f"events/{row.event_id}/{uuid.uuid4().hex}{suffix}", row.content, row.content_type)
        row.storage_key, row.size, row.sha256, row.content = stored.key, stored.size, stored.sha256, None
        batch.moved += 1
    db.session.flush()
    return batch


def _legacy_uploads_dir() -> Path:
    return Path(current_app.config.get("IMPORT_UPLOAD_DIR") or Path(current_app.instance_path) / "imports")


def uploads_to_storage(limit: int = 50) -> Batch:
    """Move up to ``limit`` waiting uploads from IMPORT_UPLOAD_DIR into the storage."""
    batch = Batch()
    rows = db.session.scalars(select(ImportUpload).where(
        ImportUpload.stored_name != "", ImportUpload.stored_name.not_like("%/%"))
        .order_by(ImportUpload.id).limit(limit)).all()
    for upload in rows:
        old = _legacy_uploads_dir() / storage.safe_name(upload.stored_name)
        if not old.is_file():
            upload.stored_name = ""  # expired or imported already: nothing to keep
            batch.missing += 1
            continue
        stored = storage.save(f"imports/{upload.id}/{storage.safe_name(upload.stored_name)}", old)
        storage.discard_on_rollback(stored.key)
        upload.stored_name = stored.key
        batch.moved += 1
        batch.leftovers.append(old)
    db.session.flush()
    return batch


def job_files_to_storage(limit: int = 50) -> Batch:
    """Move up to ``limit`` job files from instance/job_files/ into the storage."""
    batch = Batch()
    legacy = Path(current_app.instance_path) / "job_files"
    rows = db.session.scalars(select(JobFile).where(JobFile.path.not_like("jobs/%"))
                              .order_by(JobFile.id).limit(limit)).all()
    for row in rows:
        key = f"jobs/{row.job_id}/{storage.safe_name(row.name)}"
        old = legacy / str(row.job_id) / storage.safe_name(row.name)
        if old.is_file():
            stored = storage.save(key, old, content_type=row.content_type)
            storage.discard_on_rollback(stored.key)
            row.size = stored.size
            batch.moved += 1
            batch.leftovers.append(old)
        else:
            batch.missing += 1  # the row stays; its download answers 404 as it did
        row.path = key
    db.session.flush()
    return batch


def blobs_to_database(limit: int = 50) -> Batch:
    """Move up to ``limit`` stored photos and attachments back into the database (before a downgrade)."""
    batch = Batch()
    for model in (MemberPhoto, EventAttachment):
        for row in db.session.scalars(select(model).where(model.storage_key.is_not(None)).limit(limit)):
            try:
                with storage.open(row.storage_key) as stream:
                    row.content = stream.read()
            except storage.StoredFileMissing:
                batch.missing += 1
                continue
            storage.delete_after_commit(row.storage_key)
            row.storage_key = None
            batch.moved += 1
    db.session.flush()
    return batch


STEPS = {
    "photos": photos_to_storage,
    "attachments": attachments_to_storage,
    "uploads": uploads_to_storage,
    "job files": job_files_to_storage,
}

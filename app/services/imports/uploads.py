"""Uploads of the console flow: files waiting for their import, their mapping, the per-person quota.

An upload is copied in chunks to this machine's scratch folder (never held
in memory), inspected there, then moved into the file storage as
``imports/<upload id>/<random>.csv`` (so the worker that imports it may run
on another machine) and kept until its import ends, its owner discards it,
or it expires (IMPORT_UPLOAD_TTL_HOURS); deleting it deletes the stored
file once that is committed. Each person may keep IMPORT_PENDING_MAX
uploads waiting, IMPORT_PENDING_MAX_BYTES in all, so nobody can fill the
storage with files they never import. The first rows are kept with the
upload (``samples``) for the mapping page; readers that need the whole file
take it with ``local_upload``.
"""

from __future__ import annotations

import os
import uuid
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import ImportUpload, Job
from app.models.base import utcnow
from app.security import can, scope_paths
from app.services import storage
from app.services.errors import ServiceError
from app.services.imports.mapping import FIELD_BY_KEY, check_mapping
from app.services.imports.reading import FileInfo, ImportFileError, inspect_file, max_bytes, sample_rows, size_text
from app.services.imports.validation import ImportSettings
from app.services.imports.values import DATE_ORDERS


def work_dir() -> Path:
    """This machine's folder for import work files (an upload being checked, an error report being written)."""
    return storage.scratch_dir("imports")


def upload_exists(upload: ImportUpload) -> bool:
    """Whether the upload's file is still kept."""
    return bool(upload.stored_name) and storage.exists(upload.stored_name)


def local_upload(upload: ImportUpload) -> AbstractContextManager[Path]:
    """The upload's file on this machine for the ``with`` block (fetched from the storage if need be)."""
    return storage.local_copy(upload.stored_name)


def _ttl() -> timedelta:
    return timedelta(hours=int(current_app.config.get("IMPORT_UPLOAD_TTL_HOURS", 48)))


def pending_uploads(actor) -> tuple[int, int]:
    """(count, total bytes) of the actor's uploads still waiting: file kept and not expired."""
    count, size = db.session.execute(
        select(func.count(), func.coalesce(func.sum(ImportUpload.size), 0))
        .where(ImportUpload.created_by_id == getattr(actor, "id", None), ImportUpload.stored_name != "",
               ImportUpload.created_at >= utcnow() - _ttl())
    ).one()
    return int(count), int(size)


def _quota_left(actor) -> int | None:
    """Bytes the actor's next upload may take within their quota; None for the system (no quota).

    Refuses at once when they already keep IMPORT_PENDING_MAX uploads waiting.
    """
    if getattr(actor, "id", None) is None:
        return None
    most = int(current_app.config.get("IMPORT_PENDING_MAX", 5))
    count, size = pending_uploads(actor)
    if count >= most:
        raise ServiceError(f"You already have {count} file{'s' if count != 1 else ''} waiting to be imported "
                           f"({most} at most). Import or discard one of them (under Recent imports) before "
                           "uploading another.", field="file", status=409)
    return _max_pending_bytes() - size


def _max_pending_bytes() -> int:
    return int(current_app.config.get("IMPORT_PENDING_MAX_BYTES", 1024 * 1024 * 1024))


def save_upload(actor, stream, filename: str) -> ImportUpload:
    """Inspect an uploaded file, then keep it in the file storage.

    The file is copied in chunks (never held in memory) and refused when it
    exceeds IMPORT_MAX_BYTES, the uploader's quota of files waiting
    (IMPORT_PENDING_MAX, IMPORT_PENDING_MAX_BYTES), or cannot be imported;
    then nothing is kept.
    """
    left = _quota_left(actor)
    filename = os.path.basename((filename or "").replace("\\", "/")).strip() or "upload"
    suffix = ".xlsx" if filename.lower().endswith(".xlsx") else ".csv"
    stored = f"{uuid.uuid4().hex}{suffix}"
    target = work_dir() / f"upload-{stored}"
    limit, size = max_bytes(), 0
    try:
        with open(target, "wb") as out:
            for chunk in iter(lambda: stream.read(1024 * 1024), b""):
                size += len(chunk)
                if size > limit:
                    raise ImportFileError(f"The file is too large (more than {size_text(limit)}). "
                                          "Split it into smaller files.")
                if left is not None and size > left:
                    raise ImportFileError(
                        f"With this file, your files waiting to be imported would take more than the "
                        f"{size_text(_max_pending_bytes())} allowed per person. Import or discard one of them "
                        "(under Recent imports) first.")
                out.write(chunk)
        info = inspect_file(target, filename)
        try:
            samples = sample_rows(target, info)
        except ServiceError:
            samples = None  # the mapping page reads the file itself and shows the problem
        upload = ImportUpload(filename=filename[:255], stored_name="", size=size, format=info.format,
                              encoding=info.encoding, delimiter=info.delimiter, sheet=info.sheet,
                              header_line=info.header_line, headers=info.headers, samples=samples, options={},
                              created_by_id=getattr(actor, "id", None))
        db.session.add(upload)
        db.session.flush()  # its id names the key
        kept = storage.save(f"imports/{upload.id}/{stored}", target, move=True)
    finally:
        target.unlink(missing_ok=True)
    storage.discard_on_rollback(kept.key)
    upload.stored_name = kept.key
    db.session.flush()
    return upload


def upload_info(upload: ImportUpload) -> FileInfo:
    return FileInfo(format=upload.format, encoding=upload.encoding, delimiter=upload.delimiter, sheet=upload.sheet,
                     header_line=upload.header_line, headers=list(upload.headers or []), size=upload.size)


def visible_uploads(user):
    """Uploads a user may continue: their own, or all of them for global importers."""
    stmt = select(ImportUpload).order_by(ImportUpload.id.desc())
    if user is not None and scope_paths(user, "members.create") is None:
        return stmt
    return stmt.where(ImportUpload.created_by_id == getattr(user, "id", None))


def delete_upload_file(upload: ImportUpload) -> None:
    """Forget the upload's file: it is deleted from the storage once this is committed."""
    if upload.stored_name:
        storage.delete_after_commit(upload.stored_name)
        upload.stored_name = ""


def discard_upload(actor, upload: ImportUpload) -> None:
    """Delete a waiting upload's file (it no longer counts against the quota); the record stays."""
    if db.session.scalar(visible_uploads(actor).where(ImportUpload.id == upload.id)) is None:
        raise ServiceError("No such upload.", status=404)
    job = db.session.get(Job, upload.import_job_id) if upload.import_job_id is not None else None
    if job is not None and job.state in ("queued", "running"):
        raise ServiceError("This file is being imported: wait for the import to end.", status=409)
    delete_upload_file(upload)
    db.session.flush()


def _stale(cutoff) -> ColumnElement[bool]:
    """Uploads untouched since before ``cutoff`` whose import is not queued or running (nor their preview)."""
    busy = select(Job.id).where(Job.state.in_(("queued", "running")))
    return and_(ImportUpload.created_at < cutoff,
                or_(ImportUpload.import_job_id.is_(None), ImportUpload.import_job_id.not_in(busy)),
                or_(ImportUpload.preview_job_id.is_(None), ImportUpload.preview_job_id.not_in(busy)))


def _forget_files(where: ColumnElement[bool]) -> int:
    """Delete, once this commits, the stored files of the uploads ``where`` matches; how many (one SELECT)."""
    keys = db.session.scalars(select(ImportUpload.stored_name).where(where, ImportUpload.stored_name != "")).all()
    for key in keys:
        storage.delete_after_commit(key)  # no SQL: a callback for the commit
    return len(keys)


def _expire_loaded_uploads() -> None:
    for obj in list(db.session.identity_map.values()):  # loaded uploads are stale after a Core statement
        if isinstance(obj, ImportUpload):
            db.session.expire(obj)


def cleanup_uploads(now=None) -> int:
    """Delete the files of uploads left unfinished for longer than IMPORT_UPLOAD_TTL_HOURS; how many.

    The records stay (the console's list says "discarded or expired"; the
    nightly sweep removes the never-imported ones, ``delete_abandoned_uploads``).
    Set-based: one SELECT of the keys, one UPDATE. Flushes, never commits.
    """
    db.session.flush()
    stale = _stale((now or utcnow()) - _ttl())
    count = _forget_files(stale)
    if count:
        db.session.execute(update(ImportUpload).where(stale, ImportUpload.stored_name != "").values(stored_name="")
                           .execution_options(synchronize_session=False))
        _expire_loaded_uploads()
    return count


def delete_abandoned_uploads(now=None) -> tuple[int, int]:
    """Uploads never imported and older than IMPORT_UPLOAD_TTL_HOURS go, row and file; (rows, files).

    Nothing was done with them, so nothing is left to keep a record of (an
    upload whose import ran keeps its row with its jobs). Set-based: one
    SELECT of the keys (each deleted from the storage once this commits), one
    DELETE. Flushes, never commits.
    """
    db.session.flush()
    abandoned = and_(_stale((now or utcnow()) - _ttl()), ImportUpload.import_job_id.is_(None))
    files = _forget_files(abandoned)
    rows = db.session.execute(delete(ImportUpload).where(abandoned)
                              .execution_options(synchronize_session=False)).rowcount or 0
    if rows:
        _expire_loaded_uploads()
    return rows, files


def settings_for(upload: ImportUpload, mode: str = "valid") -> ImportSettings:
    options = dict(upload.options or {})
    return ImportSettings(
        mapping=list(upload.mapping or []),
        default_unit_id=options.get("default_unit_id"),
        date_order=options.get("date_order") or current_app.config.get("IMPORT_DATE_ORDER", "DMY"),
        default_status=options.get("default_status") or "pending",
        mode=mode,
        batch_size=int(current_app.config.get("IMPORT_BATCH_SIZE", 1000)),
    )


def set_mapping(actor, upload: ImportUpload, mapping: list[str], options: dict[str, Any]) -> None:
    """Record the chosen mapping and options on an upload (checked, with the default ward's scope)."""
    mapping = [m if m in FIELD_BY_KEY else "" for m in mapping][: len(upload.headers)]
    mapping += [""] * (len(upload.headers) - len(mapping))
    default_unit_id = options.get("default_unit_id")
    check_mapping(mapping, default_unit_id)
    if default_unit_id is not None and actor is not None and not can(actor, "members.create", default_unit_id):
        raise ServiceError("That ward does not exist or is outside your area.", field="default_unit")
    if options.get("date_order") not in DATE_ORDERS:
        raise ServiceError("Choose how dates are written.", field="date_order")
    if options.get("default_status") not in ("pending", "active"):
        raise ServiceError("New members start as pending or active.", field="default_status")
    upload.mapping = mapping
    upload.options = {k: options.get(k) for k in ("default_unit_id", "date_order", "default_status")}
    db.session.flush()


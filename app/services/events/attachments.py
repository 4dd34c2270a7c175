"""Agenda and flyer attachments: PDF, PNG, JPEG or Word (.docx), checked by content and size.

The bytes decide what a file is (``sniff``), the name must agree with them,
zip-based files pass ``zipguard`` before their directory is read, and an
event holds MAX_ATTACHMENTS at most.

The file is kept in the file storage (``events/<event id>/<random>.<ext>``);
deleting the attachment, or its event, deletes it once that is committed.
Attachments saved before the storage existed are read from
``EventAttachment.content`` until ``flask storage migrate`` moves them.
"""

from __future__ import annotations

import io
import uuid
import zipfile

from flask import current_app
from PIL import Image, UnidentifiedImageError
from sqlalchemy import func, select
from werkzeug.utils import secure_filename

from app.extensions import db
from app.models import Event, EventAttachment
from app.models.events import ATTACHMENT_KINDS
from app.security import authorize
from app.services import audit, storage, zipguard
from app.services.errors import ServiceError
from app.services.storage import StoredStream
from app.services.events.visibility import REFUSALS

MAX_ATTACHMENTS = 20
# Detected kind -> (content type, accepted extensions)
ATTACHMENT_TYPES = {
    "pdf": ("application/pdf", (".pdf",)),
    "png": ("image/png", (".png",)),
    "jpeg": ("image/jpeg", (".jpg", ".jpeg")),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",)),
}


def sniff(raw: bytes) -> str | None:
    """What a file really is, from its bytes: pdf, png, jpeg, docx, or None.

    A zip archive is checked for a zip bomb (``zipguard``) before its directory is read.
    """
    if raw.startswith(b"%PDF-"):
        return "pdf" if b"%%EOF" in raw[-2048:] else None
    if raw.startswith(b"\x89PNG\r\n\x1a\n") or raw.startswith(b"\xff\xd8\xff"):
        try:
            with Image.open(io.BytesIO(raw)) as img:
                kind = img.format
                img.verify()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
            return None
        return {"PNG": "png", "JPEG": "jpeg"}.get(kind)
    if raw.startswith(b"PK\x03\x04"):
        limit = int(current_app.config.get("EVENT_ATTACHMENT_MAX_UNPACKED_BYTES", 100 * 1024 * 1024))
        zipguard.check_archive(raw, max_unpacked=limit)
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return "docx"
    return None


def add_attachment(actor, event: Event, filename: str, raw: bytes, kind: str = "agenda") -> EventAttachment:
    """Attach a PDF, PNG, JPEG or Word (.docx) file, checked by content; the name must agree."""
    authorize(actor, "events.update", event, message=REFUSALS["events.update"])
    kind = (kind or "agenda").strip().lower()
    if kind not in ATTACHMENT_KINDS:
        raise ServiceError(f"The kind must be one of: {', '.join(ATTACHMENT_KINDS)}.", field="kind")
    max_bytes = int(current_app.config.get("EVENT_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))
    if not raw:
        raise ServiceError("The file is empty.", field="file")
    if len(raw) > max_bytes:
        raise ServiceError(f"The file is too large ({max_bytes // (1024 * 1024)} MB at most).", field="file")
    detected = sniff(raw)
    if detected is None:
        raise ServiceError("Attach a PDF, PNG, JPEG or Word (.docx) file.", field="file")
    content_type, extensions = ATTACHMENT_TYPES[detected]
    name = secure_filename(filename or "") or f"attachment{extensions[0]}"
    stem, dot, ext = name.rpartition(".")
    if not dot or f".{ext.lower()}" not in extensions:
        raise ServiceError(f"The file's content is {detected.upper()}, which does not match its name "
                           f"'{filename}'.", field="file")
    count = db.session.scalar(select(func.count()).select_from(EventAttachment)
                              .where(EventAttachment.event_id == event.id))
    if count >= MAX_ATTACHMENTS:
        raise ServiceError(f"An event has {MAX_ATTACHMENTS} attachments at most.", field="file")
    stored = storage.save(f"events/{event.id}/{uuid.uuid4().hex}{extensions[0]}", io.BytesIO(raw),
                          content_type=content_type)
    storage.discard_on_rollback(stored.key)
    row = EventAttachment(event_id=event.id, kind=kind, filename=name[:200], content_type=content_type,
                          size=stored.size, storage_key=stored.key, sha256=stored.sha256,
                          uploaded_by_id=getattr(actor, "id", None))
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "event.attachment", event, summary=f"Attached {row.filename} to {event.title}")
    return row


def delete_attachment(actor, row: EventAttachment) -> None:
    """Remove an attachment (events.update on its event)."""
    event = row.event
    authorize(actor, "events.update", event, message=REFUSALS["events.update"])
    storage.delete_after_commit(row.storage_key)
    db.session.delete(row)
    db.session.flush()
    audit.record(actor, "event.attachment_delete", event, summary=f"Removed {row.filename} from {event.title}")


def forget_files(event: Event) -> None:
    """The stored files of an event that is being deleted go once the deletion is committed."""
    for key in db.session.scalars(select(EventAttachment.storage_key).where(
            EventAttachment.event_id == event.id, EventAttachment.storage_key.is_not(None))):
        storage.delete_after_commit(key)


def open_attachment(row: EventAttachment) -> StoredStream:
    """The attachment's content as a stream; the caller has checked that the person may see its event."""
    if row.storage_key:
        return storage.open(row.storage_key)
    content = db.session.scalar(select(EventAttachment.content).where(EventAttachment.id == row.id)) or b""
    return StoredStream(io.BytesIO(content), len(content))

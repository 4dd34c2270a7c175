"""Member photos: checked, re-encoded, kept in the file storage, read back for pages, cards and downloads.

A photo is stored under a new key each time it changes
(``members/<id>/photo-<random>.jpg``), so a reader holding the old key never
gets half of the new one; the old object is deleted once the change is
committed (``storage.delete_after_commit``), and the new one if it is not.

Photos saved before the storage existed keep their bytes in
``MemberPhoto.content`` (``storage_key`` NULL) and are read from there
until ``flask storage migrate`` moves them (migration 0010 says why).
"""

from __future__ import annotations

import io
import uuid

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select

from app.extensions import db
from app.models import Member, MemberPhoto
from app.security import authorize
from app.services import audit, storage
from app.services.errors import ServiceError
from app.services.storage import StoredStream


def photo_key(member: Member) -> str:
    return f"members/{member.id}/photo-{uuid.uuid4().hex}.jpg"


def set_photo(actor, member: Member, raw: bytes, *, permission: str = "members.update") -> MemberPhoto:
    """Store a member's photo: JPEG or PNG by content, re-encoded and resized.

    Re-encoding drops anything hidden in the upload (metadata, trailing data)
    and keeps photos small enough for cards and lists. ``permission`` is
    ``profile.update_own`` when members change their own (the portal): the
    same checks, another right.
    """
    authorize(actor, permission, member, message="You may not change this member's photo.")
    max_bytes = current_app.config["PHOTO_MAX_BYTES"]
    if not raw:
        raise ServiceError("The photo file is empty.", field="photo")
    if len(raw) > max_bytes:
        raise ServiceError(f"The photo is too large ({max_bytes // 1024 // 1024} MB at most).", field="photo")
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            kind = probe.format
            probe.verify()
        if kind not in ("JPEG", "PNG"):
            raise ServiceError("The photo must be a JPEG or PNG image.", field="photo")
        with Image.open(io.BytesIO(raw)) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            side = current_app.config["PHOTO_MAX_PIXELS"]
            img.thumbnail((side, side))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=85, optimize=True)
            width, height = img.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError):
        raise ServiceError("The photo must be a JPEG or PNG image.", field="photo") from None
    if member.id is None:
        db.session.flush()  # a new member: its id names the key
    out.seek(0)
    stored = storage.save(photo_key(member), out, content_type="image/jpeg")
    storage.discard_on_rollback(stored.key)
    photo = member.photo or MemberPhoto(member=member)
    storage.delete_after_commit(photo.storage_key)
    photo.storage_key, photo.size, photo.sha256 = stored.key, stored.size, stored.sha256
    photo.content = None
    photo.content_type = "image/jpeg"
    photo.width, photo.height = width, height
    db.session.add(photo)
    db.session.flush()
    audit.record(actor, "member.photo", member, summary=f"New photo for {member.full_name}")
    return photo


def remove_photo(actor, member: Member, *, permission: str = "members.update") -> None:
    """Take a member's photo away (members.update, or profile.update_own for their own); the file goes on commit."""
    authorize(actor, permission, member, message="You may not change this member's photo.")
    photo = db.session.get(MemberPhoto, member.id)
    if photo is None:
        return
    storage.delete_after_commit(photo.storage_key)
    db.session.delete(photo)
    db.session.flush()
    audit.record(actor, "member.photo_remove", member, summary=f"Removed the photo of {member.full_name}")


def open_photo(member_id: int) -> tuple[StoredStream, str] | None:
    """(stream, content type) of a member's photo, or None when they have none.

    The caller has checked that the person may see the member: nothing is
    read before this is called.
    """
    row = db.session.execute(
        select(MemberPhoto.storage_key, MemberPhoto.content_type).where(MemberPhoto.member_id == member_id)
    ).one_or_none()
    if row is None:
        return None
    content_type = row.content_type or "image/jpeg"
    if row.storage_key:
        return storage.open(row.storage_key), content_type
    content = db.session.scalar(select(MemberPhoto.content).where(MemberPhoto.member_id == member_id))
    if not content:
        return None
    return StoredStream(io.BytesIO(content), len(content)), content_type


def photo_bytes(member_id: int) -> tuple[bytes, str] | None:
    """A member's photo as bytes (small: re-encoded at most PHOTO_MAX_PIXELS), for inline use and cards."""
    found = open_photo(member_id)
    if found is None:
        return None
    stream, content_type = found
    with stream:
        return stream.read(), content_type


def photos_of(member_ids: list[int]) -> dict[int, bytes]:
    """member id -> photo bytes for those who have one (card sheets, a batch at a time)."""
    rows = db.session.execute(
        select(MemberPhoto.member_id, MemberPhoto.storage_key).where(MemberPhoto.member_id.in_(member_ids))
    ).all()
    found: dict[int, bytes] = {}
    legacy = [r.member_id for r in rows if not r.storage_key]
    if legacy:
        found.update((mid, content) for mid, content in db.session.execute(
            select(MemberPhoto.member_id, MemberPhoto.content).where(MemberPhoto.member_id.in_(legacy))) if content)
    for row in rows:
        if row.storage_key:
            try:
                with storage.open(row.storage_key) as stream:
                    found[row.member_id] = stream.read()
            except storage.StoredFileMissing:
                continue  # printed with the placeholder, as a member without a photo
    return found

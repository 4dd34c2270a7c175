"""What is printed: each card's face as plain values, the design shared by a run, photos and logo.

``faces(cards)`` loads members, units and photos a batch at a time (three
queries per 200 cards), so drawing never touches the database. Photos are
cropped to the card's 4:5 frame and decoded at the JPEG scale nearest what
300 dpi needs, which is most of the saving on a photo.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Iterable, Iterator

from flask import current_app
from PIL import Image
from reportlab.lib.colors import HexColor
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from sqlalchemy import select

from app.extensions import db
from app.models import Member, MembershipCard, Unit
from app.services import member_photos
from app.services.cards import verification_url, verify_base_url

PHOTO_W, PHOTO_H = 19 * mm, 23.75 * mm
# Pixels a photo needs at 300 dpi.
PHOTO_PX = (int(PHOTO_W / 72 * 300), int(PHOTO_H / 72 * 300))


@dataclass
class CardFace:
    """Everything printed on one card, as plain values."""

    card_number: str
    card_type: str
    issued_on: date
    expires_on: date | None
    name: str
    membership_number: str
    unit_name: str
    qr_data: str
    photo: bytes | None = None


@dataclass
class Design:
    """What is the same on every card of a run."""

    org_name: str
    color: Any
    logo: ImageReader | None
    verify_url: str

    @classmethod
    def current(cls, base_url: str | None = None) -> Design:
        return cls(
            org_name=current_app.config["ORG_NAME"],
            color=HexColor(current_app.config.get("CARD_COLOR") or "#1d4f91"),
            logo=logo_reader(),
            verify_url=verify_base_url(base_url),
        )


def faces(cards: Iterable[MembershipCard], base_url: str | None = None, batch: int = 200) -> Iterator[CardFace]:
    """Card faces for ``cards`` in order, loading members, units and photos a batch at a time."""
    pending: list[MembershipCard] = []

    def flush() -> Iterator[CardFace]:
        member_ids = list({card.member_id for card in pending})
        people = {
            row.id: row for row in db.session.execute(
                select(Member.id, Member.first_name, Member.last_name, Member.membership_number,
                       Unit.name.label("unit_name"))
                .join(Unit, Unit.id == Member.unit_id).where(Member.id.in_(member_ids))
            )
        }
        photos = member_photos.photos_of(member_ids)
        for card in pending:
            person = people[card.member_id]
            yield CardFace(
                card_number=card.card_number, card_type=card.card_type, issued_on=card.issued_on,
                expires_on=card.expires_on, name=f"{person.first_name} {person.last_name}",
                membership_number=person.membership_number, unit_name=person.unit_name,
                qr_data=verification_url(card, base_url), photo=photos.get(card.member_id),
            )
        pending.clear()

    for card in cards:
        pending.append(card)
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()


def photo_reader(content: bytes | None) -> ImageReader | None:
    """A member's photo cropped to the card's 4:5 frame at print resolution, or None."""
    if not content:
        return None
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.draft("RGB", PHOTO_PX)  # JPEG decodes straight at 1/2, 1/4... of its size, not below PHOTO_PX
            img = img.convert("RGB")
            # Crop to the frame's 4:5; scale down only when well above print resolution.
            width, height = img.size
            if width * PHOTO_PX[1] > height * PHOTO_PX[0]:
                new_w = height * PHOTO_PX[0] // PHOTO_PX[1]
                img = img.crop(((width - new_w) // 2, 0, (width - new_w) // 2 + new_w, height))
            else:
                new_h = width * PHOTO_PX[1] // PHOTO_PX[0]
                img = img.crop((0, (height - new_h) // 2, width, (height - new_h) // 2 + new_h))
            if img.width > PHOTO_PX[0] * 1.5:
                img = img.resize(PHOTO_PX, Image.Resampling.BILINEAR)
            out = io.BytesIO()
            img.save(out, "JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    out.seek(0)
    return ImageReader(out)


@lru_cache(maxsize=8)
def _logo_reader(path: str, mtime: float) -> ImageReader | None:
    try:
        with Image.open(path) as img:
            img = img.convert("RGBA")
            img.thumbnail((300, 300))
            out = io.BytesIO()
            img.save(out, "PNG")
    except (OSError, ValueError):
        return None
    out.seek(0)
    return ImageReader(out)


def logo_reader() -> ImageReader | None:
    """The organisation's logo (CARD_LOGO, a PNG or JPEG), or None to draw its initials."""
    path = current_app.config.get("CARD_LOGO")
    if not path or not os.path.exists(path):
        return None
    return _logo_reader(str(path), os.path.getmtime(path))


def initials(name: str) -> str:
    """Up to three initials of the organisation's name, drawn when there is no logo."""
    words = [w for w in re.split(r"\s+", name or "") if w and w[0].isalnum()]
    return "".join(w[0] for w in words[:3]).upper() or "M"

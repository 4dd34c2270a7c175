"""One-time links: what a mailed link (verify an email, reset or set a password) may do, once.

The link in the mail carries a signed token naming a row here and a random
nonce; the row says what the link is for (``purpose``), whom it concerns,
until when it works and whether it has been used. Only the nonce's SHA-256
is stored, so a copy of the database cannot be turned into working links.
The URL holds no personal data: an id and a random value, signed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

# verify-email: a member who joined proves the mailbox is theirs; change-email: a member's new address does
# (following it makes the change); reset-password: "Forgot password"; activate: set a first password
# (members made by staff, new staff); renew: a renewal reminder's "Renew now" (start paying without signing in).
LINK_PURPOSES = ("verify-email", "change-email", "reset-password", "activate", "renew")


class OneTimeLink(db.Model):
    __tablename__ = "one_time_links"
    __table_args__ = (Index("ix_one_time_links_user_purpose", "user_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40))
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    # What the link confirms beyond whom it is for (e.g. the new address of an email change).
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the link was followed, or when a newer link of the same purpose replaced it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    superseded: Mapped[bool] = mapped_column(default=False)

    user: Mapped["User | None"] = relationship()  # noqa: F821
    member: Mapped["Member | None"] = relationship()  # noqa: F821

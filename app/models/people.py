"""Members of the organisation, their photos, tags and status history."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, ForeignKey, Index, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, binary_string, folded, utcnow

MEMBER_STATUSES = ("pending", "active", "suspended", "lapsed", "resigned", "deceased", "expelled")
GENDERS = ("female", "male", "other", "unspecified")

member_tags = Table(
    "member_tags",
    db.Model.metadata,
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)

    def __str__(self) -> str:
        return self.name


class Member(db.Model):
    __tablename__ = "members"
    __table_args__ = (
        # The console's default list (live members of a subtree, newest first)
        # and its count read only this index: no sort, no table lookups.
        Index(
            "ix_members_live_unit_id",
            "unit_id",
            "id",
            sqlite_where=Column("deleted_at").is_(None),
            postgresql_where=Column("deleted_at").is_(None),
        ),
        # Deleted members, a few among many: the organisation's referral figures are taken over
        # every referral and ledger entry, less those of deleted members, found here rather than
        # by checking a million members one by one (app/services/referrals/stats.py).
        Index(
            "ix_members_deleted_id",
            "id",
            sqlite_where=Column("deleted_at").is_not(None),
            postgresql_where=Column("deleted_at").is_not(None),
        ),
        # Deep pages on SQLite: walking this small index newest-first and
        # checking unit_id skips entries instead of whole table rows.
        Index(
            "ix_members_live_id_unit_id",
            "id",
            "unit_id",
            sqlite_where=Column("deleted_at").is_(None),
            postgresql_where=Column("deleted_at").is_(None),
        ),
        # Surname-prefix search and its count, over live members only: index-only.
        Index(
            "ix_members_surname_key",
            "surname_key",
            "id",
            sqlite_where=Column("deleted_at").is_(None),
            postgresql_where=Column("deleted_at").is_(None),
        ),
        # The same for a first name searched alone ("mwi" finds Mwila).
        Index(
            "ix_members_first_name_key",
            "first_name_key",
            "id",
            sqlite_where=Column("deleted_at").is_(None),
            postgresql_where=Column("deleted_at").is_(None),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    membership_number: Mapped[str] = mapped_column(String(32), unique=True)
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    other_names: Mapped[str | None] = mapped_column(String(120))
    # Case- and accent-folded names, for indexed prefix search ("smi" finds "Smith").
    surname_key: Mapped[str] = mapped_column(binary_string(80), default=folded("last_name"))
    # (The server default only lets migration 0007 add the column in place on SQLite.)
    first_name_key: Mapped[str] = mapped_column(binary_string(80), default=folded("first_name"), server_default="")
    gender: Mapped[str | None] = mapped_column(String(12))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    national_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    # Lower-cased; byte-ordered so an email prefix ("ann.b@") is an index range.
    email: Mapped[str | None] = mapped_column(binary_string(254), index=True)
    address: Mapped[str | None] = mapped_column(Text)
    # Indexed by ix_members_live_unit_id only: a plain unit_id index tempts
    # SQLite's planner away from the partial one and costs 25x on counts.
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    joined_on: Mapped[date] = mapped_column(Date, default=date.today, index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))
    # Joining through the portal (app/services/joining.py, migration 0012): when the member proved
    # the mailbox is theirs, when they consented to which privacy notice, and why staff turned an
    # application down (a rejected application is withdrawn from the registry: deleted_at is set).
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_version: Mapped[str | None] = mapped_column(String(20))
    rejection_reason: Mapped[str | None] = mapped_column(Text)

    unit: Mapped["Unit"] = relationship()  # noqa: F821
    tags: Mapped[list[Tag]] = relationship(secondary=member_tags, order_by=Tag.name)
    photo: Mapped[MemberPhoto | None] = relationship(
        back_populates="member", cascade="all, delete-orphan", uselist=False
    )
    status_changes: Mapped[list[MemberStatusChange]] = relationship(
        back_populates="member", order_by="MemberStatusChange.id.desc()"
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def __str__(self) -> str:
        return f"{self.full_name} ({self.membership_number})"


class MemberPhoto(db.Model):
    """A member's photo, kept apart so member rows stay small in lists.

    The image is in the file storage under ``storage_key``; ``content`` holds
    the bytes of photos saved before the storage existed, until
    ``flask storage migrate`` moves them (app/services/member_photos.py).
    """

    __tablename__ = "member_photos"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    content: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    storage_key: Mapped[str | None] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(default=0, server_default="0")
    sha256: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(40), default="image/jpeg")
    width: Mapped[int] = mapped_column(default=0)
    height: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    member: Mapped[Member] = relationship(back_populates="photo")


class MemberStatusChange(db.Model):
    """One transition of a member's status, with who did it and why."""

    __tablename__ = "member_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text, default="")
    # The status rule that made the change when no person did (app/services/lifecycle.py RULES,
    # e.g. "member.lapsed_after_grace"); None for a person's decision.
    rule: Mapped[str | None] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(back_populates="status_changes")
    actor: Mapped["User | None"] = relationship()  # noqa: F821

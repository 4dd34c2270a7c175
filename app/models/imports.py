"""Member imports: uploaded files waiting to be mapped and imported, and saved column mappings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class ImportMapping(db.Model):
    """A named column mapping a user saved for reuse: folded header text -> member field.

    Mappings belong to the user who saved them (names are unique per user), so
    one coordinator cannot change the mapping another relies on.
    """

    __tablename__ = "import_mappings"
    __table_args__ = (UniqueConstraint("created_by_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    columns: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Other choices made with the mapping (date order, default status).
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __str__(self) -> str:
        return self.name


class ImportUpload(db.Model):
    """A file uploaded for import, between the upload and the end of its import.

    The file itself is in the file storage (``stored_name`` is its key,
    ``imports/<id>/<random>.csv``) and is deleted when its import has finished; the row stays as a record of
    what was done (with the preview and import jobs).
    """

    __tablename__ = "import_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    # The file's storage key (app/services/storage/); empty once the file is deleted.
    stored_name: Mapped[str] = mapped_column(String(200), default="")
    size: Mapped[int] = mapped_column(default=0)
    # How the file is read, as found by imports.inspect_file().
    format: Mapped[str] = mapped_column(String(8), default="csv")
    encoding: Mapped[str | None] = mapped_column(String(20))
    delimiter: Mapped[str | None] = mapped_column(String(4))
    sheet: Mapped[str | None] = mapped_column(String(100))
    header_line: Mapped[int] = mapped_column(default=1)
    headers: Mapped[list[str]] = mapped_column(JSON, default=list)
    row_count: Mapped[int | None] = mapped_column()
    # The first data rows as text, read at upload: the mapping page shows them without fetching the file.
    samples: Mapped[list[list[str]] | None] = mapped_column(JSON)
    # The chosen member field per column ("" to skip) and the import options.
    mapping: Mapped[list[str] | None] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    preview_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    import_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    created_by: Mapped["User | None"] = relationship()  # noqa: F821
    preview_job: Mapped["Job | None"] = relationship(foreign_keys=[preview_job_id])  # noqa: F821
    import_job: Mapped["Job | None"] = relationship(foreign_keys=[import_job_id])  # noqa: F821

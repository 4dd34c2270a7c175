"""Background jobs: long console tasks (imports, bulk card printing, reminders) run outside the request.

A row per job holds its state and progress so that any web process can show
it. The queue (Huey) only executes: a worker claims the row with a
compare-and-set that writes its ``lease_owner`` and ``lease_expires_at``, its
heartbeat extends the lease while the lease is still its own, and the reaper
re-queues a job whose lease ran out (its worker died), counting ``attempts``
(app/services/jobs.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

JOB_STATES = ("queued", "running", "succeeded", "failed", "interrupted")
FINISHED_STATES = ("succeeded", "failed", "interrupted")


class Job(db.Model):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    done: Mapped[int] = mapped_column(default=0)
    total: Mapped[int | None] = mapped_column()
    errors: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    # The unit the job works on, so job lists are scoped like everything else.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who runs it now ("host:pid:thread:nonce") and until when, unless the heartbeat extends it.
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # How many times a worker has claimed it (a claim after a dead worker counts again).
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")

    created_by: Mapped["User | None"] = relationship()  # noqa: F821
    files: Mapped[list[JobFile]] = relationship(back_populates="job", cascade="all, delete-orphan",
                                                order_by="JobFile.id")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.state == "succeeded" else 0
        return min(100, int(self.done * 100 / self.total))


class JobFile(db.Model):
    """A file a job produced (an error report, a print sheet), kept for download."""

    __tablename__ = "job_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(default=0)
    # The file's storage key (app/services/storage/): jobs/<job id>/<name>.
    path: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="files")

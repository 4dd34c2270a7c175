"""The scheduler's tables: the leader's lease, and the record of every sweep run.

``scheduler_runs`` is what operators read (``flask jobs list``, the console's
"Scheduler" page, ``GET /api/v1/scheduler/runs``) and what the scheduler reads
on start: a firing missed while no scheduler ran is found by comparing the
schedule with the last run recorded per sweep (the job store is in memory, so
this table is the scheduler's only memory).

A run is written ``queued`` by the scheduler when it fires (with who queued it,
``scheduled_by``) and finished by the worker that runs it (``ok`` or
``failed``, counts or the error, ``ran_by``), in the same commit as the
sweep's own work. ``flask jobs run`` writes and finishes one in one go.

``scheduler_leases`` holds one row per lock name: on SQLite the lease *is* the
leader election (owner and expiry, renewed by the leader, taken over by a
standby once it ran out); on PostgreSQL the advisory lock decides and the row
only says who leads, for people.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

RUN_STATUSES = ("queued", "ok", "failed")
# scheduler: a firing on the schedule; catch-up: one missed firing, run at start; cli: `flask jobs run`.
RUN_TRIGGERS = ("scheduler", "catch-up", "cli")


class SchedulerRun(db.Model):
    __tablename__ = "scheduler_runs"
    __table_args__ = (Index("ix_scheduler_runs_sweep_queued", "sweep", "queued_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep: Mapped[str] = mapped_column(String(60))
    triggered_by: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    # The firing it stands for (a catch-up: the first one missed); the moment it was queued.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # "host:pid" of the scheduler (or CLI) that queued it and of the process that ran it.
    scheduled_by: Mapped[str] = mapped_column(String(120), default="")
    ran_by: Mapped[str | None] = mapped_column(String(120))

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class SchedulerLease(db.Model):
    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    owner: Mapped[str] = mapped_column(String(120))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

"""Background jobs: run long console work outside the request, with progress.

Usage::

    @jobs.handler("members.import")
    def run_import(ctx: jobs.JobContext) -> dict:
        for batch in ...:
            ...write the batch...
            db.session.commit()
            ctx.progress(done, total, errors=n)
        ctx.add_file("errors.csv", "text/csv", data)
        return {"created": 10}          # stored as job.result

    job = jobs.create_job(current_user, "members.import", {"path": ...}, title="Import members.csv")
    db.session.commit()
    jobs.submit(job)                    # runs in a worker thread of this process

Handlers run with their own app context and session. ``progress()`` commits
(it is the heartbeat too), so call it between units of work, never in the
middle of one. A job whose heartbeat is older than JOB_STALE_SECONDS is shown
as interrupted: a web process that restarts or dies never leaves a job
"running" forever. Jobs must be safe to run again after an interruption.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from flask import Flask, current_app
from sqlalchemy import or_, select, update

from app.extensions import db
from app.models import Job, JobFile
from app.models.base import utcnow
from app.services.errors import ServiceError

log = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[["JobContext"], dict | None]] = {}
_executors: dict[int, ThreadPoolExecutor] = {}


def handler(kind: str):
    """Register the function that runs jobs of ``kind``."""

    def register(fn):
        HANDLERS[kind] = fn
        return fn

    return register


def files_dir() -> Path:
    path = Path(current_app.instance_path) / "job_files"
    path.mkdir(parents=True, exist_ok=True)
    return path


class JobContext:
    """What a running handler gets: its job's parameters and ways to report back."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.params: dict[str, Any] = dict(job.params or {})

    def progress(self, done: int, total: int | None = None, *, errors: int | None = None,
                 message: str | None = None) -> None:
        """Record progress and beat the heart; commits the session."""
        job = self.job
        job.done = done
        if total is not None:
            job.total = total
        if errors is not None:
            job.errors = errors
        if message is not None:
            job.message = message
        job.heartbeat_at = utcnow()
        db.session.commit()

    def add_file(self, name: str, content_type: str, data: bytes | None = None,
                 source: str | os.PathLike | None = None) -> JobFile:
        """Keep a file the job produced, from bytes or by moving a finished file in."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"
        folder = files_dir() / str(self.job.id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / safe
        if source is not None:
            shutil.move(os.fspath(source), target)
        else:
            target.write_bytes(data or b"")
        row = JobFile(job=self.job, name=safe, content_type=content_type, size=target.stat().st_size,
                      path=f"{self.job.id}/{safe}")
        db.session.add(row)
        db.session.flush()
        return row


def create_job(actor, kind: str, params: dict[str, Any] | None = None, *, title: str = "",
               unit_id: int | None = None) -> Job:
    """A queued job; the caller commits, then calls submit()."""
    if kind not in HANDLERS:
        raise ServiceError(f"Unknown kind of job: {kind}.")
    job = Job(kind=kind, title=title or kind, params=params or {}, unit_id=unit_id,
              created_by_id=getattr(actor, "id", None), state="queued")
    db.session.add(job)
    db.session.flush()
    return job


def run(job_id: int) -> Job:
    """Run one job to the end in the current thread and app context."""
    # Claimed by one UPDATE: two processes never both start it, and on SQLite a transaction
    # that opens with a write waits for another writer (one that read first fails at once).
    now = utcnow()
    claimed = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state.in_(("queued", "interrupted")))
        .values(state="running", started_at=now, heartbeat_at=now, finished_at=None, message="")
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    job = db.session.get(Job, job_id)
    if not claimed:
        return job
    try:
        result = HANDLERS[job.kind](JobContext(job))
    except ServiceError as exc:
        db.session.rollback()
        _finish(job_id, "failed", exc.message)
    except Exception as exc:  # a bug or an outage: keep the message, log the trace
        log.exception("job %s (%s) failed", job_id, job.kind)
        db.session.rollback()
        _finish(job_id, "failed", f"Unexpected error: {exc}")
    else:
        _finish(job_id, "succeeded", None, result)
    return db.session.get(Job, job_id)


def _finish(job_id: int, state: str, message: str | None, result: dict | None = None) -> None:
    values: dict[str, Any] = {"state": state, "finished_at": utcnow(), "heartbeat_at": utcnow()}
    if message is not None:
        values["message"] = message
    if result is not None:
        values["result"] = result
    # One UPDATE (not read-then-write), for the same SQLite reason as in run().
    db.session.execute(update(Job).where(Job.id == job_id).values(**values)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _run_in_app(app: Flask, job_id: int) -> None:
    with app.app_context():
        try:
            run(job_id)
        finally:
            db.session.remove()


def submit(job: Job) -> None:
    """Start a committed job: inline when JOBS_RUN_INLINE (tests, CLI), else in a worker thread."""
    app = current_app._get_current_object()
    if app.config.get("JOBS_RUN_INLINE"):
        run(job.id)
        return
    executor = _executors.get(id(app))
    if executor is None:
        executor = _executors[id(app)] = ThreadPoolExecutor(
            max_workers=app.config.get("JOBS_WORKERS", 2), thread_name_prefix="muster-job"
        )
    executor.submit(_run_in_app, app, job.id)


def mark_stale_interrupted() -> int:
    """Jobs whose process stopped beating are interrupted; returns how many were marked."""
    cutoff = utcnow() - timedelta(seconds=current_app.config.get("JOB_STALE_SECONDS", 120))
    result = db.session.execute(
        update(Job)
        .where(Job.state.in_(("queued", "running")))
        .where(or_(Job.heartbeat_at < cutoff, Job.heartbeat_at.is_(None) & (Job.created_at < cutoff)))
        .values(state="interrupted", finished_at=utcnow(),
                message="Interrupted: the process running it stopped. Start it again to finish.")
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def visible_jobs(user):
    """Jobs a user may see: their own, or all of them for global report readers."""
    from app.security import can

    stmt = select(Job).order_by(Job.id.desc())
    if can(user, "reports.read"):
        return stmt
    return stmt.where(Job.created_by_id == user.id)


def file_path(row: JobFile) -> Path:
    return files_dir() / row.path

"""Background jobs: long console and API work, run by `flask worker`, with progress.

Usage::

    @jobs.handler("members.import")
    def run_import(ctx: jobs.JobContext) -> dict:
        for batch in ...:
            ...write the batch...
            ctx.progress(done, total, errors=n)   # commits the batch with the heartbeat
        ctx.add_file("errors.csv", "text/csv", data)
        return {"created": 10}          # stored as job.result

    job = jobs.create_job(current_user, "members.import", {"path": ...}, title="Import members.csv")
    db.session.commit()
    jobs.submit(job)                    # enqueued; a worker runs it (app/tasks/jobs.py)

The ``jobs`` row is the record people see; the queue (app/queue.py) only
carries "run job N" to a worker. Web processes never run jobs.

Exactly one runner at a time: ``run`` claims the row with a compare-and-set
(queued -> running, writing its owner id and a lease expiry), so a duplicate
enqueue, a Huey retry or a second consumer finds nothing to claim and does
nothing. ``JobContext.progress`` is the heartbeat: it extends the lease and
commits the handler's work *only while the lease is still this runner's*; a
runner whose lease was taken (it stalled past the lease and the job was
re-queued) gets ``LeaseLost`` at its next heartbeat, its uncommitted work is
rolled back, and it stops. So call ``progress()`` between units of work, at
least once per JOB_STALE_SECONDS, never in the middle of one.

A worker killed with SIGKILL, or a lost machine, stops beating. The reaper
(``reap``: a periodic task, and once when a worker starts) puts a job whose
lease ran out back on the queue, up to JOB_MAX_ATTEMPTS claims, then marks it
failed with the reason; nobody has to press anything. Handlers resume from
what they committed (their params or result), so a second run does not redo
committed work.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from flask import current_app
from sqlalchemy import and_, or_, select, update

from app.extensions import db
from app.models import Job, JobFile
from app.models.base import utcnow
from app.services import storage
from app.services.errors import ServiceError

log = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[["JobContext"], dict | None]] = {}


class LeaseLost(Exception):
    """This runner no longer holds the job (it was re-queued and maybe claimed again): stop, write nothing."""


def handler(kind: str):
    """Register the function that runs jobs of ``kind``."""

    def register(fn):
        HANDLERS[kind] = fn
        return fn

    return register


def files_dir() -> Path:
    """A folder on this machine for a file a job is still writing; ``add_file`` moves it into the storage."""
    return storage.scratch_dir("jobs")


class JobContext:
    """What a running handler gets: its job's parameters and ways to report back."""

    def __init__(self, job: Job, owner: str | None = None) -> None:
        self.job = job
        self.params: dict[str, Any] = dict(job.params or {})
        self.owner = owner if owner is not None else job.lease_owner

    def progress(self, done: int, total: int | None = None, *, errors: int | None = None,
                 message: str | None = None) -> None:
        """Record progress and beat the heart; commits the session, or raises LeaseLost (rolled back)."""
        job = self.job
        now = utcnow()
        values: dict[str, Any] = {"done": done, "heartbeat_at": now, "lease_expires_at": lease_until(now)}
        if total is not None:
            values["total"] = total
        if errors is not None:
            values["errors"] = errors
        if message is not None:
            values["message"] = message
        db.session.flush()  # the handler's pending work goes in the same transaction as the check
        beat = db.session.execute(
            update(Job).where(Job.id == job.id, Job.state == "running", Job.lease_owner == self.owner)
            .values(**values).execution_options(synchronize_session=False)
        ).rowcount
        if not beat:
            db.session.rollback()
            raise LeaseLost(f"job {job.id}: the lease of {self.owner} was taken")
        db.session.commit()

    def add_file(self, name: str, content_type: str, data: bytes | None = None,
                 source: str | os.PathLike | None = None) -> JobFile:
        """Keep a file the job produced, from bytes or by moving a finished file in (``source``: used up).

        It goes to the file storage as ``jobs/<job id>/<name>``, so any node can
        offer it for download. A job run again (after its worker died) that
        adds a file of the same name replaces it instead of listing it twice.
        """
        safe = storage.safe_name(name)
        key = f"jobs/{self.job.id}/{safe}"
        if source is not None:
            stored = storage.save(key, source, move=True, content_type=content_type)
        else:
            stored = storage.save(key, io.BytesIO(data or b""), content_type=content_type)
        row = db.session.scalar(select(JobFile).where(JobFile.job_id == self.job.id, JobFile.name == safe))
        if row is None:
            storage.discard_on_rollback(key)  # no row would name it
            row = JobFile(job=self.job, name=safe, path=key)
            db.session.add(row)
        row.content_type, row.size, row.path = content_type, stored.size, key
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


def lease_until(now: datetime) -> datetime:
    """When a lease taken or extended ``now`` runs out (JOB_STALE_SECONDS later)."""
    return now + timedelta(seconds=current_app.config.get("JOB_STALE_SECONDS", 120))


def runner_id() -> str:
    """Who is running a job: host, process, thread, and a nonce (a recycled pid is someone else)."""
    host = socket.gethostname()[:60]
    return f"{host}:{os.getpid()}:{threading.get_ident()}:{secrets.token_hex(4)}"


def claim(job_id: int, owner: str) -> bool:
    """Take a queued job for ``owner`` by compare-and-set; False when someone else has it or it is over."""
    # One UPDATE: two runners never both win, and on SQLite a transaction that opens with a
    # write waits for another writer (one that read first would fail at once).
    now = utcnow()
    claimed = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state.in_(("queued", "interrupted")))
        .values(state="running", lease_owner=owner, lease_expires_at=lease_until(now),
                attempts=Job.attempts + 1, started_at=now, heartbeat_at=now, finished_at=None, message="")
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return bool(claimed)


def run(job_id: int) -> Job | None:
    """Run one job to the end in the current thread and app context, if it can be claimed.

    Safe to call any number of times, from any number of workers: only the
    claim's winner runs the handler; the others return at once.
    """
    owner = runner_id()
    if not claim(job_id, owner):
        return db.session.get(Job, job_id)
    job = db.session.get(Job, job_id)
    kind = job.kind  # read now: after a failed flush the session can load nothing until rolled back
    fn = HANDLERS.get(kind)
    if fn is None:
        _finish(job_id, owner, "failed", f"This worker cannot run jobs of kind {kind!r}.")
        return db.session.get(Job, job_id)
    try:
        result = fn(JobContext(job, owner))
    except LeaseLost:
        db.session.rollback()
        log.warning("job %s (%s): lease lost to the reaper; stopped without finishing", job_id, kind)
        return db.session.get(Job, job_id)
    except ServiceError as exc:
        db.session.rollback()
        _finish(job_id, owner, "failed", exc.message)
    except Exception as exc:  # a bug or an outage: keep the message, log the trace
        db.session.rollback()
        log.exception("job %s (%s) failed", job_id, kind)
        _finish(job_id, owner, "failed", f"Unexpected error: {exc}")
    else:
        _finish(job_id, owner, "succeeded", None, result)
    return db.session.get(Job, job_id)


def _finish(job_id: int, owner: str, state: str, message: str | None, result: dict | None = None) -> bool:
    """End the job, with the handler's last work, only if ``owner`` still holds it."""
    now = utcnow()
    values: dict[str, Any] = {"state": state, "finished_at": now, "heartbeat_at": now, "lease_expires_at": None}
    if message is not None:
        values["message"] = message
    if result is not None:
        values["result"] = result
    db.session.flush()
    # One UPDATE (not read-then-write), for the same SQLite reason as in claim().
    finished = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running", Job.lease_owner == owner)
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount
    if not finished:
        db.session.rollback()
        log.warning("job %s: lease lost before it finished; its last step is discarded", job_id)
        return False
    db.session.commit()
    return True


def submit(job: Job) -> None:
    """Put a committed job on the queue (the caller committed: the worker must see the row)."""
    enqueue(job.id)


def enqueue(job_id: int) -> None:
    """Ask a worker to run job ``job_id``; enqueuing twice is harmless (one claim wins)."""
    from app.tasks.jobs import run_job

    run_job(job_id)


def requeue(job: Job) -> Job:
    """"Run again" for a failed or interrupted job: queued, with a fresh count of attempts (flushed)."""
    if job.state not in ("failed", "interrupted"):
        raise ServiceError("Only a job that failed or was interrupted can be started again.", status=409)
    job.state, job.message, job.attempts, job.finished_at = "queued", "", 0, None
    job.lease_owner = job.lease_expires_at = None
    db.session.flush()
    return job


def _lease_ran_out(now: datetime):
    """Running jobs nobody is beating for: the lease passed (or, from before leases, the heartbeat is old)."""
    cutoff = now - timedelta(seconds=current_app.config.get("JOB_STALE_SECONDS", 120))
    legacy = and_(Job.lease_expires_at.is_(None),
                  or_(Job.heartbeat_at < cutoff, Job.heartbeat_at.is_(None) & (Job.created_at < cutoff)))
    return and_(Job.state == "running", or_(Job.lease_expires_at < now, legacy))


def reap() -> dict[str, list[int]]:
    """Re-queue running jobs whose worker stopped beating; fail those out of attempts. Commits, then enqueues.

    Each job is taken by its own compare-and-set (same owner, lease still
    passed), so two reapers, or a worker that beats at the last moment, never
    lose or double a job; enqueuing a job twice is harmless anyway.
    """
    now = utcnow()
    limit = max(1, int(current_app.config.get("JOB_MAX_ATTEMPTS", 3)))
    stale = db.session.execute(select(Job.id, Job.lease_owner, Job.attempts).where(_lease_ran_out(now))).all()
    db.session.rollback()  # end the read: each change below is a short write of its own
    done: dict[str, list[int]] = {"requeued": [], "failed": []}
    for job_id, owner, attempts in stale:
        owner_match = Job.lease_owner.is_(None) if owner is None else Job.lease_owner == owner
        if attempts >= limit:
            outcome = "failed"
            values: dict[str, Any] = {
                "state": "failed", "finished_at": now, "lease_expires_at": None,
                "message": (f"Stopped: the worker running it stopped responding, {attempts} "
                            f"time{'s' if attempts != 1 else ''} (the limit is {limit}). Last run by {owner or '?'}."),
            }
        else:
            outcome = "requeued"
            values = {"state": "queued", "lease_owner": None, "lease_expires_at": None,
                      "message": f"The worker running it stopped responding; queued again "
                                 f"(attempt {attempts + 1} of {limit})."}
        changed = db.session.execute(
            update(Job).where(Job.id == job_id, owner_match, _lease_ran_out(now)).values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if changed:
            done[outcome].append(job_id)
            log.warning("job %s: worker %s stopped beating; %s", job_id, owner, outcome)
    for job_id in done["requeued"]:
        enqueue(job_id)
    return done


def enqueue_waiting() -> list[int]:
    """Enqueue every queued job again (a worker starting): covers a queue store that was lost or
    a job committed while the queue was unreachable. Duplicates are no-ops (one claim wins)."""
    ids = list(db.session.scalars(select(Job.id).where(Job.state == "queued").order_by(Job.id)))
    db.session.rollback()
    for job_id in ids:
        enqueue(job_id)
    return ids


def visible_jobs(user):
    """Jobs a user may see: their own, or all of them for global report readers."""
    from app.security import can

    stmt = select(Job).order_by(Job.id.desc())
    if can(user, "reports.read"):
        return stmt
    return stmt.where(Job.created_by_id == user.id)


def open_file(row: JobFile) -> storage.StoredStream:
    """A job's file as a stream, for a download whose access was checked (``StoredFileMissing``: a 404)."""
    return storage.open(row.path)

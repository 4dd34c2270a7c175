"""One import end to end (console jobs and the CLI), and the two background jobs of the console.

``import_file`` checks or imports a file and records it in the audit log;
the jobs ``members.import_preview`` (check every row, write nothing, keep an
error report) and ``members.import`` (write batch by batch, resumable) run it
for an upload.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from app.database import take_write_lock
from app.extensions import db
from app.models import AuditEntry, ImportUpload, Job, User
from app.services import audit, jobs
from app.services.errors import ServiceError
from app.services.imports.reading import FileInfo, count_rows
from app.services.imports.uploads import delete_upload_file, local_upload, settings_for, upload_exists, upload_info, \
    work_dir
from app.services.imports.validation import MODES, ImportSettings
from app.services.imports.writing import Importer, ImportResult, Progress


def import_file(actor, path, info: FileInfo, settings: ImportSettings, *, filename: str = "",
                dry_run: bool = False, on_batch: Callable[[Progress], None] | None = None,
                resume: dict[str, Any] | None = None, total: int | None = None,
                report_path=None) -> ImportResult:
    """Check (``dry_run``) or import a file and record the import in the audit log.

    When writing, ``on_batch`` must commit: it is called after every batch
    (and in all-or-nothing mode after every checked batch of the first pass).
    The audit entry of a write is flushed, for the caller's final commit.
    """
    importer = Importer(actor, path, info, settings, filename=filename, report_path=report_path)
    result = importer.run(write=not dry_run, on_batch=on_batch, resume=resume, total=total)
    if not dry_run:
        take_write_lock()  # the last batch was committed: this transaction only writes the audit entry
        record_import(_ActorRef(importer.actor_id), importer.filename, settings, result)
    return result


@dataclass(frozen=True)
class _ActorRef:
    """The actor by id only (the user object may be expired after a batch commit; loading it would read)."""

    id: int | None


def record_import(actor, filename: str, settings: ImportSettings, result: ImportResult) -> AuditEntry:
    counts = result.summary()
    if result.refused:
        summary = (f"Import of {filename} refused (all or nothing): {result.bad:,} of {result.rows:,} rows "
                   "have problems; nothing was written")
    else:
        summary = (f"Imported {filename}: {counts['new']:,} new, {counts['updated']:,} updated, "
                   f"{counts['unchanged']:,} unchanged, {result.bad:,} rows not imported")
    return audit.record(actor, "members.import", None, summary=summary, unit_id=result.unit_id,
                        changes={**counts, "file": filename, "mode": settings.mode, "written": not result.refused})



def start_preview(actor, upload: ImportUpload) -> Job:
    """A background job checking every row (nothing is written); the caller commits, then submits it."""
    job = jobs.create_job(actor, "members.import_preview", {"upload_id": upload.id},
                          title=f"Check {upload.filename}"[:200], unit_id=upload.options.get("default_unit_id"))
    upload.preview_job_id = job.id
    db.session.flush()
    return job


def start_import(actor, upload: ImportUpload, mode: str) -> Job:
    """A background job importing the file; the caller commits, then submits it."""
    if mode not in MODES:
        raise ServiceError("Choose how to import: the valid rows, or all or nothing.", field="mode")
    if not upload.mapping:
        raise ServiceError("Choose the columns first.", field="mapping")
    if not upload_exists(upload):
        raise ServiceError("The uploaded file is gone (it was imported or expired); upload it again.")
    if upload.import_job_id is not None:
        job = db.session.get(Job, upload.import_job_id)
        if job is not None and job.state in ("queued", "running", "succeeded"):
            raise ServiceError("This file is already being imported.", status=409)
    job = jobs.create_job(actor, "members.import", {"upload_id": upload.id, "mode": mode},
                          title=f"Import {upload.filename}"[:200], unit_id=upload.options.get("default_unit_id"))
    upload.import_job_id = job.id
    db.session.flush()
    return job


def _job_actor(ctx: jobs.JobContext):
    return db.session.get(User, ctx.job.created_by_id) if ctx.job.created_by_id else None


def _job_upload(ctx: jobs.JobContext) -> ImportUpload:
    upload = db.session.get(ImportUpload, ctx.params.get("upload_id"))
    if upload is None or not upload_exists(upload):
        raise ServiceError("The uploaded file is gone (it was imported or expired); upload it again.")
    return upload


def _report_file(ctx: jobs.JobContext, result: ImportResult, filename: str) -> None:
    if result.report_path and os.path.exists(result.report_path):
        if result.bad:
            stem = os.path.splitext(filename)[0][:80] or "import"
            ctx.add_file(f"{stem}-errors.csv", "text/csv", source=result.report_path)
        else:
            os.unlink(result.report_path)


@jobs.handler("members.import_preview")
def run_preview_job(ctx: jobs.JobContext) -> dict:
    """Check every row of an upload and count what an import would do; keep an error report."""
    upload = _job_upload(ctx)
    with local_upload(upload) as path:  # fetched from the storage when it is elsewhere
        actor = _job_actor(ctx)
        settings = settings_for(upload)
        info, filename = upload_info(upload), upload.filename
        total = count_rows(path, info)
        report = work_dir() / f"preview-{ctx.job.id}-{uuid.uuid4().hex[:8]}.csv"

        def progress(done: int, total: int | None, errors: int, message: str | None = None) -> None:
            db.session.commit()  # end the read transaction: the progress write then waits for SQLite's lock
            take_write_lock()
            ctx.progress(done, total, errors=errors, message=message)

        progress(0, total, 0, "Checking the rows…")
        result = import_file(actor, path, info, settings, filename=filename, dry_run=True, total=total,
                             report_path=report, on_batch=lambda p: progress(p.done, p.total, p.bad))
        db.session.commit()
        take_write_lock()
        upload.row_count = result.rows
        _report_file(ctx, result, filename)
        ctx.progress(result.rows, result.rows, errors=result.bad, message="")
        return {**result.summary(), "bad_rows": [list(r) for r in result.bad_rows]}


@jobs.handler("members.import")
def run_import_job(ctx: jobs.JobContext) -> dict:
    """Import an upload batch by batch; resumes after an interruption where it stopped."""
    upload = _job_upload(ctx)
    with local_upload(upload) as path:  # fetched from the storage when it is elsewhere
        actor = _job_actor(ctx)
        settings = settings_for(upload, ctx.params.get("mode", "valid"))
        resume = (ctx.job.result or {}).get("_resume")
        info = upload_info(upload)
        total = upload.row_count if upload.row_count is not None else count_rows(path, info)
        report = work_dir() / f"import-{ctx.job.id}-{uuid.uuid4().hex[:8]}.csv"

        def on_batch(progress: Progress) -> None:
            if progress.phase == "write":
                # Saved in the batch's own transaction: a resumed run skips exactly what is committed.
                ctx.job.result = {"_resume": progress.resume_state()}
            else:
                db.session.commit()  # the all-or-nothing check only read: end that transaction first
                take_write_lock()
            ctx.progress(progress.done, progress.total, errors=progress.bad, message=progress.message)

        db.session.commit()  # each batch then starts a transaction of its own
        result = import_file(actor, path, info, settings, filename=upload.filename, on_batch=on_batch,
                             resume=resume, total=total, report_path=report)
        # Still in the transaction of the audit entry, which holds the write lock.
        _report_file(ctx, result, upload.filename)
        delete_upload_file(upload)
        if result.refused:
            ctx.job.result = result.summary()
            db.session.commit()  # keep the audit entry and the error report with the failed job
            raise ServiceError(f"Nothing was imported: {result.bad:,} of {result.rows:,} rows have problems "
                               "(see the error report). Fix them and import the file again.")
        ctx.progress(result.rows, result.rows, errors=result.bad, message="")
        return result.summary()



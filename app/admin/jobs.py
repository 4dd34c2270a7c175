"""Console pages for background jobs: a list, a page with a live progress bar, file downloads.

The progress bar polls a small fragment with HTMX (vendored) once a second
until the job has finished. The pages only read: `flask worker` runs the jobs
and its reaper re-queues those whose worker died (app/services/jobs.py).
"""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from app.admin.base import SecureView, page_arg
from app.downloads import send_stream
from app.extensions import db
from app.models import Job, JobFile
from app.services import jobs

PAGE_SIZE = 25


def _visible_job_or_404(job_id: int) -> Job:
    job = db.session.scalar(jobs.visible_jobs(current_user).where(Job.id == job_id))
    if job is None:
        abort(404)
    return job


class JobsView(SecureView):
    """Any staff member sees their own jobs; global report readers see all."""

    permission = None

    @expose("/")
    def index(self):
        page = page_arg()
        stmt = jobs.visible_jobs(current_user)
        total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
        rows = db.session.scalars(stmt.limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
        return self.render("admin/jobs/list.html", rows=rows, page=page, total=total, page_size=PAGE_SIZE)

    @expose("/<pk:job_id>")
    def details(self, job_id: int):
        return self.render("admin/jobs/details.html", job=_visible_job_or_404(job_id), form=FlaskForm())

    @expose("/<pk:job_id>/progress")
    def progress(self, job_id: int):
        return self.render("admin/jobs/_progress.html", job=_visible_job_or_404(job_id))

    @expose("/<pk:job_id>/files/<pk:file_id>")
    def download(self, job_id: int, file_id: int):
        job = _visible_job_or_404(job_id)
        row = db.session.scalar(select(JobFile).where(JobFile.id == file_id, JobFile.job_id == job.id))
        if row is None:
            abort(404)
        return send_stream(jobs.open_file(row), filename=row.name, content_type=row.content_type)

    @expose("/<pk:job_id>/retry", methods=("POST",))
    def retry(self, job_id: int):
        """"Run again" for a job that failed (the reaper re-queues a dead worker's jobs by itself)."""
        job = _visible_job_or_404(job_id)
        if FlaskForm().validate_on_submit() and job.state in ("failed", "interrupted"):
            jobs.requeue(job)
            db.session.commit()
            jobs.submit(job)
            flash("Started again; work already done is not repeated.", "info")
        return redirect(url_for(".details", job_id=job.id))


def register(admin) -> None:
    admin.add_view(JobsView(name="Background jobs", endpoint="jobs", url="/admin/jobs"))

"""Tasks that run background jobs (the ``jobs`` table is what people see; Huey only executes).

``run_job`` takes a job id, never a Job: the row is read fresh by whoever runs
it. It is safe to enqueue twice, to retry and to run on two consumers at once:
``jobs.run`` claims the row with a compare-and-set and the loser does nothing.
``reap_jobs`` puts jobs whose worker died back on the queue (app/services/jobs.py).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from flask import has_app_context
from huey import crontab

from app.extensions import db
from app.queue import huey, task_app


@contextlib.contextmanager
def app_context() -> Iterator[None]:
    """The app context a task runs in.

    Inside a caller's context (immediate mode: tests, a CLI command) the task
    uses it, and so the caller's session; in a consumer it pushes one of the
    process's app and removes the session afterwards, so no connection or
    half-finished transaction leaks into the thread's next task.
    """
    if has_app_context():
        yield
        return
    with task_app().app_context():
        try:
            yield
        finally:
            db.session.remove()


# Huey's own retries cover a failure before the job is claimed (the database unreachable for a
# moment); once claimed, the job's lease and the reaper take over (a retry is then a no-op).
@huey.task(retries=3, retry_delay=10, name="jobs.run")
def run_job(job_id: int) -> None:
    """Run one job to its end, if nobody else holds it."""
    from app.services import jobs

    with app_context():
        jobs.run(job_id)


@huey.periodic_task(crontab(minute="*"), name="jobs.reap")
def reap_jobs() -> None:
    """Every minute: re-queue jobs whose worker stopped beating, or fail them after too many tries."""
    from app.services import jobs

    with app_context():
        jobs.reap()

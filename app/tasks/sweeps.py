"""The task that runs one scheduled sweep in a worker (queued by ``flask scheduler run``).

It takes the run's id, never a sweep or a function: the run row (written
``queued`` by the scheduler) says which sweep, and the worker resolves its
function by name at run time. The sweep's work and the run's outcome commit
together, once. Delivered twice, or to two workers, it runs once: ``claim``
holds the row, and the second finds it already finished.

A failing sweep is recorded as a failed run with its error, not retried:
the next firing runs it again anyway, and a sweep is built to be run late.
"""

from __future__ import annotations

import logging

from app.extensions import db
from app.queue import huey
from app.tasks.jobs import app_context

log = logging.getLogger(__name__)


@huey.task(name="scheduler.sweep")
def run_sweep(run_id: int) -> None:
    from app.scheduler import runs

    with app_context():
        run = runs.claim(run_id)
        if run is None:  # finished by another delivery, or gone
            db.session.rollback()
            return
        runs.execute(run, ran_by=runs.process_name())
        status, name, error = run.status, run.sweep, run.error
        db.session.commit()
    if status == "failed":
        log.error("sweep %s (run %s) failed: %s", name, run_id, (error or "").splitlines()[0] if error else "")
    else:
        log.info("sweep %s (run %s) done", name, run_id)

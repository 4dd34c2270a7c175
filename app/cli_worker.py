"""`flask worker`: the queue consumer, the one process kind that runs background work.

- ``flask worker``: a Huey consumer on MUSTER_WORKER_THREADS threads (``--workers N``)
  reading the queue that MUSTER_QUEUE_URL names (app/queue.py);
- before it consumes, it runs the reaper once (jobs whose worker died are queued
  again or failed) and enqueues every job still waiting, so a queue store that was
  lost, or a job committed while the queue was unreachable, still runs.

Periodic tasks (the reaper, every minute) run only in a worker started with
``--periodic`` (the default, from MUSTER_WORKER_PERIODIC=1). With workers on
several machines, start one with ``--periodic`` and the others with
``--no-periodic`` (or MUSTER_WORKER_PERIODIC=0). Two by mistake do no harm: the
reaper takes each job with a compare-and-set, so a job is re-queued once.

Ctrl-C (SIGINT) stops gracefully: running jobs finish first. SIGTERM stops at
once; the jobs it cut off are re-queued by the reaper when their lease runs out.
"""

from __future__ import annotations

import logging

import click
from flask import Flask, current_app

from app import queue
from app.extensions import db


def register(app: Flask) -> None:
    @app.cli.command("worker")
    @click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
                  help="Threads running tasks (default: MUSTER_WORKER_THREADS, 2).")
    @click.option("--periodic/--no-periodic", default=None,
                  help="Run the periodic tasks (the job reaper). Default: MUSTER_WORKER_PERIODIC (on). "
                       "Use --no-periodic on all workers but one.")
    def worker_command(workers: int | None, periodic: bool | None) -> None:
        """Run background jobs and mail delivery from the queue until stopped (Ctrl-C)."""
        from app.services import jobs

        app = current_app._get_current_object()
        if queue.huey.immediate:
            raise click.ClickException("MUSTER_QUEUE_IMMEDIATE is on: tasks run where they are enqueued, "
                                       "there is nothing for a worker to consume.")
        workers = workers or app.config.get("WORKER_THREADS", 2)
        periodic = app.config.get("WORKER_PERIODIC", True) if periodic is None else periodic
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        queue.bind_app(app)  # tasks push a context of this app (one per consumer process)

        reaped = jobs.reap()
        waiting = jobs.enqueue_waiting()
        db.session.remove()
        click.echo(f"Muster worker: queue {queue.describe()}, {workers} thread{'s' if workers != 1 else ''}, "
                   f"periodic tasks {'on' if periodic else 'off'}; re-queued {len(reaped['requeued'])}, "
                   f"failed {len(reaped['failed'])}, waiting {len(waiting)}.")
        queue.create_consumer(workers, periodic=periodic).run()

"""`flask scheduler run` (the scheduler process) and `flask jobs list` / `flask jobs run NAME` (its sweeps).

- ``flask scheduler run``: a BlockingScheduler in this process until Ctrl-C or
  SIGTERM (app/scheduler/process.py). Start one per installation, or two on
  two machines: only the leader schedules, the other stands by and takes over
  when the leader stops or dies. It only queues: ``flask worker`` runs the sweeps.
- ``flask jobs list``: each sweep with its schedule, last run and outcome, next run.
- ``flask jobs run NAME``: run one sweep now, in this process (no worker
  needed), and record the run; the exit status is 1 when the sweep failed.
"""

from __future__ import annotations

import logging

import click
from flask import Flask, current_app

from app.extensions import db
from app.models.base import utcnow


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def register(app: Flask) -> None:
    scheduler = click.Group("scheduler", help="The scheduler process (the sweeps on their schedule).")
    app.cli.add_command(scheduler)

    @scheduler.command("run")
    def scheduler_run() -> None:
        """Fire the sweeps on their schedule (only the leading scheduler does; others stand by)."""
        from app.scheduler.process import SchedulerProcess

        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        SchedulerProcess(current_app._get_current_object()).run()

    jobs = click.Group("jobs", help="The scheduled sweeps: list them, run one now.")
    app.cli.add_command(jobs)

    @jobs.command("list")
    def jobs_list() -> None:
        """Each sweep: schedule, last run, outcome, next run."""
        from app.scheduler import runs

        now = utcnow()
        lease = runs.leader_lease()
        if lease is not None and lease.expires_at >= now:
            click.echo(f"Scheduler: led by {lease.owner} since {_when(lease.acquired_at)}.")
        else:
            click.echo("Scheduler: not running (start `flask scheduler run`).")
        for item in runs.overview(now):
            last = item["last"]
            if last is None:
                outcome = "never run"
            else:
                outcome = f"{last.status} ({last.triggered_by}) at {_when(last.finished_at or last.queued_at)}"
                if last.status == "ok" and last.counts:
                    outcome += " " + ", ".join(f"{k}={v}" for k, v in sorted(last.counts.items()))
                elif last.status == "failed" and last.error:
                    outcome += ": " + last.error.splitlines()[0]
            click.echo(f"{item['name']}\n  schedule: {item['schedule']}\n  last run: {outcome}\n"
                       f"  next run: {_when(item['next_run'])}")
        db.session.rollback()

    @jobs.command("run")
    @click.argument("name")
    def jobs_run(name: str) -> None:
        """Run the sweep NAME now, in this process, and record the run."""
        from app.scheduler import registry, runs

        try:
            run = runs.run_now(name, triggered_by="cli")
        except registry.UnknownSweep as exc:
            db.session.rollback()
            raise click.UsageError(str(exc)) from None
        status, counts, error, run_id = run.status, dict(run.counts or {}), run.error, run.id
        db.session.commit()
        if status == "failed":
            click.echo(f"{name} failed (run {run_id}):\n{error}", err=True)
            raise SystemExit(1)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "nothing to do"
        click.echo(f"{name}: ok (run {run_id}): {shown}")

"""The process of ``flask scheduler run``: a BlockingScheduler that, while this process leads, fires the sweeps.

Every process runs one job of its own, ``scheduler.leader``, three times per
lease: the leader confirms (renews) its lock; a standby tries to take it. On
becoming leader a process first catches up (one run per sweep whose schedule
fired since its last recorded run, see ``runs.missed_firings``), then adds one
job per sweep with a fixed id (the sweep's name), ``replace_existing``,
``coalesce`` (firings piled up while busy become one), ``max_instances=1``
and a misfire grace of MUSTER_SCHEDULER_MISFIRE_HOURS. On losing the lock (a
connection lost, a lease not renewed in time) it removes them and is a
standby again.

A firing writes a ``queued`` run row, commits, and puts ``scheduler.sweep``
with the run's id on the queue: the worker runs it. The leader confirms its
lock right before writing the row, so a process that lost the lead a moment
ago does not queue work. Should the queue be unreachable, the run is marked
failed with the reason; the next firing tries again.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from app.extensions import db
from app.models.base import utcnow
from app.models.scheduler import SchedulerRun
from app.scheduler import registry, runs
from app.scheduler.leader import Leader

log = logging.getLogger("app.scheduler")
LEADER_JOB = "scheduler.leader"


class SchedulerProcess:
    def __init__(self, app: Flask, leader: Leader | None = None) -> None:
        self.app = app
        self.lease_seconds = float(app.config.get("SCHEDULER_LEASE_SECONDS", 30))
        self.grace = timedelta(hours=float(app.config.get("SCHEDULER_MISFIRE_HOURS", 72)))
        self.leader = leader or Leader.for_url(app.config["SQLALCHEMY_DATABASE_URI"], self.lease_seconds,
                                               runs.process_name())
        self.leading = False
        self._said_standby = False
        self._lock = threading.RLock()  # one election call at a time (the leader job and the firings)
        self.scheduler = BlockingScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": int(self.grace.total_seconds()),
        })

    # --- the process ---------------------------------------------------------------------------

    def run(self) -> None:
        """Until SIGINT/SIGTERM: elect, schedule while leading. Gives the lead up on a clean stop."""
        with self.app.app_context():
            names = registry.names()
        log.info("scheduler %s: %d sweeps (%s); leader election by %s, lease %ss", self.leader.owner,
                 len(names), ", ".join(names), self.leader.kind, self.lease_seconds)
        self.scheduler.add_job(self.check, IntervalTrigger(seconds=max(0.2, self.lease_seconds / 3)),
                               id=LEADER_JOB, replace_existing=True, misfire_grace_time=None)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        self.check()
        try:
            self.scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            with self._lock:
                if self.leading:
                    self.leader.release()
                    log.info("scheduler %s: stopped; gave up the lead", self.leader.owner)
                self.leading = False
                self.leader.close()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("scheduler %s: signal %s, stopping", self.leader.owner, signum)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    # --- the election ---------------------------------------------------------------------------

    def check(self) -> None:
        """The leader job: confirm the lead, or try to take it; (un)schedule the sweeps on a change."""
        with self._lock:
            if self.leading:
                if self.leader.confirm():
                    return
                self.leading = False
                self._unschedule()
                self._said_standby = True
                log.warning("scheduler %s: lost the lead; standing by", self.leader.owner)
                return  # ask again at the next check, not at once: a standby may take over meanwhile
            if self.leader.acquire():
                self._said_standby = False
                self.leading = True
                log.info("scheduler %s: leader now (%s); scheduling the sweeps", self.leader.owner, self.leader.kind)
                self.catch_up()
                self._schedule()
            elif not self._said_standby:
                self._said_standby = True
                log.info("scheduler %s: standby (another scheduler leads); will take over if it stops",
                         self.leader.owner)

    def _schedule(self) -> None:
        with self.app.app_context():
            sweeps = registry.sweeps()
        for sweep in sweeps:
            job = self.scheduler.add_job(self.fire, registry.trigger_of(sweep), args=[sweep.name], id=sweep.name,
                                         name=sweep.name, replace_existing=True, coalesce=True, max_instances=1,
                                         misfire_grace_time=int(self.grace.total_seconds()))
            log.info("scheduler: %s on %s, next at %s", sweep.name, registry.schedule_text(sweep),
                     getattr(job, "next_run_time", None) or registry.next_run(sweep, utcnow()))

    def _unschedule(self) -> None:
        for job in self.scheduler.get_jobs():
            if job.id != LEADER_JOB:
                job.remove()

    # --- firing -----------------------------------------------------------------------------------

    def catch_up(self, now: datetime | None = None) -> list[int]:
        """Queue one run of each sweep whose schedule fired since its last recorded run (within the grace)."""
        with self.app.app_context():
            missed = runs.missed_firings(now or utcnow(), self.grace)
            db.session.remove()
        queued = []
        for sweep, due in missed:
            log.info("scheduler: %s missed its firing of %s; catching up once", sweep.name, due.isoformat())
            run_id = self.fire(sweep.name, due_at=due, triggered_by="catch-up")
            if run_id is not None:
                queued.append(run_id)
        return queued

    def _due(self, name: str) -> datetime:
        """The firing being run: APScheduler does not say, so the one of the last second (else now, if late)."""
        now = utcnow()
        try:
            with self.app.app_context():
                due = registry.next_run(registry.get(name), now - timedelta(seconds=1))
        except Exception:
            due = None
        return due if due is not None and due <= now else now

    def fire(self, name: str, *, due_at: datetime | None = None, triggered_by: str = "scheduler") -> int | None:
        """Queue one run of sweep ``name`` if this process still leads; the run's id (None if not queued)."""
        from app.tasks.sweeps import run_sweep

        with self._lock:
            if not self.leading or not self.leader.confirm():
                return None
        with self.app.app_context():
            try:
                run = runs.queue_run(name, due_at=due_at or self._due(name), triggered_by=triggered_by,
                                     scheduled_by=self.leader.owner)
                run_id = run.id
                db.session.commit()
                try:
                    run_sweep(run_id)
                except Exception as exc:
                    log.exception("scheduler: could not queue sweep %s (run %s)", name, run_id)
                    run = db.session.get(SchedulerRun, run_id)
                    if run is not None and run.status == "queued":
                        run.status, run.error, run.finished_at = "failed", f"Could not be queued: {exc}", utcnow()
                        db.session.commit()
                else:
                    log.info("scheduler: queued %s (run %s, %s)", name, run_id, triggered_by)
                return run_id
            except Exception:
                log.exception("scheduler: could not record a run of %s", name)
                db.session.rollback()
                return None
            finally:
                db.session.remove()

"""The record of sweep runs: queue one, run one, find the firings missed while no scheduler ran.

Everything here flushes and never commits; the caller (the scheduler's
firing, the worker's task, ``flask jobs run``) commits once. A run's sweep
works inside a savepoint: when it raises, its work is undone and the run row
(still in the caller's transaction) is marked ``failed`` with the error, so a
failure is recorded in the same single commit as a success would be.

Why catch-up reads this table: the scheduler keeps its jobs in memory, so on
start it knows nothing of the past. The last run queued per sweep says when
the schedule was last followed; if a firing fell between then and now (and
no longer ago than the misfire grace) it was missed, and one run stands for
all the missed ones. Sweeps do everything due at the moment they run, so one
late run does the work of every firing missed.
"""

from __future__ import annotations

import os
import socket
import traceback
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from app.database import lock_row
from app.extensions import db
from app.models.base import utcnow
from app.models.scheduler import RUN_STATUSES, SchedulerLease, SchedulerRun
from app.scheduler import registry
from app.scheduler.sweeps import Sweep
from app.security import authorize_everywhere

READ = "reports.read"
MAX_ERROR_CHARS = 8000


def process_name(prefix: str = "") -> str:
    """``host:pid`` of this process (what ``scheduled_by`` and ``ran_by`` hold), optionally prefixed."""
    return f"{prefix}{socket.gethostname()}:{os.getpid()}"


def queue_run(name: str, *, due_at: datetime, triggered_by: str, scheduled_by: str) -> SchedulerRun:
    """A ``queued`` run of sweep ``name`` (the worker's task finishes it)."""
    run = SchedulerRun(sweep=name, triggered_by=triggered_by, status="queued", due_at=due_at,
                       queued_at=utcnow(), scheduled_by=scheduled_by)
    db.session.add(run)
    db.session.flush()
    return run


def claim(run_id: int) -> SchedulerRun | None:
    """The queued run ``run_id``, held until the transaction ends; None when it is gone or already run.

    The row lock makes a task delivered twice (or to two workers) run the sweep once:
    the second waits for the first's commit, then finds the run finished.
    """
    lock_row(SchedulerRun, run_id)
    run = db.session.get(SchedulerRun, run_id, populate_existing=True)
    return run if run is not None and run.status == "queued" else None


def _checked_counts(sweep: Sweep, counts: Any) -> dict[str, int]:
    if counts is None:
        return {}
    if not isinstance(counts, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                               for k, v in counts.items()):
        raise TypeError(f"Sweep {sweep.name!r} returned {counts!r}; a sweep returns a dict of names to counts.")
    return counts


def execute(run: SchedulerRun, *, ran_by: str) -> SchedulerRun:
    """Run the run's sweep now and record the outcome on the row (ok with counts, or failed with the error)."""
    run.started_at = utcnow()
    run.ran_by = ran_by
    try:
        with db.session.begin_nested():
            sweep = registry.get(run.sweep)
            function = registry.resolve(sweep)
            counts = _checked_counts(sweep, function(run.started_at))
            db.session.flush()
    except Exception as exc:
        run.status, run.counts = "failed", None
        run.error = _error_text(exc)
    else:
        run.status, run.counts, run.error = "ok", counts, None
    run.finished_at = utcnow()
    db.session.flush()
    return run


def run_now(name: str, *, triggered_by: str = "cli", by: str | None = None) -> SchedulerRun:
    """Run sweep ``name`` in this process and record it (``flask jobs run``); UnknownSweep for a bad name."""
    registry.get(name)
    who = by or process_name("cli:")
    run = queue_run(name, due_at=utcnow(), triggered_by=triggered_by, scheduled_by=who)
    return execute(run, ran_by=who)


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    tb = "".join(traceback.format_tb(exc.__traceback__)[-5:])
    return (text + ("\n\n" + tb if tb else ""))[:MAX_ERROR_CHARS]


# --- what the schedule missed ------------------------------------------------------------------


def last_queued() -> dict[str, datetime]:
    """When each sweep was last queued (or run by hand)."""
    rows = db.session.execute(select(SchedulerRun.sweep, func.max(SchedulerRun.queued_at))
                              .group_by(SchedulerRun.sweep)).all()
    return {name: when for name, when in rows if when is not None}


def missed_firings(now: datetime, grace: timedelta) -> list[tuple[Sweep, datetime]]:
    """Each sweep whose schedule had a firing after its last recorded run, no longer ago than ``grace``.

    The firing returned is the first such one (what the catch-up run stands for). A sweep with no
    run recorded at all has missed nothing: it starts on its schedule.
    """
    last = last_queued()
    found: list[tuple[Sweep, datetime]] = []
    for sweep in registry.sweeps():
        seen = last.get(sweep.name)
        if seen is None:
            continue
        due = registry.next_run(sweep, max(seen, now - grace))
        if due is not None and due <= now:
            found.append((sweep, due))
    return found


# --- what people see ----------------------------------------------------------------------------


def check_may_read(actor: Any) -> None:
    """The scheduler belongs to no unit: reports.read everywhere, else Forbidden."""
    authorize_everywhere(actor, READ, message="You may not see the scheduler's runs.")


def runs_query(actor: Any, *, sweep: str | None = None, status: str | None = None) -> Select:
    """Runs, newest first, optionally of one sweep and one status."""
    check_may_read(actor)
    stmt = select(SchedulerRun).order_by(SchedulerRun.id.desc())
    if sweep:
        stmt = stmt.where(SchedulerRun.sweep == sweep)
    if status in RUN_STATUSES:
        stmt = stmt.where(SchedulerRun.status == status)
    return stmt


def count(stmt: Select) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


def last_run(name: str) -> SchedulerRun | None:
    return db.session.scalar(select(SchedulerRun).where(SchedulerRun.sweep == name)
                             .order_by(SchedulerRun.queued_at.desc(), SchedulerRun.id.desc()).limit(1))


def overview(now: datetime | None = None) -> list[dict[str, Any]]:
    """Each sweep: name, description, schedule, its last run (or None) and its next firing."""
    now = now or utcnow()
    return [{"sweep": sweep, "name": sweep.name, "description": sweep.description,
             "schedule": registry.schedule_text(sweep), "last": last_run(sweep.name),
             "next_run": registry.next_run(sweep, now)} for sweep in registry.sweeps()]


def leader_lease() -> SchedulerLease | None:
    """Who leads (the lease row the leader renews), or None when no scheduler ever led or the last stopped cleanly.

    A row whose ``expires_at`` has passed means the leader stopped renewing it: no scheduler runs.
    """
    from app.scheduler.leader import LOCK_NAME

    return db.session.get(SchedulerLease, LOCK_NAME)

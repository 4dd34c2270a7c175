"""What the scheduler tests share with the processes they start: test sweeps, the app, how to start one.

``test.tick`` adds an audit row (action ``test.tick``, the run's moment and
this process's pid) and returns a count: a run's work and its record commit
together, so every ``ok`` run has its row. ``test.broken`` raises. The
processes load them through ``flask --app "tests.scheduler_support:scheduler_app()"``,
which puts these sweeps in the app's registry hook (``app.extensions["muster_sweeps"]``,
app/scheduler/registry.py) in place of the real ones: ``test.tick`` fires every
second, so a test sees the leader at work within seconds, with nothing timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry
from app.scheduler.registry import EXTENSION
from app.scheduler.sweeps import Sweep
from tests.queue_support import ROOT

TICK = Sweep("test.tick", "tests.scheduler_support:tick", {"second": "*"}, "A test sweep, every second.")
BROKEN = Sweep("test.broken", "tests.scheduler_support:broken", {"hour": "4", "minute": "0"}, "Always fails.")
MISSING = Sweep("test.missing", "tests.no_such_module:sweep", {"minute": "0"}, "Its module does not exist.")
TEST_SWEEPS = (TICK, BROKEN, MISSING)


def tick(now: datetime) -> dict[str, int]:
    db.session.add(AuditEntry(action="test.tick", object_type="Sweep", object_id="test.tick",
                              summary=now.isoformat(), changes={"pid": os.getpid()}))
    db.session.flush()
    return {"ticks": 1}


def broken(now: datetime) -> dict[str, int]:
    db.session.add(AuditEntry(action="test.broken", object_type="Sweep", object_id="test.broken", summary="x"))
    db.session.flush()
    raise RuntimeError("the test sweep broke")


def tick_count() -> int:
    return db.session.scalar(select(func.count()).where(AuditEntry.action == "test.tick")) or 0


def scheduler_app():
    """The app of a scheduler or worker process started by a test: the test sweeps only."""
    from app import create_app

    app = create_app()
    app.extensions[EXTENSION] = (TICK,)
    return app


def start(log: Path, env: dict[str, str], *args: str, app: str = "scheduler_app()") -> subprocess.Popen:
    """`flask <args>` (scheduler run, worker) in a process of its own session (a test may SIGKILL it).

    What it prints goes to the file ``log`` (a pipe nobody reads while the test waits would fill up).
    """
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    for name in ("FLASK_APP", "MUSTER_QUEUE_IMMEDIATE"):
        full.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", f"tests.scheduler_support:{app}", *args],
        cwd=ROOT, env=full, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def real_sweeps_app():
    """The app of a process started by a test: Muster's own sweeps, firing every two seconds.

    The sweeps, their targets and their work are the real ones (app/scheduler/sweeps.py);
    only the cron fields are replaced, so a test sees several firings within seconds.
    """
    from dataclasses import replace

    from app import create_app
    from app.scheduler.sweeps import SWEEPS

    app = create_app()
    app.extensions[EXTENSION] = tuple(replace(sweep, trigger={"second": "*/2"}) for sweep in SWEEPS)
    return app


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started by ``start``: SIGINT (a graceful stop), then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

"""What the queue tests share with the worker processes they start: a slow job, and how to start a worker.

``test.steps`` does ``n`` steps; each adds one audit row (action ``test.step``)
and saves where it got to in the job's params, committed together by
``ctx.progress`` (so a runner that lost its lease commits neither). A run
resumes after the last committed step. With ``gate`` set, it stops before step
``gate_after`` until that file exists: a test can kill its worker there, with
nothing left to chance. Worker processes load it through
``flask --app "tests.queue_support:worker_app()" worker``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select

from app.database import take_write_lock
from app.extensions import db
from app.models import AuditEntry
from app.services import jobs

ROOT = Path(__file__).resolve().parent.parent


@jobs.handler("test.steps")
def run_steps(ctx: jobs.JobContext) -> dict:
    n = int(ctx.params["n"])
    gate, gate_after = ctx.params.get("gate"), ctx.params.get("gate_after")
    for i in range(int(ctx.params.get("next", 0)), n):
        if gate and i == gate_after:
            while not Path(gate).exists():  # held here until the test opens the gate (or kills us)
                time.sleep(0.05)
        take_write_lock()  # as the real jobs do: on SQLite a transaction that read cannot start writing
        db.session.add(AuditEntry(action="test.step", object_type="Job", object_id=str(ctx.job.id),
                                  summary=str(i), changes={"pid": os.getpid(), "owner": ctx.owner}))
        ctx.job.params = {**ctx.job.params, "next": i + 1}
        time.sleep(float(ctx.params.get("sleep", 0)))
        ctx.progress(i + 1, n)
    return {"steps": n, "pid": os.getpid()}


def steps_done(job_id: int) -> list[tuple[str, str]]:
    """(step, owner) of every committed step of a job, in order."""
    rows = db.session.execute(select(AuditEntry.summary, AuditEntry.changes).where(
        AuditEntry.action == "test.step", AuditEntry.object_id == str(job_id)).order_by(AuditEntry.id)).all()
    return [(summary, (changes or {}).get("owner")) for summary, changes in rows]


def step_count() -> int:
    return db.session.scalar(select(func.count()).where(AuditEntry.action == "test.step")) or 0


def worker_app():
    """The app of a worker process started by a test (its handlers registered first)."""
    from app import create_app

    return create_app()


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen:
    """`flask worker` in a process of its own (a new session: a test may kill it with SIGKILL).

    A thread collects what it prints as it prints it (``output(proc)``), so a
    test can wait for a line while the worker runs.
    """
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    for name in ("FLASK_APP", "MUSTER_QUEUE_IMMEDIATE"):
        full.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "tests.queue_support:worker_app()", "worker", *args],
        cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    proc.lines = []  # type: ignore[attr-defined]
    proc.reader = threading.Thread(target=lambda: proc.lines.extend(iter(proc.stdout.readline, "")),  # type: ignore[attr-defined]
                                   daemon=True)
    proc.reader.start()  # type: ignore[attr-defined]
    return proc


def output(proc: subprocess.Popen) -> str:
    """What a worker started by ``start_worker`` has printed so far."""
    return "".join(proc.lines)  # type: ignore[attr-defined]


def wait_started(proc: subprocess.Popen) -> str:
    """Wait for a worker's start-up line (its reap and re-queue done and reported); return its output so far."""
    return wait_for(lambda: "Muster worker:" in output(proc) and output(proc), what="the worker to start",
                    procs=[proc])


def stop(proc: subprocess.Popen) -> str:
    """Stop a worker (SIGINT: graceful, then SIGKILL) and return what it printed."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if not hasattr(proc, "reader"):  # a process not started by start_worker
        return proc.stdout.read() if proc.stdout else ""
    proc.reader.join(10)
    return output(proc)


def wait_for(check: Callable[[], object], *, what: str, timeout: float = 60.0, procs=()) -> object:
    """Poll ``check`` (in a fresh transaction each time) until it is truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()  # a new transaction sees what the workers committed
        value = check()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a worker exited ({proc.returncode}) while waiting for {what}:\n"
                                     f"{stop(proc)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)

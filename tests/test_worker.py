"""`flask worker` processes: a job survives SIGKILL, runs once, and two consumers never run it at once.

Each test starts real worker processes (``tests.queue_support.start_worker``)
on the test database and a real queue store: a SqliteHuey file, or Redis db 1.
Nothing is timed: the tests wait for states with a deadline, and the slow job
waits at a gate file so a worker is killed exactly mid-job.
"""

from __future__ import annotations

import os
import signal

import pytest
import redis

from app import queue
from app.extensions import db
from app.models import Job
from app.models.base import utcnow
from app.services import jobs
from tests.queue_support import start_worker, step_count, steps_done, stop, wait_for, wait_started

REDIS_URL = "redis://127.0.0.1:6379/1"


def _state(job_id: int) -> Job:
    return db.session.get(Job, job_id)


def _env(app, queue_url: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "MUSTER_QUEUE_URL": queue_url,
            "MUSTER_JOB_STALE_SECONDS": "2", **extra}


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")


def _kill_mid_job(app, staff, tmp_path, queue_url, steps=5, **env):
    """Start a job on worker A, wait until it is held at the gate after 2 steps, SIGKILL A.

    Returns the job id and the gate file (still closed) once A's lease has run out.
    """
    gate = tmp_path / "gate"
    job = jobs.create_job(staff["admin"], "test.steps", {"n": steps, "gate": str(gate), "gate_after": 2})
    db.session.commit()
    with queue.using(queue_url, tmp_path):
        queue.huey.flush()
        jobs.submit(job)
    first = start_worker(_env(app, queue_url, **env), "--workers", "1")
    try:
        wait_for(lambda: _state(job.id).done == 2, what="worker A to finish two steps", procs=[first])
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the whole process, mid-job: no cleanup, no goodbye
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    row = _state(job.id)
    assert (row.state, row.attempts) == ("running", 1)
    dead_owner = row.lease_owner
    # Its heartbeat has stopped; wait for its lease to pass (JOB_STALE_SECONDS=2 in the workers).
    wait_for(lambda: _state(job.id).lease_expires_at < utcnow(), what="the dead worker's lease to run out")
    return job.id, gate, dead_owner


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_job_survives_its_worker_being_killed_and_finishes_once(committing_app, staff, tmp_path, store):
    url = f"sqlite:///{tmp_path}/queue.db" if store == "sqlite" else REDIS_URL
    if store == "redis":
        _redis_or_skip()
    job_id, gate, dead_owner = _kill_mid_job(committing_app, staff, tmp_path, url)
    gate.touch()
    second = start_worker(_env(committing_app, url), "--workers", "2")  # its start-up reap re-queues it
    try:
        wait_for(lambda: _state(job_id).state == "succeeded", what="worker B to finish the job", procs=[second])
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stop(second)}") from None
    output = stop(second)
    row = _state(job_id)
    assert row.attempts == 2 and row.lease_owner != dead_owner
    assert row.result["steps"] == 5 and row.result["pid"] == second.pid
    done = steps_done(job_id)
    assert [s for s, _ in done] == ["0", "1", "2", "3", "4"]  # every step once: none lost, none repeated
    assert [o for _, o in done] == [dead_owner] * 2 + [row.lease_owner] * 3
    assert step_count() == 5
    assert "re-queued 1" in output, output


def test_a_job_whose_workers_keep_dying_fails_with_the_reason(committing_app, staff, tmp_path):
    url = f"sqlite:///{tmp_path}/queue.db"
    job_id, gate, dead_owner = _kill_mid_job(committing_app, staff, tmp_path, url, MUSTER_JOB_MAX_ATTEMPTS="1")
    second = start_worker(_env(committing_app, url, MUSTER_JOB_MAX_ATTEMPTS="1"), "--workers", "1")
    try:
        wait_for(lambda: _state(job_id).state == "failed", what="the reaper to fail the job", procs=[second])
        wait_started(second)  # the reap commits before the start-up line reports it
    finally:
        output = stop(second)
    row = _state(job_id)
    assert "stopped responding, 1 time (the limit is 1)" in row.message and dead_owner in row.message
    assert row.attempts == 1 and row.done == 2 and len(steps_done(job_id)) == 2  # not run again
    assert "failed 1" in output, output


def test_two_consumers_on_postgresql_and_redis_never_run_a_job_twice(committing_app, staff, tmp_path):
    if db.engine.dialect.name != "postgresql":
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but the tests do not run on PostgreSQL", pytrace=False)
        pytest.skip("needs TEST_DATABASE_URL on PostgreSQL (two processes sharing a real database)")
    _redis_or_skip()
    ids = []
    for n in range(6):
        ids.append(jobs.create_job(staff["admin"], "test.steps", {"n": 3, "sleep": 0.05}, title=f"job {n}").id)
    db.session.commit()
    with queue.using(REDIS_URL, tmp_path):
        queue.huey.flush()
        for _ in range(3):  # every job delivered three times, to whichever consumer is free
            for job_id in ids:
                jobs.enqueue(job_id)
    workers = [start_worker(_env(committing_app, REDIS_URL), "--workers", "2", *extra)
               for extra in ((), ("--no-periodic",))]
    try:
        wait_for(lambda: all(_state(i).state == "succeeded" for i in ids), what="all six jobs", procs=workers,
                 timeout=120)
        with queue.using(REDIS_URL, tmp_path):
            wait_for(lambda: queue.huey.pending_count() == 0, what="every delivery to be taken", procs=workers)
    finally:
        outputs = [stop(w) for w in workers]
    for job_id in ids:
        done = steps_done(job_id)
        assert [s for s, _ in done] == ["0", "1", "2"], (job_id, done, outputs)
        assert len({o for _, o in done}) == 1  # one runner, start to end
        assert _state(job_id).attempts == 1
    assert step_count() == 18
    assert "periodic tasks off" in outputs[1]


def test_the_worker_will_not_start_on_an_immediate_queue(runner):
    """TestConfig's queue runs tasks where they are enqueued: a consumer would wait for nothing."""
    result = runner.invoke(args=["worker", "--workers", "1"])
    assert result.exit_code != 0 and "MUSTER_QUEUE_IMMEDIATE is on" in result.output


def test_an_unknown_queue_scheme_stops_the_app_with_a_clear_message(monkeypatch):
    from app import create_app
    from app.config import TestConfig

    config = TestConfig()
    config.QUEUE_URL, config.QUEUE_IMMEDIATE = "amqp://rabbit/", False
    with pytest.raises(queue.QueueConfigError, match="MUSTER_QUEUE_URL has an unknown scheme 'amqp'"):
        create_app(config)

"""The task queue (app/queue.py) and jobs through real Huey consumers on real stores, in this process.

Immediate mode (TestConfig) runs tasks inline everywhere else; here a real
consumer's threads take them from a SqliteHuey file or Redis (db 1), as
`flask worker` does. Worker processes (SIGKILL, two consumers) are in
tests/test_worker.py.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from huey.storage import PostgresStorage, RedisStorage, SqliteStorage

from app import queue
from app.extensions import db
from app.models import Job
from app.services import jobs
from app.tasks.jobs import run_job
from tests.queue_support import steps_done, wait_for

REDIS_URL = "redis://127.0.0.1:6379/1"  # the queue helper's db (mail: 2, storage: 3)

calls: list[tuple[int, str]] = []
calls_lock = threading.Lock()


@jobs.handler("test.where")
def _where(ctx: jobs.JobContext) -> dict:
    with calls_lock:
        calls.append((ctx.job.id, threading.current_thread().name))
    time.sleep(float(ctx.params.get("sleep", 0)))  # long enough for a duplicate to arrive while it runs
    ctx.progress(1, 1)
    return {"thread": threading.current_thread().name, "ident": threading.get_ident()}


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")


def _store_url(store: str, tmp_path) -> str:
    """The queue URL of a store: a SqliteHuey file, Redis db 1, or PostgresHuey in a database of its own."""
    if store == "sqlite":
        return f"sqlite:///{tmp_path}/queue.db"
    if store == "redis":
        _redis_or_skip()
        return REDIS_URL
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgresHuey needs TEST_DATABASE_URL on PostgreSQL")
    import psycopg

    url = db.engine.url
    name = f"{url.database}_queue"  # never the app's database: huey makes tables of its own
    with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                         dbname=url.database, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def _finished(job_id: int):
    state = db.session.get(Job, job_id).state
    return state if state in ("succeeded", "failed") else None


def test_the_queue_url_picks_the_store(tmp_path):
    assert queue.storage_for(None, tmp_path) == (SqliteStorage, {"filename": str(tmp_path / "queue.db")})
    assert queue.storage_for(f"sqlite:///{tmp_path}/q/x.db", "/nowhere") == (
        SqliteStorage, {"filename": f"{tmp_path}/q/x.db"})
    assert queue.storage_for("redis://cache:6379/0", tmp_path) == (RedisStorage, {"url": "redis://cache:6379/0"})
    for url in ("postgresql://u@db/app", "postgresql+psycopg://u@db/app", "postgres://u@db/app"):
        assert queue.storage_for(url, tmp_path) == (PostgresStorage, {"dsn": "postgresql://u@db/app"})
    with pytest.raises(queue.QueueConfigError, match="unknown scheme 'amqp'.*redis://"):
        queue.storage_for("amqp://rabbit/", tmp_path)
    with pytest.raises(queue.QueueConfigError, match="needs a file"):
        queue.storage_for("sqlite://", tmp_path)


def test_the_default_queue_is_its_own_file_under_the_instance_folder(tmp_path, app):
    with queue.using(None, tmp_path) as huey:
        assert isinstance(huey.storage, SqliteStorage) and not huey.immediate
        assert huey.storage.filename == str(tmp_path / "queue.db")
        assert huey.storage.filename != app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        assert queue.describe() == f"SQLite {tmp_path / 'queue.db'}"
    assert queue.huey.immediate  # TestConfig's immediate mode is back


def test_tests_run_tasks_inline_through_the_task_function(ctx, staff):
    job = jobs.create_job(staff["admin"], "test.where")
    db.session.commit()
    assert queue.huey.immediate
    run_job(job.id)
    assert db.session.get(Job, job.id).result["ident"] == threading.get_ident()


@pytest.mark.parametrize("store", ["sqlite", "redis", "postgresql"])
def test_a_job_runs_in_a_real_consumer_thread(committing_app, staff, tmp_path, store):
    url = _store_url(store, tmp_path)
    job = jobs.create_job(staff["admin"], "test.where", title="Where am I")
    db.session.commit()
    with queue.using(url, tmp_path, app=committing_app) as huey:
        huey.flush()
        jobs.submit(job)
        assert huey.pending_count() == 1  # on the store, waiting for a consumer
        assert db.session.get(Job, job.id).state == "queued"
        with queue.running_consumer(2):
            assert wait_for(lambda: _finished(job.id), what="the job to finish") == "succeeded"
        assert huey.pending_count() == 0
    db.session.rollback()
    row = db.session.get(Job, job.id)
    assert row.result["ident"] != threading.get_ident()  # a consumer's thread ran it, not this one
    assert row.attempts == 1 and row.lease_owner.split(":")[2] == str(row.result["ident"])


@pytest.mark.parametrize("store", ["sqlite", "redis", "postgresql"])
def test_a_job_enqueued_three_times_runs_once(committing_app, staff, tmp_path, store):
    url = _store_url(store, tmp_path)
    job = jobs.create_job(staff["admin"], "test.where", {"sleep": 0.3})
    db.session.commit()
    calls.clear()
    with queue.using(url, tmp_path, app=committing_app) as huey:
        huey.flush()
        for _ in range(3):
            jobs.submit(job)  # a double click, a retry, a reaper: all the same to the claim
        assert huey.pending_count() == 3
        with queue.running_consumer(3):
            wait_for(lambda: huey.pending_count() == 0 and _finished(job.id), what="every delivery to be taken")
        # Leaving the block joined the consumer's threads: every delivery has been handled.
    assert [c[0] for c in calls] == [job.id]
    db.session.rollback()
    assert db.session.get(Job, job.id).attempts == 1


def test_the_steps_job_commits_each_step_with_its_heartbeat(committing_app, staff, tmp_path):
    job = jobs.create_job(staff["admin"], "test.steps", {"n": 3})
    db.session.commit()
    with queue.using(f"sqlite:///{tmp_path}/queue.db", tmp_path, app=committing_app):
        jobs.submit(job)
        with queue.running_consumer(1):
            assert wait_for(lambda: _finished(job.id), what="the job") == "succeeded"
    db.session.rollback()
    done = steps_done(job.id)
    assert [s for s, _ in done] == ["0", "1", "2"] and len({o for _, o in done}) == 1
    assert db.session.get(Job, job.id).params["next"] == 3

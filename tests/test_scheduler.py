"""The scheduler (issue 12): one leader among real processes, catch-up on start, runs recorded, jobs CLI, pages.

The process tests start real ``flask scheduler run`` processes and one
``flask worker`` (``tests.scheduler_support.start``) on the test database
(a SQLite file, or PostgreSQL with TEST_DATABASE_URL) and a SQLite queue
file, with the test sweep ``test.tick`` firing every second. Nothing is
timed: they wait for states (a log line, a run recorded) with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import socket
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import AuditEntry, SchedulerLease, SchedulerRun
from app.models.base import utcnow
from app.scheduler import runs
from app.scheduler.leader import AdvisoryLockLeader, LeaseLeader
from app.scheduler.process import SchedulerProcess
from app.scheduler.registry import EXTENSION
from app.scheduler.sweeps import SWEEPS, Sweep
from app.tasks.sweeps import run_sweep
from tests.conftest import api_token, login
from tests.queue_support import wait_for
from tests.scheduler_support import (
    BROKEN,
    MISSING,
    TEST_SWEEPS,
    start,
    stop,
    tick_count,
)

HOST = socket.gethostname()


def _env(app, tmp_path, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "MUSTER_QUEUE_URL": f"sqlite:///{tmp_path}/q.db",
            "MUSTER_SCHEDULER_LEASE_SECONDS": "1.5", **extra}



def _log(path) -> str:
    return path.read_text() if path.exists() else ""


def _wait_log(path, pattern: str, procs, what: str, timeout: float = 60) -> str:
    def seen():
        return re.search(pattern, _log(path))

    try:
        wait_for(seen, what=what, procs=procs, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- {path.name}:\n{_log(path)}") from None
    return _log(path)


def _ticks_by(pid: int) -> list[SchedulerRun]:
    return list(db.session.scalars(select(SchedulerRun).where(
        SchedulerRun.sweep == "test.tick", SchedulerRun.status == "ok",
        SchedulerRun.scheduled_by.startswith(f"{HOST}:{pid}:"))))


def _schedulers_take_turns(app, tmp_path):
    """A leads, B stands by and queues nothing; A is SIGKILLed; B takes over. Returns (a, b, logs)."""
    env = _env(app, tmp_path)
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "a", "b")}
    worker = start(logs["worker"], env, "worker", "--workers", "2", "--no-periodic")
    a = start(logs["a"], env, "scheduler", "run")
    procs = [worker, a]
    b = None
    try:
        _wait_log(logs["a"], r"leader now", procs, "scheduler A to lead")
        b = start(logs["b"], env, "scheduler", "run")
        procs.append(b)
        _wait_log(logs["b"], r"standby", procs, "scheduler B to stand by")
        wait_for(lambda: len(_ticks_by(a.pid)) >= 3, what="three runs queued by A and run by the worker", procs=procs)
        assert "leader now" not in _log(logs["b"])
        assert _ticks_by(b.pid) == []  # the standby queued nothing
        os.killpg(a.pid, signal.SIGKILL)  # no goodbye: its lock or lease must lapse by itself
        a.wait(10)
        killed_at = utcnow()
        procs.remove(a)
        wait_for(lambda: len(_ticks_by(b.pid)) >= 2, what="B to take over and queue runs", procs=procs)
        _wait_log(logs["b"], r"leader now", procs, "B's log to say it leads")
    finally:
        for proc in procs:
            stop(proc)
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
    db.session.rollback()
    by_a, by_b = _ticks_by(a.pid), _ticks_by(b.pid)
    assert max(r.queued_at for r in by_a) <= killed_at <= min(r.queued_at for r in by_b)  # never both at once
    everything = db.session.scalars(select(SchedulerRun).where(SchedulerRun.sweep == "test.tick")).all()
    assert {r.scheduled_by.split(":")[1] for r in everything} == {str(a.pid), str(b.pid)}
    ok = [r for r in everything if r.status == "ok"]
    assert all(r.ran_by and r.ran_by.startswith(f"{HOST}:{worker.pid}") for r in ok)  # the worker ran them
    assert tick_count() == len(ok)  # each run's work committed with its record, once
    _one_run_per_firing()
    return a, b, {k: _log(v) for k, v in logs.items()}


def _postgres_or_skip() -> None:
    if db.engine.dialect.name != "postgresql":
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but the tests do not run on PostgreSQL", pytrace=False)
        pytest.skip("needs TEST_DATABASE_URL on PostgreSQL (an advisory lock shared by two processes)")


def test_two_schedulers_one_leads_and_the_standby_takes_over_when_it_is_killed(committing_app, tmp_path):
    """On the test database (SQLite: the lease row; PostgreSQL: the advisory lock)."""
    _a, _b, logs = _schedulers_take_turns(committing_app, tmp_path)
    kind = "advisory lock" if db.engine.dialect.name == "postgresql" else "lease"
    assert f"leader election by {kind}" in logs["a"] and f"leader now ({kind})" in logs["b"]


def test_two_schedulers_on_postgresql_use_the_advisory_lock(committing_app, tmp_path):
    _postgres_or_skip()
    _a, _b, logs = _schedulers_take_turns(committing_app, tmp_path)
    assert "leader now (advisory lock)" in logs["a"]


def test_a_leader_that_loses_its_postgresql_connection_stops_scheduling(committing_app, tmp_path):
    """The lock's session ends (a server restart, a network cut): the leader stands down, the standby leads."""
    _postgres_or_skip()
    env = _env(committing_app, tmp_path)
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "a", "b")}
    worker = start(logs["worker"], env, "worker", "--workers", "2", "--no-periodic")
    a = start(logs["a"], env, "scheduler", "run")
    procs = [worker, a]
    try:
        _wait_log(logs["a"], r"leader now", procs, "scheduler A to lead")
        b = start(logs["b"], env, "scheduler", "run")
        procs.append(b)
        _wait_log(logs["b"], r"standby", procs, "scheduler B to stand by")
        db.session.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'muster-scheduler' AND pid <> pg_backend_pid() "
                                "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"))
        db.session.commit()
        cut_at = utcnow()
        _wait_log(logs["a"], r"lost the lead", procs, "A to notice and stand down")
        # The lock was free: whichever asked first leads now (B, or A once reconnected), never both.
        wait_for(lambda: "leader now" in _log(logs["b"]) or "leader now" in _log(logs["a"]).split("lost the lead")[1],
                 what="a leader again", procs=procs)
        wait_for(lambda: len([r for r in _ticks_by(a.pid) + _ticks_by(b.pid) if r.queued_at > cut_at]) >= 3,
                 what="runs queued by the new leader", procs=procs)
    finally:
        for proc in procs:
            stop(proc)
    db.session.rollback()
    after = [r for r in _ticks_by(a.pid) + _ticks_by(b.pid) if r.queued_at > cut_at]
    assert len({r.scheduled_by for r in after}) == 1, [r.scheduled_by for r in after]
    _one_run_per_firing()


def _one_run_per_firing() -> None:
    """Never two leaders at once: no firing (a second of test.tick) was queued twice."""
    dues = db.session.scalars(select(SchedulerRun.due_at).where(SchedulerRun.sweep == "test.tick")).all()
    assert len(dues) == len(set(dues)) and all(d.microsecond == 0 for d in dues), sorted(dues)


def test_the_lease_is_renewed_by_its_holder_and_taken_over_only_once_it_ran_out(committing_app):
    url = committing_app.config["SQLALCHEMY_DATABASE_URI"]
    a, b = LeaseLeader(url, 30, "host:1"), LeaseLeader(url, 30, "host:2")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
    try:
        with time_machine.travel(start, tick=False):
            assert a.acquire() and not b.acquire() and a.acquire()  # ours again: renewed
        with time_machine.travel(start + timedelta(seconds=29), tick=False):
            assert a.confirm() and not b.acquire()
        with time_machine.travel(start + timedelta(seconds=60), tick=False):  # A stopped renewing 31 s ago
            assert b.acquire() and not a.confirm() and not a.acquire()
            lease = db.session.get(SchedulerLease, "scheduler")
            assert lease.owner == b.owner and lease.acquired_at == start + timedelta(seconds=60)
        b.release()
        db.session.rollback()
        assert db.session.get(SchedulerLease, "scheduler") is None and a.acquire()  # given up: free at once
    finally:
        a.close()
        b.close()


def test_the_advisory_lock_has_one_holder_and_is_free_once_released(committing_app):
    _postgres_or_skip()
    url = committing_app.config["SQLALCHEMY_DATABASE_URI"]
    a, b = AdvisoryLockLeader(url, 30, "host:1"), AdvisoryLockLeader(url, 30, "host:2")
    try:
        assert a.acquire() and a.confirm() and not b.acquire() and not b.confirm()
        db.session.rollback()
        assert db.session.get(SchedulerLease, "scheduler").owner == a.owner  # who leads, for people
        a.release()
        assert not a.confirm() and b.acquire() and b.confirm()
    finally:
        a.close()
        b.close()


# --- in one process ------------------------------------------------------------------------------


class FakeLeader:
    """Always the leader (the election is the process tests' business)."""

    kind, owner = "fake", "test:1:abc"

    def acquire(self):
        return True

    def confirm(self):
        return True

    def release(self):
        pass

    def close(self):
        pass


@pytest.fixture()
def test_sweeps(app, monkeypatch):
    monkeypatch.setitem(app.extensions, EXTENSION, TEST_SWEEPS)
    return TEST_SWEEPS


HOURLY = Sweep("test.hourly", "tests.scheduler_support:tick", {"minute": "0"})


def _record(name: str, at: datetime) -> SchedulerRun:
    with time_machine.travel(at, tick=False):
        run = runs.queue_run(name, due_at=at, triggered_by="scheduler", scheduled_by="earlier:1:x")
        run.status = "ok"
    db.session.flush()
    return run


def _catch_up(app, now: datetime) -> list[SchedulerRun]:
    process = SchedulerProcess(app, leader=FakeLeader())
    process.leading = True  # as after winning the election, when catch_up runs
    with time_machine.travel(now, tick=False):
        ids = process.catch_up()
    return [db.session.get(SchedulerRun, i) for i in ids]


def test_a_weekend_down_is_caught_up_once_on_start(app, monkeypatch):
    monkeypatch.setitem(app.extensions, EXTENSION, (HOURLY,))
    friday = datetime(2026, 1, 2, 9, 0, 5, tzinfo=timezone.utc)
    _record("test.hourly", friday)
    monday = datetime(2026, 1, 5, 8, 30, tzinfo=timezone.utc)
    [run] = _catch_up(app, monday)  # 71 firings missed; one run stands for them all
    assert (run.sweep, run.triggered_by, run.status, run.counts) == ("test.hourly", "catch-up", "ok", {"ticks": 1})
    assert run.due_at == datetime(2026, 1, 2, 10, 0, tzinfo=timezone.utc)  # the first one missed
    assert _catch_up(app, monday + timedelta(seconds=5)) == []  # a restart right after: nothing more
    assert _catch_up(app, monday + timedelta(minutes=31))[0].triggered_by == "catch-up"  # 09:00 missed too


def test_nothing_is_caught_up_when_no_firing_was_missed_or_none_was_ever_run(app, monkeypatch):
    monkeypatch.setitem(app.extensions, EXTENSION, (HOURLY,))
    now = datetime(2026, 1, 5, 8, 30, tzinfo=timezone.utc)
    assert _catch_up(app, now) == []  # never run: it simply starts on its schedule
    _record("test.hourly", datetime(2026, 1, 5, 8, 0, 2, tzinfo=timezone.utc))
    assert _catch_up(app, now) == []


def test_a_run_older_than_the_misfire_grace_is_caught_up_within_it(app, monkeypatch):
    monkeypatch.setitem(app.extensions, EXTENSION, (HOURLY,))
    monkeypatch.setitem(app.config, "SCHEDULER_MISFIRE_HOURS", 2)
    _record("test.hourly", datetime(2026, 1, 1, 9, 0, 5, tzinfo=timezone.utc))
    [run] = _catch_up(app, datetime(2026, 1, 5, 8, 30, tzinfo=timezone.utc))
    assert run.due_at == datetime(2026, 1, 5, 7, 0, tzinfo=timezone.utc)  # the first within the last two hours


def test_a_run_queued_twice_runs_once_and_a_broken_sweep_is_recorded_not_raised(app, test_sweeps):
    run = runs.queue_run("test.tick", due_at=utcnow(), triggered_by="scheduler", scheduled_by="s:1:x")
    db.session.commit()
    run_sweep(run.id)
    run_sweep(run.id)  # a second delivery finds it finished
    db.session.refresh(run)
    assert (run.status, run.counts, tick_count()) == ("ok", {"ticks": 1}, 1)
    for sweep, error in ((BROKEN, "RuntimeError: the test sweep broke"),
                         (MISSING, "No module named 'tests.no_such_module'")):
        failed = runs.queue_run(sweep.name, due_at=utcnow(), triggered_by="scheduler", scheduled_by="s:1:x")
        db.session.commit()
        run_sweep(failed.id)
        db.session.refresh(failed)
        assert failed.status == "failed" and error in failed.error and failed.finished_at is not None
    # the broken sweep's own writes were undone with it; its failure is on record
    assert db.session.scalar(select(func.count()).where(AuditEntry.action == "test.broken")) == 0


def test_a_process_that_does_not_lead_queues_nothing(app, test_sweeps):
    process = SchedulerProcess(app, leader=FakeLeader())
    assert process.fire("test.tick") is None  # not elected yet
    process.leading = True
    run = db.session.get(SchedulerRun, process.fire("test.tick"))
    assert (run.status, run.triggered_by, run.scheduled_by) == ("ok", "scheduler", "test:1:abc")


def test_the_real_sweeps_have_fixed_ids_and_valid_triggers(app):
    process = SchedulerProcess(app, leader=FakeLeader())
    with app.app_context():
        process._schedule()
    jobs = {j.id: j for j in process.scheduler.get_jobs()}
    assert set(jobs) == {s.name for s in SWEEPS}
    for job in jobs.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 72 * 3600)


# --- flask jobs --------------------------------------------------------------------------------


def test_flask_jobs_run_runs_a_sweep_now_and_records_it(runner, test_sweeps):
    result = runner.invoke(args=["jobs", "run", "test.tick"])
    assert result.exit_code == 0, result.output
    assert re.search(r"test\.tick: ok \(run \d+\): ticks=1", result.output)
    run = db.session.scalar(select(SchedulerRun).where(SchedulerRun.sweep == "test.tick"))
    assert (run.triggered_by, run.status, run.counts) == ("cli", "ok", {"ticks": 1})
    assert run.scheduled_by.startswith("cli:") and tick_count() == 1


def test_flask_jobs_run_reports_a_failure_and_an_unknown_name(runner, test_sweeps):
    result = runner.invoke(args=["jobs", "run", "test.broken"])
    assert result.exit_code == 1 and "RuntimeError: the test sweep broke" in result.output
    run = db.session.scalar(select(SchedulerRun).where(SchedulerRun.sweep == "test.broken"))
    assert run.status == "failed" and run.triggered_by == "cli"
    result = runner.invoke(args=["jobs", "run", "no.such"])
    assert result.exit_code == 2
    assert "No sweep named 'no.such'. The sweeps are: test.tick, test.broken, test.missing." in result.output


def test_flask_jobs_list_shows_schedule_last_run_outcome_and_next_run(runner, test_sweeps):
    runner.invoke(args=["jobs", "run", "test.broken"])
    with time_machine.travel(datetime(2026, 3, 1, 3, 59, tzinfo=timezone.utc), tick=False):
        result = runner.invoke(args=["jobs", "list"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "test.broken\n  schedule: cron hour=4 minute=0 UTC\n  last run: failed (cli) at " in out
    assert ": RuntimeError: the test sweep broke" in out
    assert "next run: 2026-03-01 04:00:00 UTC" in out
    assert "test.tick\n  schedule: cron second=* UTC\n  last run: never run\n  next run: 2026-03-01 03:59:01 UTC" in out
    assert out.startswith("Scheduler: not running (start `flask scheduler run`).\n")


def test_flask_jobs_list_names_every_real_sweep(runner):
    result = runner.invoke(args=["jobs", "list"])
    assert result.exit_code == 0
    for sweep in SWEEPS:
        assert f"{sweep.name}\n  schedule: " in result.output


# --- the console page and the API -----------------------------------------------------------------


def _some_runs(n_ok: int = 3):
    for i in range(n_ok):
        run = runs.queue_run("test.tick", due_at=utcnow(), triggered_by="scheduler", scheduled_by="s:1:x")
        run.status, run.counts = "ok", {"ticks": i}
    failed = runs.queue_run("test.broken", due_at=utcnow(), triggered_by="cli", scheduled_by="cli:h:2")
    failed.status, failed.error = "failed", "RuntimeError: the test sweep broke\n\ntraceback"
    db.session.flush()


def test_the_console_page_shows_the_sweeps_and_the_run_log(client, staff, test_sweeps):
    _some_runs()
    login(client, "admin@test.org")
    page = client.get("/admin/scheduler/").get_data(as_text=True)
    assert "cron second=* UTC" in page and "never run" in page  # test.missing has no run
    assert "No scheduler is running" in page
    db.session.add(SchedulerLease(name="scheduler", owner="host:42:abc", expires_at=utcnow() + timedelta(seconds=30)))
    db.session.flush()
    assert "Led by <code>host:42:abc</code>" in client.get("/admin/scheduler/").get_data(as_text=True)
    assert "4 run(s)" in page and "RuntimeError: the test sweep broke" in page and "ticks=2" in page
    failed = client.get("/admin/scheduler/?status=failed&sweep=test.broken").get_data(as_text=True)
    assert "1 run(s)" in failed and "ticks=" not in failed.split('id="run-list"')[1]
    assert "No runs match." in client.get("/admin/scheduler/?status=queued").get_data(as_text=True)
    assert client.get("/admin/scheduler/?page=x").status_code == 400


def test_the_console_page_is_closed_to_a_coordinator(client, staff):
    login(client, "coord@test.org")
    assert client.get("/admin/scheduler/").status_code == 403


def test_the_api_lists_runs_paged_and_filtered(client, staff, test_sweeps):
    _some_runs()
    headers = {"Authorization": f"Bearer {api_token(client, 'admin@test.org')}"}
    body = client.get("/api/v1/scheduler/runs?per_page=2", headers=headers).get_json()
    assert body["total"] == 4 and len(body["items"]) == 2 and body["links"]["next"]
    assert body["items"][0]["sweep"] == "test.broken" and body["items"][0]["error"].startswith("RuntimeError")
    second = client.get(body["links"]["next"], headers=headers).get_json()
    assert [i["counts"] for i in second["items"]] == [{"ticks": 1}, {"ticks": 0}]
    ok = client.get("/api/v1/scheduler/runs?status=ok&sweep=test.tick", headers=headers).get_json()
    assert ok["total"] == 3 and {i["triggered_by"] for i in ok["items"]} == {"scheduler"}
    bad = client.get("/api/v1/scheduler/runs?status=bogus", headers=headers)
    assert bad.status_code == 422 and set(bad.get_json()) == {"error", "details"}


def test_the_api_refuses_a_coordinator_without_reports_read(client, staff):
    headers = {"Authorization": f"Bearer {api_token(client, 'coord@test.org')}"}
    response = client.get("/api/v1/scheduler/runs", headers=headers)
    assert response.status_code == 403
    assert response.get_json()["details"] == {"permission": "reports.read"}


def test_the_runs_are_in_the_openapi_document(client):
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/scheduler/runs"]["get"]
    assert operation["tags"] == ["scheduler"] and {"200", "401", "403", "422"} <= set(operation["responses"])

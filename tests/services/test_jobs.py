"""Background jobs: states, progress, files, failures, interruption and the console pages."""

import threading
import time
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Job
from app.models.base import utcnow
from app.services import jobs
from app.services.errors import ServiceError
from tests.conftest import csrf_token_from, login


@jobs.handler("test.count")
def _count(ctx: jobs.JobContext) -> dict:
    total = ctx.params["n"]
    for done in range(1, total + 1):
        ctx.progress(done, total, errors=done // 3)
    ctx.add_file("report.csv", "text/csv", b"line,reason\n1,bad\n")
    return {"counted": total}


@jobs.handler("test.broken")
def _broken(ctx: jobs.JobContext) -> dict:
    ctx.progress(1, 4)
    raise ServiceError("The file has no header row.")


@jobs.handler("test.where")
def _where(ctx: jobs.JobContext) -> dict:
    ctx.progress(1, 1)
    thread = threading.current_thread()
    return {"thread_id": threading.get_ident(), "thread_name": thread.name}


def test_job_runs_with_progress_result_and_file(ctx, staff):
    job = jobs.create_job(staff["admin"], "test.count", {"n": 7}, title="Counting")
    db.session.commit()
    jobs.submit(job)
    job = db.session.get(Job, job.id)
    assert (job.state, job.done, job.total, job.errors, job.percent) == ("succeeded", 7, 7, 2, 100)
    assert job.result == {"counted": 7}
    assert job.started_at <= job.finished_at
    assert [f.name for f in job.files] == ["report.csv"]
    assert jobs.file_path(job.files[0]).read_bytes() == b"line,reason\n1,bad\n"


def test_a_broken_rule_fails_the_job_with_its_message(ctx, staff):
    job = jobs.create_job(staff["admin"], "test.broken")
    db.session.commit()
    jobs.submit(job)
    job = db.session.get(Job, job.id)
    assert (job.state, job.message, job.done) == ("failed", "The file has no header row.", 1)


def test_unknown_kind_is_refused(ctx):
    import pytest

    with pytest.raises(ServiceError, match="Unknown kind"):
        jobs.create_job(None, "no.such.job")


def test_silent_jobs_become_interrupted_and_can_run_again(ctx, staff, app):
    job = jobs.create_job(staff["admin"], "test.count", {"n": 2})
    job.state, job.heartbeat_at = "running", utcnow() - timedelta(seconds=app.config["JOB_STALE_SECONDS"] + 5)
    fresh = jobs.create_job(staff["admin"], "test.count", {"n": 2})
    fresh.state, fresh.heartbeat_at = "running", utcnow()
    db.session.commit()
    assert jobs.mark_stale_interrupted() == 1
    db.session.expire_all()
    assert db.session.get(Job, job.id).state == "interrupted"
    assert db.session.get(Job, fresh.id).state == "running"
    jobs.run(job.id)
    assert db.session.get(Job, job.id).state == "succeeded"


def test_console_shows_progress_and_files_to_the_owner_only(client, staff):
    job = jobs.create_job(staff["coordinator"], "test.count", {"n": 4}, title="Coordinator's count")
    db.session.commit()
    jobs.submit(job)
    login(client, "coord@test.org")
    listing = client.get("/admin/jobs/").get_data(as_text=True)
    assert "Coordinator&#39;s count" in listing or "Coordinator's count" in listing
    page = client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert "Succeeded" in page and "4 of 4 done" in page and "1 error" in page
    assert "vendor/htmx/htmx.min.js" in page
    fragment = client.get(f"/admin/jobs/{job.id}/progress").get_data(as_text=True)
    assert 'data-state="succeeded"' in fragment and "hx-trigger" not in fragment
    file_id = db.session.get(Job, job.id).files[0].id
    download = client.get(f"/admin/jobs/{job.id}/files/{file_id}")
    assert download.status_code == 200 and download.data == b"line,reason\n1,bad\n"
    assert "attachment" in download.headers["Content-Disposition"]
    client.post("/logout", data={"csrf_token": csrf_token_from(page)})

    other = client.application.test_client()
    response = login(other, "admin@test.org")  # global reports.read: sees every job
    assert response.status_code == 302, response.get_data(as_text=True)
    assert other.get(f"/admin/jobs/{job.id}").status_code == 200


def test_other_staff_cannot_see_a_job(client, staff, make_user, tree):
    """Another coordinator gets 404 for the job, and for its real file, through their own job's URL too."""
    job = jobs.create_job(staff["coordinator"], "test.count", {"n": 1})
    other = make_user("coord2@test.org", "ward_coordinator", tree["w2"])
    own = jobs.create_job(other, "test.count", {"n": 1})
    db.session.commit()
    jobs.submit(job)
    jobs.submit(own)
    file_id = db.session.get(Job, job.id).files[0].id
    own_file_id = db.session.get(Job, own.id).files[0].id
    login(client, "coord2@test.org")
    assert client.get(f"/admin/jobs/{own.id}/files/{own_file_id}").status_code == 200  # the URLs are right
    assert client.get(f"/admin/jobs/{job.id}").status_code == 404
    assert client.get(f"/admin/jobs/{job.id}/progress").status_code == 404
    assert client.get(f"/admin/jobs/{job.id}/files/{file_id}").status_code == 404
    assert client.get(f"/admin/jobs/{own.id}/files/{file_id}").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/admin/jobs/").get_data(as_text=True))})
    login(client, "coord@test.org")  # the owner downloads that same file
    assert client.get(f"/admin/jobs/{job.id}/files/{file_id}").status_code == 200


def test_running_job_fragment_keeps_polling(client, staff):
    job = jobs.create_job(staff["admin"], "test.count", {"n": 3})
    job.state, job.done, job.total, job.heartbeat_at = "running", 1, 3, utcnow()
    db.session.commit()
    login(client, "admin@test.org")
    fragment = client.get(f"/admin/jobs/{job.id}/progress").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in fragment and "33%" in fragment and "1 of 3 done" in fragment


def test_jobs_run_in_a_worker_thread(committing_app, staff, monkeypatch):
    """Outside tests, submit() hands the job to the pool and returns; the job runs on a worker's thread."""
    monkeypatch.setitem(committing_app.config, "JOBS_RUN_INLINE", False)
    job = jobs.create_job(staff["admin"], "test.where", title="Where am I")
    db.session.commit()
    jobs.submit(job)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        db.session.rollback()  # end the read transaction: a new one sees the worker's commits
        if db.session.scalar(select(Job.state).where(Job.id == job.id)) in ("succeeded", "failed"):
            break
        time.sleep(0.02)
    row = db.session.get(Job, job.id)
    assert row.state == "succeeded" and row.done == 1
    assert row.result["thread_id"] != threading.get_ident()  # not the thread that submitted it
    assert row.result["thread_name"].startswith("muster-job")

"""Background jobs: states, progress, files, failures, leases, the reaper and the console pages.

The queue is immediate here (TestConfig); tests/services/test_queue*.py and tests/test_worker*.py
run jobs through real consumers.
"""

from datetime import timedelta

import pytest
from sqlalchemy import update

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


def test_job_runs_with_progress_result_and_file(ctx, staff):
    job = jobs.create_job(staff["admin"], "test.count", {"n": 7}, title="Counting")
    db.session.commit()
    jobs.submit(job)
    job = db.session.get(Job, job.id)
    assert (job.state, job.done, job.total, job.errors, job.percent) == ("succeeded", 7, 7, 2, 100)
    assert job.result == {"counted": 7}
    assert job.started_at <= job.finished_at
    assert [f.name for f in job.files] == ["report.csv"]
    with jobs.open_file(job.files[0]) as stream:
        assert stream.read() == b"line,reason\n1,bad\n"


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


def test_a_dead_workers_job_is_queued_again_by_the_reaper_and_finishes(ctx, staff, app):
    """The reaper takes jobs whose lease ran out (and only those) back to queued, and runs them again."""
    job = jobs.create_job(staff["admin"], "test.count", {"n": 2})
    job.state, job.lease_owner, job.attempts = "running", "gone:1:1:dead", 1
    job.lease_expires_at = utcnow() - timedelta(seconds=1)
    fresh = jobs.create_job(staff["admin"], "test.count", {"n": 2})
    fresh.state, fresh.lease_owner, fresh.attempts = "running", "alive:2:2:beat", 1
    fresh.lease_expires_at = utcnow() + timedelta(seconds=app.config["JOB_STALE_SECONDS"])
    db.session.commit()
    outcome = jobs.reap()  # immediate queue: the re-queued job runs at once
    assert outcome == {"requeued": [job.id], "failed": []}
    db.session.expire_all()
    again = db.session.get(Job, job.id)
    assert (again.state, again.attempts, again.result) == ("succeeded", 2, {"counted": 2})
    assert again.lease_owner != "gone:1:1:dead"
    assert db.session.get(Job, fresh.id).state == "running"  # its worker still beats


def test_a_job_out_of_attempts_fails_with_the_reason(ctx, staff, app):
    job = jobs.create_job(staff["admin"], "test.count", {"n": 2})
    job.state, job.lease_owner = "running", "gone:1:1:dead"
    job.attempts = app.config["JOB_MAX_ATTEMPTS"]
    job.lease_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert jobs.reap() == {"requeued": [], "failed": [job.id]}
    db.session.expire_all()
    failed = db.session.get(Job, job.id)
    assert failed.state == "failed" and failed.finished_at is not None
    assert f"stopped responding, {job.attempts} times (the limit is {job.attempts})" in failed.message
    assert "gone:1:1:dead" in failed.message


def test_a_runner_that_lost_its_lease_stops_and_writes_nothing(ctx, staff):
    """Its heartbeat finds another owner: the step it was about to commit is rolled back."""
    job = jobs.create_job(staff["admin"], "test.count", {"n": 1})
    db.session.commit()
    assert jobs.claim(job.id, "me:1:1:a")
    row = db.session.get(Job, job.id)
    db.session.execute(update(Job).where(Job.id == job.id).values(lease_owner="someone:2:2:b"))
    db.session.commit()
    row.title = "changed by a runner that lost"
    with pytest.raises(jobs.LeaseLost):
        jobs.JobContext(row, "me:1:1:a").progress(1, 1)
    db.session.expire_all()
    assert db.session.get(Job, job.id).title != "changed by a runner that lost"
    assert db.session.get(Job, job.id).done == 0


def test_a_claimed_job_cannot_be_claimed_again(ctx, staff):
    job = jobs.create_job(staff["admin"], "test.count", {"n": 1})
    db.session.commit()
    assert jobs.claim(job.id, "first:1:1:a") is True
    assert jobs.claim(job.id, "second:2:2:b") is False
    jobs.run(job.id)  # a duplicate delivery: nothing to claim, nothing run
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert (row.state, row.lease_owner, row.attempts, row.done) == ("running", "first:1:1:a", 1, 0)


def test_run_again_restarts_a_failed_job(client, staff):
    job = jobs.create_job(staff["admin"], "test.count", {"n": 2})
    job.state, job.message, job.attempts = "failed", "Stopped: ...", 3
    db.session.commit()
    login(client, "admin@test.org")
    page = client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert "Run again" in page
    client.post(f"/admin/jobs/{job.id}/retry", data={"csrf_token": csrf_token_from(page)})
    db.session.expire_all()
    again = db.session.get(Job, job.id)
    assert (again.state, again.attempts, again.result) == ("succeeded", 1, {"counted": 2})


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

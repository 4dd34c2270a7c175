"""A card batch runs in a real queue consumer while its job page follows the HTMX progress bar to the end.

The batch is held at two of its progress reports, so the page is seen at
0% and at 50% while the job is running, then finished with its PDF link,
all in the one page load the console's redirect opened.
"""

import threading
import time

import pytest
from sqlalchemy import select

from app import queue
from app.extensions import db
from app.models import Job
from app.services import jobs
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture()
def held_progress(committing_app, monkeypatch, tmp_path):
    """Runs jobs in a real consumer (SqliteHuey file); the worker stops after its first reports until released."""
    holds = [threading.Event(), threading.Event()]
    calls = {"n": 0}
    report = jobs.JobContext.progress

    def held(self, *args, **kwargs):
        report(self, *args, **kwargs)  # commits: the page can see this report
        index, calls["n"] = calls["n"], calls["n"] + 1
        if index < len(holds):
            holds[index].wait(timeout=30)

    monkeypatch.setattr(jobs.JobContext, "progress", held)
    with queue.using(f"sqlite:///{tmp_path}/queue.db", tmp_path, app=committing_app), queue.running_consumer(1):
        try:
            yield holds
        finally:
            for hold in holds:
                hold.set()
            _wait_for_jobs()


def _wait_for_jobs() -> None:
    """Let the consumer finish before the tables are wiped."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        db.session.rollback()
        if not db.session.scalar(select(Job.id).where(Job.state.in_(("queued", "running")))):
            break
        time.sleep(0.05)


def test_job_page_follows_a_running_batch_to_its_download(live_server, page, tree, staff, make_member,
                                                          held_progress):
    for first in ("Chanda", "Zoë", "Mutale"):
        make_member(tree["w1"], first_name=first, last_name="Banda")
    db.session.commit()
    polls = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/progress") else None)

    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "admin@test.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/admin/")
    page.goto(f"{live_server}/admin/cards/")
    page.click("#card-batch-link")
    page.select_option("#unit", label=page.locator("#unit option", has_text="Lukashya Ward 1").first.inner_text())
    page.check("input[name=mode][value=issue]")
    with page.expect_navigation():
        page.click("#card-batch-form button[type=submit]")
    job_url = page.url
    assert "/admin/jobs/" in job_url
    page.evaluate("window.sameDocument = true")  # gone if the page were reloaded

    bar = page.locator("#job-progress")
    page.wait_for_selector("#job-progress[data-state=running]:has-text('0 of 6 done')")
    assert bar.locator("[role=progressbar]").get_attribute("aria-valuenow") == "0"
    assert page.locator("a:has-text('Download cards-')").count() == 0

    held_progress[0].set()  # the worker issues the three cards and reports again
    page.wait_for_selector("#job-progress[data-state=running]:has-text('3 of 6 done')")
    assert bar.locator("[role=progressbar]").get_attribute("aria-valuenow") == "50"

    held_progress[1].set()  # and runs to the end
    page.wait_for_selector("#job-progress[data-state=succeeded]")
    assert bar.locator("[role=progressbar]").get_attribute("aria-valuenow") == "100"
    assert "Succeeded" in bar.inner_text()
    link = page.locator("a:has-text('Download cards-')")
    assert link.count() == 1
    assert page.url == job_url and page.evaluate("window.sameDocument") is True
    assert len(polls) >= 2  # the bar polled its way from 0% to 50% and from 50% to done
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename.endswith(".pdf")

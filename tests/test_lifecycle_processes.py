"""Issue 12 done as an operator meets it: worker + scheduler processes on a database with due work.

A real ``flask worker`` and ``flask scheduler run`` (Muster's own sweeps,
their cron fields replaced by "every two seconds": tests.scheduler_support
``real_sweeps_app``) on the test database, a SQLite queue file and a real
SMTP server (aiosmtpd). Due: three members whose card expires in 30 days
(the -30 renewal reminder), one of them without an email address; two
members registered for an event starting in 12 hours, and one member whose
card expired 40 days ago (past the 30-day grace). The right mails arrive
once; more firings and a second scheduler (standby) change nothing; the
expired member lapses; the console's reminder log says why the one without
an address got no mail. A weekend down is caught up once: tests/test_scheduler.py.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import Member, SchedulerRun
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import events as event_service
from app.services import reminders
from tests.conftest import login
from tests.queue_support import wait_for
from tests.scheduler_support import start, stop


def _env(app, tmp_path, smtp_server) -> dict[str, str]:
    return {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "MUSTER_QUEUE_URL": f"sqlite:///{tmp_path}/q.db",
            "MUSTER_SCHEDULER_LEASE_SECONDS": "1.5", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(smtp_server.port),
            "MUSTER_PUBLIC_URL": "https://members.example.org", "MUSTER_GRACE_DAYS": "30"}



def _member_with_card(make_member, unit, name: str, email: str | None, expires_on):
    member = make_member(unit, first_name=name, last_name="Banda", email=email, status="active")
    card = card_service.issue_card(None, member)
    card.expires_on = expires_on
    return member


def _ok_runs(sweep: str) -> int:
    return db.session.scalar(select(func.count()).select_from(SchedulerRun)
                             .where(SchedulerRun.sweep == sweep, SchedulerRun.status == "ok")) or 0


def _log_text(path) -> str:
    return path.read_text() if path.exists() else ""


def test_due_work_is_mailed_once_by_the_processes_and_a_second_scheduler_changes_nothing(
        committing_app, client, staff, tree, make_member, smtp_server, tmp_path):
    today = reminders.local_today(utcnow())
    in_30 = today + timedelta(days=30)
    for name, email in (("Ada", "ada@example.org"), ("Bo", "bo@example.org"), ("Cy", None)):
        _member_with_card(make_member, tree["w1"], name, email, in_30)
    lapsing = _member_with_card(make_member, tree["w1"], "Dee", "dee@example.org", today - timedelta(days=40))
    start_at = utcnow() + timedelta(hours=12)
    event = event_service.create_event(None, {"title": "Ward meeting", "start_at": start_at, "status": "upcoming",
                                              "end_at": start_at + timedelta(hours=2), "unit_id": tree["w1"].id})
    for name in ("Eve", "Fay"):
        member = make_member(tree["w1"], first_name=name, last_name="Phiri", email=f"{name.lower()}@example.org",
                             status="active")
        event_service.register(None, event, member)
    db.session.commit()

    env = _env(committing_app, tmp_path, smtp_server)
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "a", "b")}
    worker = start(logs["worker"], env, "worker", "--workers", "2", app="real_sweeps_app()")
    a = start(logs["a"], env, "scheduler", "run", app="real_sweeps_app()")
    procs, b = [worker, a], None
    try:
        wait_for(lambda: len(smtp_server.messages) >= 4, what="the four reminders", procs=procs, timeout=90)
        wait_for(lambda: _ok_runs("reminders.renewal") >= 3 and _ok_runs("reminders.events") >= 3,
                 what="more firings of both reminder sweeps", procs=procs, timeout=60)
        b = start(logs["b"], env, "scheduler", "run", app="real_sweeps_app()")
        procs.append(b)
        wait_for(lambda: re.search("standby", _log_text(logs["b"])), what="scheduler B to stand by", procs=procs)
        seen = _ok_runs("reminders.renewal")
        wait_for(lambda: _ok_runs("reminders.renewal") >= seen + 3, what="three more firings", procs=procs)
    finally:
        for proc in reversed(procs):  # the standby first: it would take over from a leader that stops
            stop(proc)

    sent = Counter((m["To"], str(m["Subject"])) for m in smtp_server.messages)
    assert all(n == 1 for n in sent.values()), sent  # nothing twice
    assert sorted(to for to, _ in sent) == ["ada@example.org", "bo@example.org", "eve@example.org",
                                            "fay@example.org"], sent  # Cy has no address, Dee nothing due
    renewal = [s for to, s in sent if to in ("ada@example.org", "bo@example.org")]
    event_mails = [s for to, s in sent if to in ("eve@example.org", "fay@example.org")]
    assert len(renewal) == 2 and len(event_mails) == 2
    assert "leader now" not in _log_text(logs["b"])  # the second scheduler never scheduled
    assert not db.session.scalar(select(func.count()).select_from(SchedulerRun)
                                 .where(SchedulerRun.scheduled_by.startswith(f"{os.uname().nodename}:{b.pid}:")))
    assert db.session.get(Member, lapsing.id).status == "lapsed"
    db.session.rollback()

    login(client, "admin@test.org")
    page = client.get("/admin/reminders/log").get_data(as_text=True)
    assert "Cy Banda" in page and "No email address" in page

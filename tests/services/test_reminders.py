"""Reminders, exactly once: a real SMTP server (aiosmtpd) and the clock moved with time-machine.

Each test moves the clock to the moments that matter, runs the sweep as the
scheduler would (sweep, then one commit) and looks at what the SMTP server
received and what the console's log says.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, EventRegistration, MailMessage, MembershipCard, ReminderLog
from app.models.base import utcnow
from app.services import notifications, reminders
from app.services.cards.lifecycle import renew_card
from app.services.reminders import console, settings
from app.services.errors import ValidationErrors

EXPIRY = date(2027, 3, 31)
_numbers = iter(range(1, 10_000))


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def sweep(kind: str = "renewal") -> dict[str, int]:
    """One scheduled run: the sweep at the (travelled) clock, then the caller's one commit."""
    counts = (reminders.renewal_sweep if kind == "renewal" else reminders.event_sweep)(utcnow())
    db.session.commit()
    return counts


def make_card(member, expires_on: date = EXPIRY, **fields) -> MembershipCard:
    card = MembershipCard(member_id=member.id, card_number=f"T-{next(_numbers):06d}", card_type="standard",
                          status="active", issued_on=expires_on - timedelta(days=365), expires_on=expires_on, **fields)
    db.session.add(card)
    db.session.flush()
    return card


@pytest.fixture()
def ada(tree, make_member):
    member = make_member(tree["w1"], first_name="Ada", last_name="Banda", email="ada@example.org")
    make_card(member)
    return member


def log_rows(member) -> list[ReminderLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(ReminderLog).where(ReminderLog.member_id == member.id)
                                   .order_by(ReminderLog.id)))


def test_each_renewal_offset_goes_out_once_at_its_day_across_re_runs(app, smtp_mail, ada):
    timeline = [(EXPIRY - timedelta(days=31), 0), (EXPIRY - timedelta(days=30), 1), (EXPIRY - timedelta(days=30), 0),
                (EXPIRY - timedelta(days=29), 0), (EXPIRY - timedelta(days=7), 1), (EXPIRY, 1), (EXPIRY, 0),
                (EXPIRY + timedelta(days=13), 0), (EXPIRY + timedelta(days=14), 1), (EXPIRY + timedelta(days=15), 0)]
    sent = 0
    for day, expected in timeline:
        for hour in (0, 9, 23):
            with time_machine.travel(at(day, hour), tick=False):
                counts = sweep()
            assert counts["mailed"] == (expected if hour == 0 else 0), (day, hour, counts)
        sent += expected
        assert len(smtp_mail.wait_for(sent)) == sent
    subjects = [m["Subject"] for m in smtp_mail.messages]
    assert subjects == ["Your Muster Test Org membership card expires in 30 days".replace(
        "Muster Test Org", app.config["ORG_NAME"]),
        f"Your {app.config['ORG_NAME']} membership card expires in 7 days",
        f"Your {app.config['ORG_NAME']} membership card expires today",
        f"Your {app.config['ORG_NAME']} membership card expired 14 days ago"]
    assert {m["To"] for m in smtp_mail.messages} == {"ada@example.org"}
    body = smtp_mail.messages[0].get_body(("plain",)).get_content()
    assert "Hello Ada," in body and f"{app.config['PUBLIC_URL']}/dues" in body
    assert f"Renew now (no need to sign in): {app.config['PUBLIC_URL']}/renew/" in body
    assert "31 March 2027" in body
    assert smtp_mail.messages[0]["List-Unsubscribe"]  # an optional notice: one-click unsubscribe
    assert [r.kind for r in log_rows(ada)] == ["renewal-30", "renewal-7", "renewal+0", "renewal+14"]
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 4


def test_a_scheduler_down_over_a_weekend_catches_up_once(app, smtp_mail, ada):
    with time_machine.travel(at(EXPIRY - timedelta(days=5)), tick=False):  # -7 fell due on a Friday; back Sunday
        assert sweep()["mailed"] == 1
        assert sweep()["mailed"] == 0
    assert [r.kind for r in log_rows(ada)] == ["renewal-7"]
    with time_machine.travel(at(EXPIRY + timedelta(days=60)), tick=False):  # long gone: +14 is stale, not sent
        assert sweep()["mailed"] == 0


def test_renewal_stops_the_rest_and_the_log_says_renewed(app, smtp_mail, ada):
    with time_machine.travel(at(EXPIRY - timedelta(days=30)), tick=False):
        assert sweep()["mailed"] == 1
    card = db.session.scalar(select(MembershipCard).where(MembershipCard.member_id == ada.id))
    with time_machine.travel(at(EXPIRY - timedelta(days=20)), tick=False):
        renew_card(None, card)
        db.session.commit()
    new_expiry = card.expires_on
    assert new_expiry > EXPIRY
    for day in (EXPIRY - timedelta(days=7), EXPIRY, EXPIRY + timedelta(days=14)):
        with time_machine.travel(at(day), tick=False):
            counts = sweep()
            assert counts["mailed"] == 0 and counts["renewed"] == 1
            assert sweep()["renewed"] == 0  # recorded once
    assert len(smtp_mail.messages) == 1
    rows = log_rows(ada)
    assert [(r.kind, r.outcome) for r in rows] == [("renewal-30", "mailed"), ("renewal-7", "skipped"),
                                                   ("renewal+0", "skipped"), ("renewal+14", "skipped")]
    assert all(r.reason == reminders.REASON_RENEWED for r in rows[1:])
    with time_machine.travel(at(new_expiry - timedelta(days=30)), tick=False):  # the new expiry's reminders run
        assert sweep()["mailed"] == 1
    assert len(smtp_mail.wait_for(2)) == 2


def test_opted_out_members_get_the_portal_notice_but_no_mail(app, smtp_mail, ada, tree, make_member):
    notifications.set_email(ada, "reminder.renewal", False)
    nobody = make_member(tree["w1"], first_name="Nomail", email=None)
    make_card(nobody)
    db.session.commit()
    with time_machine.travel(at(EXPIRY - timedelta(days=7)), tick=False):
        counts = sweep()
    assert counts["opted_out"] == 1 and counts["no_email"] == 1 and counts["mailed"] == 0
    assert smtp_mail.messages == []
    assert [(r.outcome, r.reason) for r in log_rows(ada)] == [("skipped", reminders.REASON_OPTED_OUT)]
    assert [(r.outcome, r.reason) for r in log_rows(nobody)] == [("skipped", reminders.REASON_NO_EMAIL)]
    assert notifications.unread_count(ada) == 1 and notifications.unread_count(nobody) == 1
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 0


def test_the_unsubscribe_link_in_a_reminder_stops_the_next_one(app, smtp_mail, ada, client):
    with time_machine.travel(at(EXPIRY - timedelta(days=30)), tick=False):
        sweep()
    body = smtp_mail.wait_for(1)[0].get_body(("plain",)).get_content()
    link = next(word for word in body.split() if "/unsubscribe/" in word)
    token = link.rsplit("/", 1)[1]
    assert notifications.unsubscribe(token).kind == "reminder.renewal"
    db.session.commit()
    with time_machine.travel(at(EXPIRY - timedelta(days=7)), tick=False):
        assert sweep()["opted_out"] == 1
    assert len(smtp_mail.messages) == 1


def test_a_rollback_after_the_log_insert_leaves_no_trace_and_the_next_sweep_sends(app, smtp_mail, ada):
    db.session.commit()  # the member and card exist before the run
    with time_machine.travel(at(EXPIRY - timedelta(days=7)), tick=False):
        assert reminders.renewal_sweep(utcnow())["mailed"] == 1
        db.session.rollback()  # the process died before its commit
        assert log_rows(ada) == [] and smtp_mail.messages == []
        assert sweep()["mailed"] == 1
        assert sweep()["mailed"] == 0
    assert len(smtp_mail.wait_for(1)) == 1
    assert [r.outcome for r in log_rows(ada)] == ["mailed"]


def test_a_delivery_lost_after_the_commit_is_sent_once_by_the_mail_sweep(app, smtp_mail, ada, monkeypatch):
    import app.tasks.mail as mail_tasks

    def lost(*_args, **_kwargs):
        raise ConnectionError("queue store unreachable")

    with time_machine.travel(at(EXPIRY - timedelta(days=7)), tick=False), monkeypatch.context() as patch:
        patch.setattr(mail_tasks, "enqueue_delivery", lost)
        assert sweep()["mailed"] == 1  # committed; the enqueue after commit failed (logged)
        assert sweep()["mailed"] == 0  # restart: the key is taken, nothing new
    assert smtp_mail.messages == []
    [row] = log_rows(ada)
    assert row.mail_message.status == "queued"
    with time_machine.travel(at(EXPIRY - timedelta(days=7), 10), tick=False):  # an hour later the mail sweep runs
        assert mail_tasks.sweep_mail.call_local() == 1
        assert mail_tasks.sweep_mail.call_local() == 0
    db.session.expire_all()
    assert (row.mail_message.status, row.mail_message.reason) == ("sent", "")
    assert len(smtp_mail.wait_for(1)) == 1
    db.session.expire_all()
    assert row.mail_message.status == "sent"


def test_a_failing_smtp_server_is_retried_then_logged_as_failed(app, smtp_mail, ada, monkeypatch):
    from app.tasks.mail import deliver_mail

    monkeypatch.setitem(app.config, "MAIL_MAX_ATTEMPTS", 3)
    smtp_mail.refuse_data("421 4.3.2 busy", "451 4.7.1 try later", "421 4.3.2 still busy")
    with time_machine.travel(at(EXPIRY - timedelta(days=7)), tick=False):
        sweep()
    [row] = log_rows(ada)
    message_id = row.mail_message_id
    assert row.mail_message.status == "queued" and row.mail_message.attempts == 1
    for attempt in (2, 3):
        with time_machine.travel(at(EXPIRY - timedelta(days=6), attempt), tick=False):  # past the back-off
            deliver_mail.call_local(message_id)
    db.session.expire_all()
    message = db.session.get(MailMessage, message_id)
    assert (message.status, message.attempts) == ("failed", 3) and smtp_mail.refused == 3
    assert console.status_of(log_rows(ada)[0]) == (
        "failed", ("Failed after retries: Gave up after 3 attempts. Last: The server refused the message: "
                   "421 4.3.2 still busy"))
    with time_machine.travel(at(EXPIRY - timedelta(days=6), 5), tick=False):
        assert sweep()["mailed"] == 0  # failed is logged, never silently re-sent or lost


def _event(unit, start: datetime, **fields) -> Event:
    event = Event(title="Ward meeting", start_at=start, end_at=start + timedelta(hours=2), unit_id=unit.id,
                  status="upcoming", venue="Community hall", **fields)
    db.session.add(event)
    db.session.flush()
    return event


def test_event_reminders_go_to_registered_members_once_before_the_start(app, smtp_mail, tree, make_member):
    start = datetime(2027, 5, 10, 15, tzinfo=timezone.utc)
    event = _event(tree["w1"], start)
    going, cancelled, waiting = (make_member(tree["w1"], email=f"{n}@example.org") for n in ("go", "cx", "wait"))
    for member, status in ((going, "registered"), (cancelled, "cancelled"), (waiting, "waitlisted")):
        db.session.add(EventRegistration(event_id=event.id, member_id=member.id, status=status))
    draft = _event(tree["w1"], start)
    draft.status = "draft"
    db.session.add(EventRegistration(event_id=draft.id, member_id=going.id, status="registered"))
    db.session.commit()
    for moment, expected in ((start - timedelta(hours=25), 0), (start - timedelta(hours=24), 1),
                             (start - timedelta(hours=23), 0), (start - timedelta(hours=1), 0), (start, 0)):
        with time_machine.travel(moment, tick=False):
            assert sweep("event")["mailed"] == expected, moment
    [message] = smtp_mail.wait_for(1)
    assert message["To"] == "go@example.org" and message["Subject"].startswith("Reminder: Ward meeting")
    assert f"{app.config['PUBLIC_URL']}/events/{event.id}" in message.get_body(("plain",)).get_content()


def test_settings_saved_by_an_admin_override_the_environment(app, smtp_mail, ada, staff):
    with pytest.raises(ValidationErrors) as refused:
        settings.update(staff["admin"], {"renewal_offsets": "-3,x", "event_hours": "0", "renewal_subject": "{nope}",
                                         "renewal_text": "", "event_subject": "", "event_text": ""})
    assert set(refused.value.errors) == {"renewal_offsets", "event_hours", "renewal_subject"}
    settings.update(staff["admin"], {"renewal_offsets": "-3", "event_hours": "", "renewal_subject": "Renew, {first_name}!",
                                     "renewal_text": "Only {when}.", "event_subject": "", "event_text": ""})
    db.session.commit()
    assert settings.current().renewal_offsets == (-3,) and settings.current().event_hours == 24
    with time_machine.travel(at(EXPIRY - timedelta(days=7)), tick=False):
        assert sweep()["mailed"] == 0
    with time_machine.travel(at(EXPIRY - timedelta(days=3)), tick=False):
        assert sweep()["mailed"] == 1
    [message] = smtp_mail.wait_for(1)
    assert message["Subject"] == "Renew, Ada!" and "Only expires in 3 days." in message.get_body(("plain",)).get_content()


def test_a_coordinator_may_not_change_the_settings(app, staff):
    from app.services.errors import Forbidden

    with pytest.raises(Forbidden):
        settings.update(staff["coordinator"], {k: "" for k in settings.KEYS})


def test_two_sweeps_at_the_same_moment_send_each_reminder_once(committing_app, smtp_mail, tree, make_member):
    from app.database import take_write_lock

    members = [make_member(tree["w1"], email=f"m{n}@example.org") for n in range(20)]
    for member in members:
        make_card(member)
    emails = sorted(m.email for m in members)
    db.session.commit()
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with committing_app.app_context():
                barrier.wait(timeout=10)
                take_write_lock()  # SQLite: the write lock first (app/database.py); PostgreSQL: nothing
                results.append(reminders.renewal_sweep(utcnow()))
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with time_machine.travel(at(EXPIRY - timedelta(days=7)), tick=True):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert sorted(r["mailed"] for r in results) == [0, 20]
    received = smtp_mail.wait_for(20)
    db.session.remove()
    assert sorted(m["To"] for m in received) == emails
    assert db.session.scalar(select(func.count()).select_from(ReminderLog)) == 20
    assert db.session.scalar(select(func.count()).select_from(MailMessage)) == 20


def test_the_scheduler_runs_the_renewal_sweep_by_name_and_records_its_counts(app, smtp_mail, ada):
    from app.scheduler import runs

    with time_machine.travel(at(EXPIRY), tick=False):
        run = runs.run_now("reminders.renewal")
        db.session.commit()
        again = runs.run_now("reminders.renewal")
        db.session.commit()
    assert (run.status, run.counts["mailed"], again.status, again.counts["mailed"]) == ("ok", 1, "ok", 0), run.error
    assert len(smtp_mail.wait_for(1)) == 1

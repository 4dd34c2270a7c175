"""Mail about a member's place at an event, read from a real SMTP server (aiosmtpd): the registration
confirmation (portal and API alike go through ``self_service.register_self``) and the news of a place won
from the waiting list (whoever freed it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import MailMessage
from app.services import events as event_service
from tests.portal.conftest import post, text


@pytest.fixture()
def lusaka(app, monkeypatch):
    """The organisation's time zone is Africa/Lusaka (UTC+2): mail shows local times."""
    monkeypatch.setitem(app.config, "TIMEZONE", "Africa/Lusaka")


def _event(make_event, **fields):
    event = make_event(title="Ward meeting", venue="Community hall", location="Plot 4", **fields)
    # 3 March 2027, 16:00 UTC = 18:00 in Lusaka.
    event.start_at = datetime(2027, 3, 3, 16, 0, tzinfo=UTC)
    event.end_at = event.start_at + timedelta(hours=2)
    db.session.flush()
    return event


def bodies(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def mail_rows(kind: str) -> int:
    return db.session.scalar(select(func.count()).select_from(MailMessage).where(MailMessage.kind == kind))


def test_registering_in_the_portal_sends_one_confirmation(app, portal, member, make_event, smtp_mail, lusaka):
    event = _event(make_event, capacity=10)
    assert post(portal, f"/events/{event.id}/register").status_code == 302

    [received] = smtp_mail.wait_for(1)
    assert received["To"] == "chanda.m@example.org"
    assert received["Subject"] == "You are registered: Ward meeting"
    plain, html = bodies(received)
    link = f"{app.config['PUBLIC_URL']}/events/{event.id}"
    assert "Hello Chanda," in plain and "You are registered for Ward meeting." in plain
    assert "When: Wednesday 03 March 2027, 18:00 – 20:00 CAT" in plain  # local time, not UTC
    assert "Where: Community hall, Plot 4" in plain and link in plain
    assert f'href="{link}"' in html and "<strong>Ward meeting</strong>" in html and "18:00" in html

    # Registering again (a double tap, a retried request) sends nothing more.
    post(portal, f"/events/{event.id}/register")
    assert mail_rows("events.registered") == 1 and len(smtp_mail.messages) == 1

    # Cancel, then register again: a new confirmation.
    post(portal, f"/events/{event.id}/cancel")
    post(portal, f"/events/{event.id}/register")
    assert len(smtp_mail.wait_for(2)) == 2 and mail_rows("events.registered") == 2


def test_a_full_event_confirms_the_waiting_list_place_and_then_the_promotion(portal, member, tree, make_member,
                                                                            make_event, smtp_mail):
    event = _event(make_event, capacity=1)
    holder = make_member(tree["w1"], email="holder@example.org")
    event_service.register(None, event, holder)  # staff registration: no confirmation mail
    db.session.commit()
    post(portal, f"/events/{event.id}/register")

    [waiting] = smtp_mail.wait_for(1)
    assert waiting["Subject"] == "On the waiting list: Ward meeting"
    plain, _html = bodies(waiting)
    assert "is full, so you are on the waiting list (number 1)" in plain
    assert "Bring your membership card" not in plain

    # Staff cancel the holder's place: Chanda moves up and is told so.
    event_service.cancel_registration(None, event_service.registration_for(event, holder))
    db.session.commit()
    [_, won] = smtp_mail.wait_for(2)
    assert won["To"] == "chanda.m@example.org" and won["Subject"] == "You have a place: Ward meeting"
    plain, html = bodies(won)
    assert "a place came free at Ward meeting and it is yours" in plain
    assert "When: Wednesday 03 March 2027, 16:00 – 18:00 UTC" in plain and f"/events/{event.id}" in html


def test_a_larger_capacity_tells_the_promoted(portal, member, tree, make_member, make_event, smtp_mail):
    event = _event(make_event, capacity=1)
    event_service.register(None, event, make_member(tree["w1"]))
    db.session.commit()
    post(portal, f"/events/{event.id}/register")  # waiting list
    event_service.update_event(None, event, {"capacity": 2})
    db.session.commit()
    subjects = [m["Subject"] for m in smtp_mail.wait_for(2)]
    assert subjects == ["On the waiting list: Ward meeting", "You have a place: Ward meeting"]


def test_a_refused_or_rolled_back_registration_sends_nothing(portal, member, make_event, smtp_mail):
    over = make_event(days=-2, title="Over")
    post(portal, f"/events/{over.id}/register")
    assert "This event is over." in text(portal.get(f"/events/{over.id}"))

    from app.models import User
    from app.services import self_service

    event = _event(make_event)
    user = db.session.scalar(select(User).where(User.email == "chanda@test.org"))
    with db.session.begin_nested() as savepoint:
        self_service.register_self(user, event.id)
        savepoint.rollback()
    db.session.commit()
    assert mail_rows("events.registered") == 0 and smtp_mail.messages == []


def test_a_member_without_an_email_address_is_written_to_at_their_login(client, tree, make_member, make_user,
                                                                        make_event, smtp_mail):
    from tests.conftest import login

    mutale = make_member(tree["w1"], first_name="Mutale")
    make_user("mutale@test.org", "member", member=mutale)
    login(client, "mutale@test.org")
    event = make_event(title="Ward meeting", capacity=1)
    post(client, f"/events/{event.id}/register")
    [received] = smtp_mail.wait_for(1)
    assert received["To"] == "mutale@test.org" and "Hello Mutale," in bodies(received)[0]


def test_a_promoted_member_with_no_address_at_all_gets_a_suppressed_row(tree, make_member, make_event, smtp_mail):
    event = make_event(capacity=1)
    holder, nobody = make_member(tree["w1"]), make_member(tree["w1"])
    event_service.register(None, event, holder)
    event_service.register(None, event, nobody)
    event_service.cancel_registration(None, event_service.registration_for(event, holder))
    db.session.commit()
    row = db.session.scalar(select(MailMessage).where(MailMessage.kind == "events.promoted"))
    assert (row.status, row.member_id, row.reason) == ("suppressed", nobody.id, "No email address.")
    assert smtp_mail.messages == []

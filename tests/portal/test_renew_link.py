"""A renewal reminder's "Renew now" link (issue 14): paying without signing in, and no reminder once paid.

The reminder goes out through the real sweep and a real SMTP server
(aiosmtpd); the link is taken from the mail as the member would click it,
followed by a client that is not signed in, and paid at the local Stripe
stand-in. Then the next reminders find the period paid for.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import func, select

from app.extensions import db
from app.models import MembershipCard, Payment, ReminderLog
from app.models.base import utcnow
from app.services import dues, reminders
from app.services.cards import add_months
from app.services.dues import tiers
from tests.conftest import csrf_token_from
from tests.stripe_standin import standin_fixture

stripe_standin = standin_fixture()


@pytest.fixture()
def annual(staff):
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "150", "currency": "ZMW",
                                              "duration_months": "12"})
    db.session.commit()
    return tier


@pytest.fixture()
def ada(tree, make_member):
    """Ada's card runs out in 30 days: the -30 reminder is due today."""
    from app.services import cards

    member = make_member(tree["w1"], first_name="Ada", last_name="Banda", email="ada@example.org")
    cards.issue_card(None, member, today=add_months(date.today() + timedelta(days=30), -12))
    db.session.commit()
    return member


def sweep(at: datetime | None = None) -> dict[str, int]:
    counts = reminders.renewal_sweep(at or utcnow())
    db.session.commit()
    return counts


def renew_link(message) -> str:
    body = message.get_body(("plain",)).get_content()
    return re.search(r"Renew now \(no need to sign in\): (\S+)", body).group(1)


def path_of(url: str, app) -> str:
    assert url.startswith(app.config["PUBLIC_URL"] + "/renew/"), url
    return url[len(app.config["PUBLIC_URL"]):]


def expiry(member) -> date:
    db.session.expire_all()
    return db.session.scalar(select(MembershipCard.expires_on).where(MembershipCard.member_id == member.id)
                             .order_by(MembershipCard.id.desc()))


def test_the_reminders_renew_now_link_pays_without_signing_in(app, client, smtp_mail, ada, annual, stripe_standin):
    before = expiry(ada)
    assert sweep()["mailed"] == 1
    [message] = smtp_mail.wait_for(1)
    url = renew_link(message)
    assert not any(part in url.lower() for part in ("ada", "banda", ada.membership_number.lower()))  # names nobody
    html = message.get_body(("html",)).get_content()
    assert f'href="{url}"' in html and "Renew now" in html

    page = client.get(path_of(url, app))
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Hello Ada." in text and "Renew online" in text and "150.00 ZMW" in text
    assert "Banda" not in text  # only what paying needs
    response = client.post(path_of(url, app), data={"tier_id": annual.id, "csrf_token": csrf_token_from(text)})
    assert response.status_code == 303 and response.headers["Location"].startswith(stripe_standin.base_url)
    payment = db.session.scalar(select(Payment).where(Payment.member_id == ada.id))
    [sent] = stripe_standin.requests_to("POST", "/v1/checkout/sessions")
    assert sent.form["success_url"] == url + "/done?session_id={CHECKOUT_SESSION_ID}"
    assert sent.form["cancel_url"] == url

    stripe_standin.pay(payment.stripe_session_id)
    done = client.get(f"{path_of(url, app)}/done?session_id={payment.stripe_session_id}").get_data(as_text=True)
    assert 'data-status="completed"' in done and "your membership is renewed" in done
    assert expiry(ada) == add_months(before, 12)
    # Paid for the period: the link now says so instead of offering tiers.
    again = client.get(path_of(url, app)).get_data(as_text=True)
    assert "You can renew from" in again and "Renew online" not in again


def test_a_member_who_paid_gets_no_more_reminders_for_that_period(app, smtp_mail, ada, annual, staff):
    old = expiry(ada)
    assert sweep()["mailed"] == 1
    dues.record_manual(staff["admin"], ada, {"tier_id": annual.id, "method": "cash"})  # paid a treasurer
    db.session.commit()
    for days in (-7, 0, 14):  # the old expiry's remaining reminders
        moment = datetime.combine(old + timedelta(days=days), datetime.min.time(), timezone.utc) + timedelta(hours=9)
        with time_machine.travel(moment, tick=False):
            counts = sweep(utcnow())
        assert counts["mailed"] == 0 and counts["renewed"] == 1, (days, counts)
    assert len(smtp_mail.messages) == 1
    rows = db.session.scalars(select(ReminderLog).where(ReminderLog.member_id == ada.id).order_by(ReminderLog.id))
    assert [(r.kind, r.outcome) for r in rows] == [("renewal-30", "mailed"), ("renewal-7", "skipped"),
                                                   ("renewal+0", "skipped"), ("renewal+14", "skipped")]


def test_a_newer_reminder_replaces_the_link_and_bad_links_say_why(app, client, smtp_mail, ada, annual):
    assert sweep()["mailed"] == 1
    first = renew_link(smtp_mail.wait_for(1)[0])
    week_before = datetime.combine(expiry(ada) - timedelta(days=7), datetime.min.time(), timezone.utc)
    with time_machine.travel(week_before + timedelta(hours=9), tick=False):
        assert sweep(utcnow())["mailed"] == 1
    second = renew_link(smtp_mail.wait_for(2)[1])
    assert first != second
    stale = client.get(path_of(first, app))
    assert stale.status_code == 410 and "A newer link was sent" in stale.get_data(as_text=True)
    assert client.get(path_of(second, app)).status_code == 200
    for token in ("nonsense", path_of(second, app).split("/")[-1][:-3] + "abc", "x" * 5000):
        bad = client.get(f"/renew/{token}")
        assert bad.status_code == 400 and "not valid" in bad.get_data(as_text=True)
    forged = client.post(path_of(second, app), data={"tier_id": annual.id})  # no CSRF token
    assert forged.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_without_stripe_the_link_says_to_pay_a_treasurer(app, client, smtp_mail, ada, annual):
    sweep()
    page = client.get(path_of(renew_link(smtp_mail.wait_for(1)[0]), app)).get_data(as_text=True)
    assert 'id="offline-note"' in page and "Renew online" not in page


def test_another_members_session_is_not_found_through_a_link(app, client, smtp_mail, ada, annual, stripe_standin,
                                                             tree, make_member):
    from app.services.dues import online

    sweep()
    url = renew_link(smtp_mail.wait_for(1)[0])
    other = make_member(tree["w1"])
    payment, _ = online.start_checkout(other, annual)
    db.session.commit()
    assert client.get(f"{path_of(url, app)}/done?session_id={payment.stripe_session_id}").status_code == 404
    assert client.get(f"{path_of(url, app)}/done").status_code == 404

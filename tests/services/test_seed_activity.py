"""`flask seed-demo` brings a living organisation: past and upcoming events, registrations, check-ins, cards.

And running it again changes nothing: every count stays what it was.
"""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditEntry,
    CardTransaction,
    Event,
    EventCheckin,
    EventRegistration,
    Member,
    MembershipCard,
    PointsEntry,
    Referral,
    Unit,
    User,
)
from app.models.base import utcnow
from app.services import cards, events
from tests.conftest import login


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def counts() -> dict[str, int]:
    tables = {"units": Unit, "members": Member, "users": User, "events": Event, "registrations": EventRegistration,
              "checkins": EventCheckin, "cards": MembershipCard, "card_transactions": CardTransaction,
              "audit": AuditEntry, "referrals": Referral, "points_entries": PointsEntry}
    out = {name: count(model) for name, model in tables.items()}
    out.update({f"reg_{status}": count(EventRegistration, EventRegistration.status == status)
                for status in ("registered", "waitlisted", "attended", "no_show", "cancelled")})
    return out


def seed(runner, members: int = 150):
    result = runner.invoke(args=["seed-demo", "--members", str(members)])
    assert result.exit_code == 0, result.output
    return result


def test_seeding_creates_events_registrations_attendance_and_cards(runner, ctx):
    output = seed(runner).output
    now = utcnow()
    all_events = list(db.session.scalars(select(Event)))
    shown = {e.status_at(now) for e in all_events}
    assert {"upcoming", "completed"} <= shown
    assert all(e.status == "upcoming" for e in all_events)  # all published
    levels = {e.unit.level_name for e in all_events}
    assert {"province", "constituency", "ward"} <= levels
    assert f"{len(all_events)} events" in output

    for event in all_events:
        tally = events.counts(event)
        if event.status_at(now) == "completed":
            assert tally["attended"] > 0 and tally["registered"] == 0, event.title  # the rest are no-shows
        else:
            assert tally["attended"] == 0 and tally["registered"] > 0, event.title
            if event.capacity is not None:
                assert tally["registered"] <= event.capacity
    full = [e for e in all_events if e.capacity and events.counts(e)["waitlisted"]]
    assert full and all(events.counts(e)["places_left"] == 0 for e in full)  # a waiting list only when full

    c = counts()
    assert c["reg_no_show"] > 0 and c["reg_waitlisted"] > 0
    assert c["checkins"] == c["reg_attended"]  # every attendance came through the door's check-in
    assert count(EventRegistration, EventRegistration.source == "walk_in") > 0
    # Registrations only ever for members of the event's area, as the rules say.
    for reg in db.session.scalars(select(EventRegistration)):
        assert reg.member.unit.path.startswith(reg.event.unit.path)
        assert reg.member.status == "active"

    # Cards for most active members (one seeding serves both checks: it is the slow part of the test).
    active = count(Member, Member.status == "active", Member.deleted_at.is_(None))
    current = list(db.session.scalars(select(MembershipCard).where(MembershipCard.status == "active")))
    assert len(current) >= 0.75 * active
    assert all(card.member.status == "active" for card in current)
    assert len({card.member_id for card in current}) == len(current)  # one current card per member
    assert count(MembershipCard, MembershipCard.status == "revoked") == 2  # two reported lost and reissued
    assert cards.verify_token(cards.card_token(current[0])).status == "valid"
    assert f"{len(current) + 2} cards" in output

    # Referrals: credits only for active members, each with its award; a balance is the ledger's sum.
    credited = list(db.session.scalars(select(Referral).where(Referral.status == "credited")))
    assert credited and all(r.referred_member.status == "active" for r in credited)
    assert count(PointsEntry) == len(credited)
    statuses = {r.status for r in db.session.scalars(select(Referral))}
    assert "credited" in statuses and statuses & {"pending", "registered", "expired"}


def test_the_portal_member_has_a_card_and_events(runner, ctx, client):
    seed(runner, 60)
    user = db.session.scalar(select(User).where(User.email == "member@demo.test"))
    member = user.member
    card = cards.current_card(member)
    assert card is not None and card.status == "active" and card.expires_on is not None
    statuses = {r.status for r in db.session.scalars(
        select(EventRegistration).where(EventRegistration.member_id == member.id))}
    assert {"attended", "registered"} <= statuses
    assert db.session.scalars(events.visible_events(user)).first() is not None
    assert login(client, "member@demo.test", "demo-password").status_code == 302  # the logins are unchanged


def test_a_second_run_changes_no_counts(runner, ctx):
    seed(runner)
    first = counts()
    assert first["events"] and first["registrations"] and first["checkins"] and first["cards"]
    seed(runner)
    assert counts() == first
    assert "already has data" in runner.invoke(args=["seed-demo", "--if-empty"]).output
    assert counts() == first

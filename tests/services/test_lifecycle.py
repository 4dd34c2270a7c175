"""The status rules on the clock (app/services/lifecycle.py): card grace, expiry, lapse, renewal, no-shows, uploads.

The clock is moved with time-machine: a card issued on 10 Jan 2027 runs to
10 Jan 2028, is in grace (CARD_GRACE_DAYS = 30, the default) until 9 Feb 2028,
expires on the 10th, and its member lapses; renewal brings them back.
Every sweep is re-run to show it changes nothing the second time, and the
statements of a sweep are counted for 10 and 1,000 due rows: set-based work
issues the same number.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, select

from app.config import Config
from app.extensions import db
from app.models import (
    AuditEntry,
    CardTransaction,
    Event,
    EventRegistration,
    ImportUpload,
    Member,
    MembershipCard,
    MemberStatusChange,
)
from app.models.base import utcnow
from app.services import cards, jobs, lifecycle, storage
from app.services import events as ev
from app.services import imports as import_service
from app.services import members as member_service
from tests.conftest import csrf_token_from, login

ISSUED = datetime(2027, 1, 10, 9, 0, tzinfo=timezone.utc)
EXPIRES = date(2028, 1, 10)


def at(day: date, hour: int = 6) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 5, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def grace(app, monkeypatch):
    """The production default (the test config has none, for the tests written before grace)."""
    monkeypatch.setitem(app.config, "CARD_GRACE_DAYS", 30)
    return 30


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def rows_written() -> tuple[int, int, int]:
    return count(CardTransaction), count(MemberStatusChange), count(AuditEntry)


def test_default_grace_is_thirty_days(monkeypatch):
    monkeypatch.delenv("MUSTER_GRACE_DAYS", raising=False)
    assert Config().CARD_GRACE_DAYS == 30
    monkeypatch.setenv("MUSTER_GRACE_DAYS", "14")
    assert Config().CARD_GRACE_DAYS == 14


def test_active_grace_expired_lapsed_and_back_on_renewal(tree, staff, make_member):
    coord = staff["admin"]  # issues and renews cards (a ward coordinator only reads them)
    with time_machine.travel(ISSUED, tick=False):
        member = make_member(tree["w1"], first_name="Mutale", last_name="Kabwe")
        card = cards.issue_card(coord, member)
        token = cards.card_token(card)
        lifetime = cards.issue_card(coord, make_member(tree["w1"]), "lifetime")
        db.session.commit()
    assert card.expires_on == EXPIRES

    # The last day of validity: valid; the sweep has nothing to do.
    with time_machine.travel(at(EXPIRES), tick=False):
        assert cards.verify_token(token).status == "valid"
        assert lifecycle.expire_sweep(utcnow()) == {"cards_expired": 0, "members_lapsed": 0}

    # The day after, and up to the 30th day: in grace, still renewable, member still active.
    for day in (EXPIRES + timedelta(days=1), EXPIRES + timedelta(days=30)):
        with time_machine.travel(at(day), tick=False):
            verdict = cards.verify_token(token)
            assert verdict.status == "grace"
            assert verdict.message == (f"Card {card.card_number} expired on 2028-01-10 and is in grace until "
                                       "2028-02-09: still valid, renew it before then.")
            assert card.effective_status() == "active" and card.in_grace()
            before = rows_written()
            assert lifecycle.expire_sweep(utcnow()) == {"cards_expired": 0, "members_lapsed": 0}
            assert rows_written() == before
            db.session.refresh(member)
            assert member.status == "active" and card.status == "active"

    # Day 31: past grace. The card expires, its member lapses; each change names the rule.
    past = EXPIRES + timedelta(days=31)
    with time_machine.travel(at(past), tick=False):
        assert cards.verify_token(token).status == "expired"
        before = rows_written()
        assert lifecycle.expire_sweep(utcnow()) == {"cards_expired": 1, "members_lapsed": 1}
        db.session.commit()
        assert rows_written() == (before[0] + 1, before[1] + 1, before[2] + 2)
        assert card.status == "expired" and member.status == "lapsed"
        entry = card.transactions[0]
        assert (entry.type, entry.from_status, entry.to_status, entry.rule, entry.actor_id) == (
            "expired", "active", "expired", "card.past_grace", None)
        assert entry.reason == "rule card.past_grace: card expired past 30-day grace"
        change = member.status_changes[0]
        assert (change.from_status, change.to_status, change.rule) == ("active", "lapsed",
                                                                      "member.lapsed_after_grace")
        audits = {a.action: a for a in db.session.scalars(select(AuditEntry).where(AuditEntry.at == utcnow()))}
        assert audits["card.expired"].object_id == str(card.id)
        assert audits["card.expired"].unit_id == tree["w1"].id
        assert audits["card.expired"].changes["rule"] == "card.past_grace"
        assert audits["card.expired"].summary == (f"Card {card.card_number} of Mutale Kabwe: expired "
                                                  "(rule card.past_grace: card expired past 30-day grace)")
        assert audits["member.status"].object_id == str(member.id)
        assert audits["member.status"].changes == {
            "status": {"before": "active", "after": "lapsed"}, "rule": "member.lapsed_after_grace",
            "reason": "rule card.past_grace: card expired past 30-day grace"}
        assert "Mutale Kabwe: active -> lapsed" in audits["member.status"].summary

        # Idempotent: a second run (a catch-up, a double firing) changes nothing and writes nothing.
        after = rows_written()
        assert lifecycle.expire_sweep(utcnow()) == {"cards_expired": 0, "members_lapsed": 0}
        assert rows_written() == after

    # Lifetime cards never expire, whatever the date.
    with time_machine.travel(at(date(2090, 1, 1)), tick=False):
        assert lifecycle.expire_sweep(utcnow())["cards_expired"] == 0
        assert lifetime.status == "active" and cards.verify_token(cards.card_token(lifetime)).status == "valid"

    # Renewal: the card is active for a year from today, the member the rule lapsed is active again.
    with time_machine.travel(at(past + timedelta(days=5)), tick=False):
        cards.renew_card(coord, card, "paid")
        db.session.commit()
        assert card.status == "active" and card.expires_on == date(2029, 2, 15)
        assert member.status == "active"
        back = member.status_changes[0]
        assert (back.from_status, back.to_status, back.rule, back.actor_id) == ("lapsed", "active",
                                                                                "member.renewed", coord.id)
        assert cards.verify_token(token).status == "valid"
        audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "member.status")
                                   .order_by(AuditEntry.id.desc())).first()
        assert audit.changes["rule"] == "member.renewed" and audit.actor_id == coord.id
        assert lifecycle.expire_sweep(utcnow()) == {"cards_expired": 0, "members_lapsed": 0}


def test_renewal_in_grace_keeps_the_member_active(tree, make_member):
    with time_machine.travel(ISSUED, tick=False):
        member = make_member(tree["w1"])
        card = cards.issue_card(None, member)
    with time_machine.travel(at(EXPIRES + timedelta(days=10)), tick=False):
        assert card.in_grace()
        cards.renew_card(None, card)
        assert card.expires_on == date(2029, 1, 20) and member.status == "active"
        assert [c.to_status for c in member.status_changes] == ["active"]  # created active; nothing since


def test_a_member_lapsed_by_a_person_is_not_brought_back_by_renewal(tree, make_member):
    with time_machine.travel(ISSUED, tick=False):
        member = make_member(tree["w1"])
        card = cards.issue_card(None, member)
    with time_machine.travel(at(EXPIRES + timedelta(days=40)), tick=False):
        member_service.change_status(None, member, "lapsed", "left the area")
        assert lifecycle.expire_sweep(utcnow()) == {"cards_expired": 1, "members_lapsed": 0}
        with pytest.raises(cards.ServiceError, match="is lapsed"):
            cards.renew_card(None, card)


def test_only_the_latest_card_lapses_a_member(tree, make_member):
    with time_machine.travel(ISSUED, tick=False):
        reissued = make_member(tree["w1"])
        old = cards.issue_card(None, reissued)
        cards.reissue_card(None, old, "lost")  # the new card has the same expiry
        no_card = make_member(tree["w1"])
        revoked = make_member(tree["w1"])
        cards.revoke_card(None, cards.issue_card(None, revoked), "stolen")
    with time_machine.travel(at(EXPIRES + timedelta(days=31)), tick=False):
        assert lifecycle.expire_sweep(utcnow()) == {"cards_expired": 1, "members_lapsed": 1}
        assert (reissued.status, no_card.status, revoked.status) == ("lapsed", "active", "active")


def test_the_portal_says_in_grace_and_renewal_is_still_open(client, tree, make_member, make_user):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa")
    make_user("chanda@test.org", "member", member=member)
    card = cards.issue_card(None, member)
    card.expires_on = date.today() - timedelta(days=3)
    db.session.commit()
    login(client, "chanda@test.org")
    page = client.get("/card").get_data(as_text=True)
    assert 'data-status="grace"' in page and "In grace." in page
    ends = card.expires_on + timedelta(days=30)
    assert f"grace period until {ends:%d %b %Y}" in page and "you can still renew it" in page
    assert client.get("/card/qr.png").status_code == 200  # still valid: the code is shown


def test_the_verify_page_says_in_grace(client, tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"], first_name="Chanda", last_name="Mwansa"))
    card.expires_on = date.today() - timedelta(days=2)
    db.session.commit()
    html = client.get(f"/verify/{cards.card_token(card)}").get_data(as_text=True)
    assert 'data-status="grace"' in html and 'id="verification-status">In grace<' in html
    assert "is in grace until" in html and "Chanda M." in html
    # Past grace it is expired, as before.
    card.expires_on = date.today() - timedelta(days=31)
    db.session.commit()
    html = client.get(f"/verify/{cards.card_token(card)}").get_data(as_text=True)
    assert 'data-status="expired"' in html and "Expired" in html


def test_the_door_admits_a_card_in_grace_and_says_so(client, tree, staff, make_member):
    now = utcnow()
    event = ev.create_event(staff["coordinator"], {
        "title": "Ward meeting", "start_at": now - timedelta(hours=1), "end_at": now + timedelta(hours=3),
        "unit_id": tree["w1"].id, "status": "upcoming", "walk_ins_allowed": True})
    late, gone = make_member(tree["w1"]), make_member(tree["w1"])
    in_grace, expired = cards.issue_card(None, late), cards.issue_card(None, gone)
    in_grace.expires_on = date.today() - timedelta(days=5)
    expired.expires_on = date.today() - timedelta(days=45)
    db.session.commit()
    login(client, "coord@test.org")
    url = f"/admin/events/{event.id}/checkin"
    html = client.get(url).get_data(as_text=True)
    csrf = csrf_token_from(html.replace('<meta name="csrf-token" content="', '<input name="csrf_token" value="'))
    answer = client.post(url, json={"token": cards.card_token(in_grace), "nonce": "g1"},
                         headers={"X-CSRFToken": csrf}).get_json()
    assert answer["result"] == "admitted" and answer["member"]["id"] == late.id
    assert "Card in grace" in answer["message"] and "is in grace until" in answer["message"]
    refused = client.post(url, json={"token": cards.card_token(expired), "nonce": "g2"},
                          headers={"X-CSRFToken": csrf}).get_json()
    assert (refused["result"], refused["reason"]) == ("rejected", "card_expired")


# --- no-shows and uploads --------------------------------------------------------------------


def test_no_show_sweep_after_the_margin(app, tree, staff, make_member, monkeypatch):
    monkeypatch.setitem(app.config, "NO_SHOW_AFTER_HOURS", 2)
    coord = staff["coordinator"]
    came, absent, waiting = make_member(tree["w1"]), make_member(tree["w1"]), make_member(tree["w1"])
    start = datetime(2030, 5, 1, 8, 0, tzinfo=timezone.utc)
    with time_machine.travel(start - timedelta(days=1), tick=False):
        event = ev.create_event(coord, {"title": "AGM", "start_at": start, "end_at": start + timedelta(hours=3),
                                        "unit_id": tree["w1"].id, "status": "upcoming", "capacity": 2})
        for member in (came, absent, waiting):
            ev.register(coord, event, member)
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        ev.set_attendance(coord, event, came, "attended")
    statuses = lambda: {r.member_id: r.status for r in db.session.scalars(
        select(EventRegistration).where(EventRegistration.event_id == event.id))}
    # Ended an hour ago: within the margin, nothing yet.
    assert lifecycle.no_show_sweep(start + timedelta(hours=4)) == {"no_shows": 0}
    assert lifecycle.no_show_sweep(start + timedelta(hours=5, minutes=1)) == {"no_shows": 1}
    assert statuses() == {came.id: "attended", absent.id: "no_show", waiting.id: "waitlisted"}
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "event.no_shows")).one()
    assert audit.summary == "1 no-show(s) marked for AGM" and audit.object_id == str(event.id)
    assert audit.changes == {"no_show": 1, "rule": "registration.no_show"}
    before = count(AuditEntry)
    assert lifecycle.no_show_sweep(start + timedelta(days=2)) == {"no_shows": 0}  # idempotent
    assert count(AuditEntry) == before


def _upload(actor, created_at):
    with open("tests/data/members_utf8.csv", "rb") as fh:
        upload = import_service.save_upload(actor, fh, "members.csv")
    upload.created_at = created_at
    db.session.commit()
    return upload


def test_upload_cleanup_deletes_abandoned_uploads_with_their_files(app, staff):
    admin = staff["admin"]
    now = utcnow()
    old = now - timedelta(hours=app.config["IMPORT_UPLOAD_TTL_HOURS"] + 1)
    abandoned, imported, fresh = _upload(admin, old), _upload(admin, old), _upload(admin, now)
    job = jobs.create_job(admin, "members.import", {})
    job.state = "succeeded"
    imported.import_job_id = job.id
    db.session.commit()
    keys = {u.id: u.stored_name for u in (abandoned, imported, fresh)}
    ids = (abandoned.id, imported.id, fresh.id)
    assert all(storage.exists(key) for key in keys.values())

    assert lifecycle.upload_cleanup_sweep(now) == {"uploads_deleted": 1, "files_deleted": 2}
    assert storage.exists(keys[ids[0]])  # until the sweep is committed
    db.session.commit()
    assert not storage.exists(keys[ids[0]]) and not storage.exists(keys[ids[1]]) and storage.exists(keys[ids[2]])
    left = dict(db.session.execute(select(ImportUpload.id, ImportUpload.stored_name)
                                   .where(ImportUpload.id.in_(ids))).all())
    assert left == {ids[1]: "", ids[2]: keys[ids[2]]}  # the imported upload's record stays, without its file
    assert lifecycle.upload_cleanup_sweep(now) == {"uploads_deleted": 0, "files_deleted": 0}


# --- set-based: the number of statements does not grow with the rows ----------------------


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.count += 1

    def __enter__(self):
        sa_event.listen(db.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc) -> None:
        sa_event.remove(db.engine, "before_cursor_execute", self)


def _population(unit, n: int, expires_on: date, tag: str) -> None:
    """``n`` active members, each with a standard card expiring on ``expires_on`` (bulk, like a big register)."""
    member_ids = db.session.scalars(insert(Member).returning(Member.id), [
        {"membership_number": f"{tag}{i:07d}", "first_name": f"F{i}", "last_name": f"{tag}{i}", "unit_id": unit.id,
         "status": "active"} for i in range(n)]).all()
    db.session.execute(insert(MembershipCard), [
        {"member_id": mid, "card_number": f"{tag}-2027-{i:06d}-0", "card_type": "standard", "status": "active",
         "issued_on": expires_on - timedelta(days=365), "expires_on": expires_on}
        for i, mid in enumerate(member_ids)])


def _events_with_regs(coord, unit, n: int, start: datetime, tag: str) -> None:
    """Five ended events with ``n`` registered members between them (bulk)."""
    event_ids = [ev.create_event(coord, {"title": f"{tag}{k}", "start_at": start, "end_at": start + timedelta(hours=2),
                                         "unit_id": unit.id, "status": "upcoming"}).id for k in range(5)]
    member_ids = db.session.scalars(select(Member.id).where(Member.membership_number.like(f"{tag}%"))).all()
    db.session.execute(insert(EventRegistration), [
        {"event_id": event_ids[i % 5], "member_id": mid, "status": "registered", "registered_at": start}
        for i, mid in enumerate(member_ids)])


@pytest.mark.parametrize("sweep", ["expire", "no_shows"])
def test_sweeps_issue_the_same_statements_for_10_and_1000_rows(tree, staff, sweep):
    expires = date(2028, 1, 10)
    when = at(expires + timedelta(days=60))
    counts, results = [], []
    for n, tag in ((10, "A"), (1000, "B")):
        _population(tree["w1"], n, expires, tag)
        if sweep == "no_shows":
            _events_with_regs(staff["coordinator"], tree["w1"], n, when - timedelta(days=1), tag)
        db.session.flush()
        with StatementCounter() as counter:
            result = lifecycle.expire_sweep(when) if sweep == "expire" else lifecycle.no_show_sweep(when)
        counts.append(counter.count)
        results.append(result)
        if sweep == "expire":
            assert count(MembershipCard, MembershipCard.status == "expired",
                         MembershipCard.card_number.like(f"{tag}-%")) == n
            assert count(Member, Member.status == "lapsed", Member.membership_number.like(f"{tag}%")) == n
    if sweep == "expire":
        assert results == [{"cards_expired": 10, "members_lapsed": 10},
                           {"cards_expired": 1000, "members_lapsed": 1000}]
        assert count(CardTransaction, CardTransaction.rule == "card.past_grace") == 1010
        assert count(AuditEntry, AuditEntry.action == "card.expired") == 1010
    else:
        assert results == [{"no_shows": 10}, {"no_shows": 1000}]
        assert count(AuditEntry, AuditEntry.action == "event.no_shows") == 10  # one per event
        assert count(Event) == 10
    print(sweep, "statements for 10 and 1000 rows:", counts)
    assert counts[0] == counts[1], counts
    assert counts[1] <= 12, counts


def test_the_console_shows_a_card_in_grace_and_offers_renewal(client, tree, staff, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]))
    card.expires_on = date.today() - timedelta(days=4)
    db.session.commit()
    login(client, "admin@test.org")
    html = client.get(f"/admin/cards/details/?id={card.id}").get_data(as_text=True)
    assert 'data-status="grace">In grace<' in html and "Renew" in html
    listing = client.get("/admin/cards/").get_data(as_text=True)
    assert "In grace" in listing

"""Simultaneous check-ins on PostgreSQL: many gates, one card, one attendance.

Each thread has its own app context, session and database connection (a
second app on the same database with a pool large enough for every thread),
and all of them are released at once by a barrier. The unique key of
``event_checkins`` decides the race; the losers answer already_checked_in.
SQLite serialises writers, so the race only exists on PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import create_app
from app import config as app_config
from app.extensions import db
from app.models import Event, EventCheckin, EventCheckinNonce, EventRegistration, Member, User
from app.models.base import utcnow
from app.services import cards
from app.services import events as ev

THREADS = 20


@pytest.fixture()
def pg_app(committing_app, database_url):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the check-in race needs PostgreSQL (set TEST_DATABASE_URL)")
    config = app_config.TestConfig(database_url)
    for key in ("CARD_KEYS_DIR", "CARD_SIGNING_KEY", "CARD_VERIFY_KEYS"):  # the same card keys
        setattr(config, key, committing_app.config.get(key))
    config.SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": THREADS + 2, "max_overflow": 0}
    other = create_app(config)
    yield other
    with other.app_context():
        db.engine.dispose()


def run_at_once(app, work):
    """Run ``work(i)`` in THREADS threads released together; return the results in order."""
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS
    errors: list = []

    def target(i: int) -> None:
        with app.app_context():
            try:
                db.session.connection()  # hold a connection before the start line
                barrier.wait(timeout=30)
                results[i] = work(i)
                db.session.commit()
            except Exception as exc:  # pragma: no cover - reported below
                db.session.rollback()
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def setup_event(tree, staff, make_member, **fields):
    now = utcnow()
    event = ev.create_event(None, {"title": "Rally", "start_at": now - timedelta(hours=1),
                                   "end_at": now + timedelta(hours=3), "unit_id": tree["w1"].id,
                                   "status": "upcoming", **fields})
    member = make_member(tree["w1"])
    token = cards.card_token(cards.issue_card(None, member))
    db.session.commit()
    return event.id, member.id, token, staff["coordinator"].id


def check(app_event_id, user_id, **kwargs):
    event = db.session.get(Event, app_event_id)
    user = db.session.get(User, user_id)
    return ev.check_in(user, event, **kwargs)


def test_twenty_gates_scan_one_card_at_once(pg_app, tree, staff, make_member):
    event_id, member_id, token, user_id = setup_event(tree, staff, make_member)
    with pg_app.app_context():
        reg_event = db.session.get(Event, event_id)
        ev.register(None, reg_event, db.session.get(Member, member_id))
        db.session.commit()

    answers = run_at_once(pg_app, lambda i: check(event_id, user_id, token=token, gate=f"Gate {i}",
                                                     nonce=f"scan-{i}"))

    results = sorted(a["result"] for a in answers)
    assert results.count("admitted") == 1 and results.count("already_checked_in") == THREADS - 1
    winner = next(a for a in answers if a["result"] == "admitted")
    assert {a["first_gate"] for a in answers} == {winner["gate"]}
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(EventCheckin)) == 1
    reg = db.session.scalar(select(EventRegistration))
    assert reg.status == "attended" and reg.checkin_gate == winner["gate"]
    assert db.session.scalar(select(func.count()).select_from(EventCheckinNonce)) == THREADS


def test_twenty_gates_admit_one_walk_in_once(pg_app, tree, staff, make_member):
    event_id, member_id, token, user_id = setup_event(tree, staff, make_member, walk_ins_allowed=True, capacity=5)

    answers = run_at_once(pg_app, lambda i: check(event_id, user_id, token=token, gate=f"Gate {i}"))

    assert sorted(a["result"] for a in answers).count("admitted") == 1
    assert all(a["result"] in ("admitted", "already_checked_in") for a in answers)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(EventRegistration)) == 1
    assert db.session.scalar(select(func.count()).select_from(EventCheckin)) == 1


def test_the_same_request_retried_at_once_counts_once(pg_app, tree, staff, make_member):
    event_id, member_id, token, user_id = setup_event(tree, staff, make_member, walk_ins_allowed=True)

    answers = run_at_once(pg_app, lambda i: check(event_id, user_id, token=token, gate="North", nonce="same"))

    firsts = [dict(a) for a in answers]
    for a in firsts:
        a.pop("replayed", None)
    assert all(a == firsts[0] for a in firsts) and firsts[0]["result"] == "admitted"
    assert sum(1 for a in answers if not a.get("replayed")) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(EventCheckin)) == 1
    assert db.session.scalar(select(func.count()).select_from(EventCheckinNonce)) == 1

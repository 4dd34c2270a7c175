"""Card numbers stay unique when many issuers work at once, each on its own connection.

Runs with real commits (``committing_app``). On PostgreSQL the counter row
lock is what serialises issuers; the same test runs on SQLite, where the
database serialises writers itself (a writer upgrading from a read may be
told "database is locked" at once, and retries here), as a check that
nothing there breaks either.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter as Tally

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from app.database import take_write_lock
from app.extensions import db
from app.models import Member, MembershipCard
from app.services import cards

THREADS = 8
PER_THREAD = 6


def _issuers(app, groups: list[list[int]], one_by_one: bool = True):
    barrier = threading.Barrier(len(groups))
    errors: list[BaseException] = []

    def work(member_ids: list[int]) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                for member_id in member_ids:
                    take_write_lock()  # as jobs do: on SQLite the transaction waits for the write lock up front
                    member = db.session.get(Member, member_id)
                    cards.issue_card(None, member)
                    db.session.commit()
            except BaseException as exc:  # reported to the main thread
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(group,)) for group in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_parallel_issuers_get_unique_sequential_numbers(committing_app, tree, make_member):
    app = committing_app
    members = [make_member(tree["w1"]) for _ in range(THREADS * PER_THREAD)]
    db.session.commit()
    ids = [m.id for m in members]
    groups = [ids[i::THREADS] for i in range(THREADS)]
    db.session.remove()

    errors = _issuers(app, groups)
    assert not errors, errors

    numbers = db.session.scalars(select(MembershipCard.card_number)).all()
    assert len(numbers) == THREADS * PER_THREAD
    assert len(set(numbers)) == len(numbers)
    seqs = sorted(cards.parse_card_number(n)[2] for n in numbers)
    assert seqs == list(range(1, len(numbers) + 1))  # no gaps, no repeats (the counter started fresh)


def test_racing_to_issue_the_same_member_gives_one_card(committing_app, tree, make_member):
    app = committing_app
    member = make_member(tree["w1"])
    db.session.commit()
    member_id = member.id
    db.session.remove()

    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []

    def work() -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                for attempt in range(20):
                    try:
                        cards.issue_card(None, db.session.get(Member, member_id))
                        db.session.commit()
                        outcomes.append("issued")
                        return
                    except OperationalError:
                        db.session.rollback()
                        if db.engine.dialect.name != "sqlite" or attempt == 19:
                            raise
                        time.sleep(random.uniform(0.005, 0.05))
            except IntegrityError:
                outcomes.append("refused by the database")
            except cards.ServiceError:
                outcomes.append("refused by the service")
            finally:
                db.session.rollback()
                db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    tally = Tally(outcomes)
    assert tally["issued"] == 1 and sum(tally.values()) == THREADS, tally
    assert db.session.scalar(select(func.count()).select_from(MembershipCard)
                             .where(MembershipCard.member_id == member_id)) == 1


@pytest.mark.postgres
def test_postgres_is_really_used_when_configured(committing_app):
    """Guard: with TEST_DATABASE_URL set to PostgreSQL the tests above ran there."""
    import os

    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("TEST_DATABASE_URL is not PostgreSQL")
    assert db.engine.dialect.name == "postgresql"

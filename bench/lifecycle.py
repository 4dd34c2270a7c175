"""The scheduled sweeps at size: `make bench` with BENCH_ONLY=lifecycle.

On SQLite and on PostgreSQL (BENCH_PG_URL), one database each:
1,000,000 active members with one card each (BENCH_SCALE scales it), of
which 5% (50,000) expired past their grace period (due for the expiry
sweep) and 10,000 expire 30 days from today (due for the -30 renewal
reminder).

- **Expiry**: ``lifecycle.expire_sweep`` (cards expire, their members lapse,
  each change with its card transaction / status change and audit entry)
  against a per-row Python loop doing the same work through the ORM.
- **Reminder selection**: the renewal sweep's selection, the reminder log
  rows of every due member for every offset (``INSERT ... SELECT ... ON
  CONFLICT DO NOTHING``), sending excluded (rendering and recording the mails
  is per message by nature and is the queue bench's business), against a
  per-row loop that looks each card's member up, checks the log and inserts.

Each measurement runs in a transaction that is rolled back, so both sides
see the same data; the commit is not timed (the same for both). Targets:
expiry under 10 s, selection under 2 s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bench import checkin

TARGETS = {"expiry_seconds": 10.0, "selection_seconds": 2.0}
BATCH = 20_000
DB_NAME = "muster_bench_lifecycle"


def _app(url: str, workdir: Path):
    from app import create_app
    from app.config import Config

    config = Config()
    config.SQLALCHEMY_DATABASE_URI = url
    config.CARD_KEYS_DIR = str(workdir / "card_keys")
    config.QUEUE_IMMEDIATE = True
    return create_app(config)


def _prepare(count: int, due: int, reminded: int) -> dict:
    """Members, one card each: ``due`` past grace, ``reminded`` expiring in 30 days, the rest in 200."""
    from flask_migrate import upgrade
    from sqlalchemy import insert, text, update

    from app.extensions import db
    from app.models import Member, MembershipCard
    from app.services.cards.lifecycle import grace_days
    from app.services.seed import seed_demo
    from bench.data import generate_members

    upgrade(revision="heads")
    seed_demo(member_count=0)
    db.session.commit()
    generate_members(count)
    db.session.execute(update(Member).values(status="active", deleted_at=None))
    db.session.commit()
    today = date.today()
    past = today - timedelta(days=grace_days() + 5)
    ids = [row[0] for row in db.session.execute(Member.__table__.select().with_only_columns(Member.id)
                                                .order_by(Member.id))]
    every = max(1, len(ids) // due)
    rows = []
    reminded_left = reminded
    for n, member_id in enumerate(ids):
        if n % every == 0 and n // every < due:
            expires = past
        elif reminded_left > 0 and n % every == 1:
            expires, reminded_left = today + timedelta(days=30), reminded_left - 1
        else:
            expires = today + timedelta(days=200)
        rows.append({"member_id": member_id, "card_number": f"BL{member_id:010d}", "card_type": "standard",
                     "status": "active", "issued_on": today - timedelta(days=300), "expires_on": expires})
        if len(rows) == BATCH:
            db.session.execute(insert(MembershipCard), rows)
            rows = []
    if rows:
        db.session.execute(insert(MembershipCard), rows)
    db.session.commit()
    # Statistics as a settled database has them (autovacuum's ANALYZE, SQLite's optimize): without them
    # PostgreSQL plans the sweeps' correlated subqueries for empty tables (about 40 times slower at 10,000).
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    return {"members": len(ids), "cards_due": min(due, -(-len(ids) // every)), "reminders_due": reminded - reminded_left}


def _timed(fn) -> tuple[float, object]:
    from app.extensions import db

    start = time.perf_counter()
    result = fn()
    db.session.flush()
    seconds = time.perf_counter() - start
    db.session.rollback()
    return seconds, result


def _loop_expire(now: datetime) -> dict:
    """The same work one card at a time: what a straightforward ORM loop does."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import AuditEntry, CardTransaction, MemberStatusChange, MembershipCard
    from app.services.cards.lifecycle import grace_days, past_grace_reason

    today, grace = now.date(), grace_days()
    reason = past_grace_reason(grace)
    expired = lapsed = 0
    due = select(MembershipCard).where(MembershipCard.status == "active", MembershipCard.card_type != "lifetime",
                                       MembershipCard.expires_on < today - timedelta(days=grace))
    for card in db.session.scalars(due).all():
        card.status = "expired"
        db.session.add(CardTransaction(card_id=card.id, type="expired", from_status="active", to_status="expired",
                                       reason=reason, expires_on=card.expires_on, created_at=now))
        member = card.member
        db.session.add(AuditEntry(at=now, action="card.expired", object_type="MembershipCard",
                                  object_id=str(card.id), unit_id=member.unit_id,
                                  summary=f"Card {card.card_number} of {member.full_name}: expired ({reason})"))
        expired += 1
        latest = db.session.scalar(select(MembershipCard.id).where(MembershipCard.member_id == member.id)
                                   .order_by(MembershipCard.id.desc()).limit(1))
        if member.status == "active" and latest == card.id:
            member.status = "lapsed"
            db.session.add(MemberStatusChange(member_id=member.id, from_status="active", to_status="lapsed",
                                              reason=reason, changed_at=now))
            db.session.add(AuditEntry(at=now, action="member.status", object_type="Member", object_id=str(member.id),
                                      unit_id=member.unit_id, summary=f"{member.full_name}: active -> lapsed"))
            lapsed += 1
    return {"cards_expired": expired, "members_lapsed": lapsed}


def _select_reminders(now: datetime) -> int:
    from flask import current_app

    from app.services import reminders
    from app.services.reminders import settings

    today = reminders.local_today(now)
    catchup = max(1, int(current_app.config["REMINDER_CATCHUP_DAYS"]))
    return sum(len(reminders._log_renewals(offset, today, now, catchup))
               for offset in settings.current().renewal_offsets)


def _loop_reminders(now: datetime) -> int:
    """Per card: is a reminder due at some offset, is it this member's latest card, is it logged yet? Insert."""
    from flask import current_app
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Member, MembershipCard, ReminderLog
    from app.services import reminders
    from app.services.reminders import settings

    today = reminders.local_today(now)
    catchup = max(1, int(current_app.config["REMINDER_CATCHUP_DAYS"]))
    offsets = settings.current().renewal_offsets
    earliest = today - timedelta(days=catchup - 1 + max(offsets))
    latest_day = today - timedelta(days=min(offsets))
    inserted = 0
    for card in db.session.scalars(select(MembershipCard).where(
            MembershipCard.status.in_(("active", "expired")), MembershipCard.card_type != "lifetime",
            MembershipCard.expires_on.between(earliest, latest_day))).all():
        member = db.session.get(Member, card.member_id)
        if member.deleted_at is not None or member.status not in ("active", "lapsed"):
            continue
        newest = db.session.scalar(select(MembershipCard.expires_on).where(MembershipCard.member_id == member.id)
                                   .order_by(MembershipCard.expires_on.desc()).limit(1))
        if newest != card.expires_on:
            continue
        for offset in offsets:
            due_on = card.expires_on + timedelta(days=offset)
            if not (today - timedelta(days=catchup - 1) <= due_on <= today):
                continue
            kind = reminders.renewal_kind(offset)
            if db.session.scalar(select(ReminderLog.id).where(ReminderLog.member_id == member.id,
                                                              ReminderLog.kind == kind,
                                                              ReminderLog.target == str(card.expires_on))):
                continue
            db.session.add(ReminderLog(member_id=member.id, kind=kind, target=str(card.expires_on), card_id=card.id,
                                       offset_days=offset, expires_on=card.expires_on, outcome="mailed",
                                       created_at=now))
            inserted += 1
    return inserted


def _measure(url: str, workdir: Path, count: int, due: int, reminded: int) -> dict:
    from app.extensions import db
    from app.services import lifecycle

    app = _app(url, workdir)
    with app.app_context():
        start = time.perf_counter()
        sizes = _prepare(count, due, reminded)
        build_seconds = time.perf_counter() - start
        now = datetime.now(timezone.utc)
        ours, swept = _timed(lambda: lifecycle.expire_sweep(now))
        loop, looped = _timed(lambda: _loop_expire(now))
        selection, selected = _timed(lambda: _select_reminders(now))
        selection_loop, selected_loop = _timed(lambda: _loop_reminders(now))
        db.session.remove()
        db.engine.dispose()
    return {
        **sizes, "build_seconds": round(build_seconds, 1),
        "expiry": {"muster_seconds": round(ours, 2), "muster_counts": swept,
                   "per_row_loop_seconds": round(loop, 2), "loop_counts": looped,
                   "same_work": swept == looped, "ratio_loop_over_muster": round(loop / ours, 1),
                   "under_target": ours < TARGETS["expiry_seconds"]},
        "reminder_selection": {"muster_seconds": round(selection, 3), "log_rows": selected,
                               "per_row_loop_seconds": round(selection_loop, 2), "loop_log_rows": selected_loop,
                               "same_work": selected == selected_loop,
                               "ratio_loop_over_muster": round(selection_loop / selection, 1),
                               "under_target": selection < TARGETS["selection_seconds"]},
    }


def run(scale: float) -> dict:
    count = max(10_000, int(1_000_000 * scale))
    due = max(500, int(50_000 * scale))
    reminded = max(100, int(10_000 * scale))
    workdir = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench")) / "lifecycle"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    results = {"targets": TARGETS, "sqlite": _measure(f"sqlite:///{workdir / 'lifecycle.db'}", workdir, count, due,
                                                      reminded)}
    checkin._admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')
    try:
        results["postgresql"] = _measure(checkin._url(DB_NAME), workdir, count, due, reminded)
    finally:
        checkin._admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    return results


if __name__ == "__main__":  # python -m bench.lifecycle
    import json

    print(json.dumps(run(float(os.environ.get("BENCH_SCALE", "1"))), indent=2))

"""The dues report at scale (issue 14): `make bench` with BENCH_ONLY=dues_report (once registered).

"The console dues report for the whole organisation, per unit and month, at
1,000,000 members and 2,000,000 payments: under 500 ms, against a baseline
doing the same work in the same run."

Data (BENCH_SCALE scales every count): the geography of bench/referrals.py
(10 provinces, 60 districts, 300 constituencies, 2,400 wards), 1,000,000
members over the wards (``bench.data.generate_members``), and 2,000,000
payments made over the last 36 months (about two thirds of the members pay
each year), in time order as a live system writes them: each in its member's
ward, 90% in ZMW (the annual tier, some partial) and 10% in USD (the
diaspora tier), in a realistic mix of statuses (86% completed, 3% refunded,
3% pending, 5% failed, 3% cancelled) and methods. Rows go in with
executemany, then ANALYZE (VACUUM ANALYZE on PostgreSQL). The database is
kept between runs (BENCH_DIR, default /tmp/muster-bench; on PostgreSQL a
database named after the size on BENCH_PG_URL's server) and built only when
its counts are not the ones asked for; BENCH_DUES_REPORT_KEEP=0 removes it
afterwards. Months are Lusaka's (UTC+2, BENCH_DUES_TIMEZONE), so their
boundaries are not UTC midnights.

Measured, in the same process and run, on SQLite and, when BENCH_PG_URL is
set, on PostgreSQL:

- **fast**: ``report.report(None, report.parse_filters(None, {}))``: the
  whole organisation (a row per province), the last 12 months, exactly what
  the console page computes for a global reader: median and p95 of
  BENCH_DUES_REPORT_REPEAT runs after a warm-up. Also one province (rows:
  its districts) and one ward; on PostgreSQL the whole organisation again
  with the server's JIT off for the transaction (the plan has a branch per
  month, and compiling their expressions costs about as much as running
  them; many servers run with ``jit = off``).
- **baseline_python_sum**: the same report by loading the completed
  payments of those months (unit, time, currency, amount) and doing the
  month, the roll-up to provinces and the sums in Python.
- **baseline_query_loop**: the same report by one statement per province
  and month (the province's units, the month's bounds, summed per currency).

Both baselines' answers are checked against the fast one (``same_result``).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

TARGETS = {"whole_organisation_report_ms": 500}
# The same data and measurement with the first plan (one GROUP BY over every payment of the months, the
# month as a CASE, units folded into rows in Python), for the record: SQLite sorted 540,000 rows at once.
BEFORE = {"sqlite": {"whole_organisation_median_ms": 505.3}}
MEMBERS = 1_000_000
PAYMENTS = 2_000_000
HISTORY_DAYS = 36 * 30  # the payments' span, up to the build
REPEAT = int(os.environ.get("BENCH_DUES_REPORT_REPEAT", "9"))
KEEP = os.environ.get("BENCH_DUES_REPORT_KEEP", "1") != "0"
TIMEZONE = os.environ.get("BENCH_DUES_TIMEZONE", "Africa/Lusaka")
STATUS_WEIGHTS = {"completed": 86, "refunded": 3, "pending": 3, "failed": 5, "cancelled": 3}
METHOD_WEIGHTS = {"stripe": 40, "cash": 30, "bank_transfer": 15, "mobile_money": 15}
TIERS = ({"id": 1, "name": "Annual", "price_minor": 12000, "currency": "ZMW"},
         {"id": 2, "name": "Diaspora", "price_minor": 2500, "currency": "USD"})
USD_SHARE = 0.10
PARTIAL_SHARE = 0.05  # ZMW payments of half the price
BATCH = 20_000
SEED = 1414


def _workdir() -> Path:
    path = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _app(url: str):
    from app import create_app
    from app.config import Config

    os.environ.setdefault("MUSTER_INSTANCE_DIR", str(_workdir()))
    config = Config()
    config.SQLALCHEMY_DATABASE_URI = url
    config.RATELIMIT_ENABLED = False
    config.TIMEZONE = TIMEZONE
    return create_app(config)


# --- data ----------------------------------------------------------------------------------


def _payments(count: int) -> dict:
    """``count`` payments over the last HISTORY_DAYS days, oldest first, each in its member's ward."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Member, MembershipTier, Payment, Unit
    from app.models.base import utcnow
    from bench.referrals import _bulk

    _bulk(MembershipTier, [{**t, "description": "", "duration_months": 12, "card_type": "standard", "active": True,
                            "created_at": utcnow(), "updated_at": utcnow()} for t in TIERS])
    last_level = db.session.scalar(select(func.max(Unit.level)))
    wards = list(db.session.scalars(select(Unit.id).where(Unit.level == last_level).order_by(Unit.id)))
    members = db.session.scalar(select(func.max(Member.id)))
    rng = random.Random(SEED)
    statuses, status_weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    methods, method_weights = list(METHOD_WEIGHTS), list(METHOD_WEIGHTS.values())
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=HISTORY_DAYS)
    step = HISTORY_DAYS * 86400 / count
    counts = {s: 0 for s in statuses}

    def rows():
        for i in range(1, count + 1):
            member = rng.randrange(1, members + 1)
            created = start + timedelta(seconds=(i - 1) * step + rng.random() * step)
            status = rng.choices(statuses, status_weights)[0]
            tier = TIERS[1] if rng.random() < USD_SHARE else TIERS[0]
            amount = tier["price_minor"] // 2 if tier is TIERS[0] and rng.random() < PARTIAL_SHARE \
                else tier["price_minor"]
            done = created + timedelta(seconds=rng.randrange(5, 900)) if status in ("completed", "refunded") else None
            counts[status] += 1
            yield {"id": i, "member_id": member, "tier_id": tier["id"],
                   "unit_id": wards[member % len(wards)],  # generate_members puts member i in wards[i % n]
                   "amount_minor": amount, "currency": tier["currency"],
                   "method": rng.choices(methods, method_weights)[0], "status": status, "reference": "",
                   "stripe_session_id": None, "stripe_payment_intent_id": None, "receipt_number": None,
                   "recorded_by_id": None, "created_at": created, "updated_at": done or created,
                   "completed_at": done, "fulfilled_at": done,
                   "refunded_at": done + timedelta(days=3) if status == "refunded" else None,
                   "extended_from": None, "extended_to": None, "card_id": None, "hold_reason": ""}

    _bulk(Payment, rows())
    return counts


def _sizes() -> dict:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Member, Payment, Unit

    return {
        "members": db.session.scalar(select(func.count()).select_from(Member)),
        "units": db.session.scalar(select(func.count()).select_from(Unit)),
        "payments": db.session.scalar(select(func.count()).select_from(Payment)),
        "by_status": dict(db.session.execute(select(Payment.status, func.count()).group_by(Payment.status)
                                             .order_by(Payment.status)).all()),
    }


def _prepare(app, members: int, payments: int) -> dict:
    """Build the data unless the database already holds exactly this size; the sizes and build time."""
    from flask_migrate import upgrade
    from sqlalchemy import func, select, text

    from app.extensions import db
    from app.models import Member, Payment
    from bench.data import generate_members
    from bench.referrals import _tree

    with app.app_context():
        upgrade(revision="heads")
        have = (db.session.scalar(select(func.count()).select_from(Member)),
                db.session.scalar(select(func.count()).select_from(Payment)))
        built = None
        if have != (members, payments):
            if any(have):
                raise RuntimeError(f"{app.config['SQLALCHEMY_DATABASE_URI']} holds other data {have}: remove it")
            started = time.perf_counter()
            _tree()
            generate_members(members, seed=SEED)
            _payments(payments)
            built = round(time.perf_counter() - started, 1)
            print(f"dues report bench data: {members} members, {payments} payments in {built}s", file=sys.stderr)
        if db.engine.dialect.name == "postgresql":
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            db.session.execute(text("ANALYZE"))
            db.session.commit()
            # A settled database: the build's writes moved from the WAL into the file (reading through a
            # WAL of a million pages doubled the first run's times).
            db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            db.session.commit()
        return {**_sizes(), "build_seconds": built, "reused_data": built is None}


# --- measuring -----------------------------------------------------------------------------


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(fn, repeat: int = REPEAT) -> tuple[dict, object]:
    from app.extensions import db

    result = fn()  # warm-up: statements compiled, pages in the cache
    samples = []
    for _ in range(repeat):
        db.session.rollback()  # a fresh transaction, as a request has
        started = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - started) * 1000)
    db.session.rollback()
    return {"median_ms": round(statistics.median(samples), 1), "p95_ms": round(_pct(samples, 0.95), 1)}, result


def _answer(result) -> dict:
    """A report as {(row unit id, month index): (payments, {currency: minor})}, non-empty cells only."""
    return {(row.unit_id, k): (cell.count, dict(sorted(cell.amounts.items())))
            for row in result.rows for k, cell in enumerate(row.cells) if cell.count}


def _province_of() -> dict[int, int]:
    """unit id -> its top-level unit's id (the whole organisation's rows), from the unit paths."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Unit

    return {uid: int(path.strip("/").split("/")[0]) for uid, path in db.session.execute(select(Unit.id, Unit.path))}


def _baseline_python_sum(filters) -> dict:
    """The whole organisation's report by loading the months' completed payments and summing in Python."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from app.extensions import db
    from app.models import Payment
    from app.services.dues import report

    months = filters.months
    since, until = report.month_start(months[0]), report.month_start(report.add_months(months[-1], 1))
    index = {(m.year, m.month): k for k, m in enumerate(months)}
    zone = ZoneInfo(TIMEZONE)
    province = _province_of()
    cells: dict = defaultdict(lambda: [0, defaultdict(int)])
    for unit_id, completed, currency, amount in db.session.execute(
            select(Payment.unit_id, Payment.completed_at, Payment.currency, Payment.amount_minor)
            .where(Payment.status == "completed", Payment.completed_at >= since, Payment.completed_at < until)):
        local = completed.astimezone(zone)
        cell = cells[(province[unit_id], index[(local.year, local.month)])]
        cell[0] += 1
        cell[1][currency] += amount
    return {key: (n, dict(sorted(amounts.items()))) for key, (n, amounts) in cells.items()}


def _baseline_query_loop(filters) -> tuple[dict, int]:
    """The same report by one statement per province and month: (the answer, statements run)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Payment
    from app.security import subtree_unit_ids
    from app.services.dues import report

    out, statements = {}, 0
    for top in filters.tops:
        units = subtree_unit_ids(top)
        for k, month in enumerate(filters.months):
            since, until = report.month_start(month), report.month_start(report.add_months(month, 1))
            rows = db.session.execute(
                select(Payment.currency, func.count(), func.sum(Payment.amount_minor))
                .where(Payment.status == "completed", Payment.completed_at >= since, Payment.completed_at < until,
                       Payment.unit_id.in_(units)).group_by(Payment.currency)).all()
            statements += 1
            if rows:
                out[(top.id, k)] = (sum(int(n) for _c, n, _a in rows),
                                    dict(sorted((c, int(a)) for c, _n, a in rows)))
    return out, statements


def _measure(url: str, members: int, payments: int) -> dict:
    from sqlalchemy import select, text

    from app.extensions import db
    from app.models import Unit
    from app.services.dues import report

    app = _app(url)
    sizes = _prepare(app, members, payments)
    with app.app_context():
        whole, result = _timed(lambda: report.report(None, report.parse_filters(None, {})))
        filters = report.parse_filters(None, {})
        province = db.session.scalar(select(Unit.id).where(Unit.parent_id.is_(None)).order_by(Unit.id))
        ward = db.session.scalar(select(Unit.id).where(Unit.level == 3).order_by(Unit.id))
        one_province, province_result = _timed(
            lambda: report.report(None, report.parse_filters(None, {"unit_id": province})))
        one_ward, _ = _timed(lambda: report.report(None, report.parse_filters(None, {"unit_id": ward})))
        jit_off = None
        if db.engine.dialect.name == "postgresql":  # the server's JIT compiles the plan's many expressions
            def without_jit():
                db.session.execute(text("SET LOCAL jit = off"))
                return report.report(None, report.parse_filters(None, {}))

            jit_off, _ = _timed(without_jit)
        fast = _answer(result)
        started = time.perf_counter()
        summed = _baseline_python_sum(filters)
        python_seconds = time.perf_counter() - started
        db.session.rollback()
        started = time.perf_counter()
        looped, statements = _baseline_query_loop(filters)
        loop_seconds = time.perf_counter() - started
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()
    return {
        "database": url.split(":")[0].split("+")[0],
        **sizes,
        "months": [m.strftime("%Y-%m") for m in result.months],
        "timezone": result.timezone,
        "payments_in_report": result.total.count,
        "totals": result.total.amounts,
        "repeat": REPEAT,
        "whole_organisation": {**whole, "rows": len(result.rows),
                               "under_target": whole["median_ms"] < TARGETS["whole_organisation_report_ms"]},
        "one_province": {**one_province, "rows": len(province_result.rows),
                         "payments": province_result.total.count},
        "one_ward": one_ward,
        **({"whole_organisation_jit_off": jit_off} if jit_off else {}),
        "baseline_python_sum": {"seconds": round(python_seconds, 2), "rows_loaded": result.total.count,
                                "same_result": summed == fast},
        "baseline_query_loop": {"seconds": round(loop_seconds, 2), "statements": statements,
                                "same_result": looped == fast},
        "ratio_python_sum_over_fast": round(python_seconds * 1000 / whole["median_ms"], 1),
        "ratio_query_loop_over_fast": round(loop_seconds * 1000 / whole["median_ms"], 1),
    }


def _postgres(members: int, payments: int) -> dict | None:
    """The same on PostgreSQL, in a database of its own on BENCH_PG_URL's server (kept for the next run)."""
    pg_url = os.environ.get("BENCH_PG_URL")
    if not pg_url:
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    if pg_url.startswith("postgresql://"):
        pg_url = "postgresql+psycopg://" + pg_url[len("postgresql://"):]
    server = make_url(pg_url)
    name = f"muster_bench_dues_report_{members}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    try:
        return _measure(server.set(database=name).render_as_string(hide_password=False), members, payments)
    finally:
        if not KEEP:
            admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            finally:
                admin.dispose()


def run(scale: float) -> dict:
    members = max(10_000, int(MEMBERS * scale))
    payments = max(20_000, int(PAYMENTS * scale))
    path = _workdir() / f"dues-report-{members}-{payments}.db"
    try:
        results = {"targets": TARGETS, "sqlite": _measure(f"sqlite:///{path}", members, payments)}
    finally:
        if not KEEP:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    pg = _postgres(members, payments)
    if pg is not None:
        results["postgresql"] = pg
    if scale == 1:
        results["before"] = BEFORE
    return results


if __name__ == "__main__":  # python -m bench.dues_report
    import json

    print(json.dumps(run(float(os.environ.get("BENCH_SCALE", "1"))), indent=2))

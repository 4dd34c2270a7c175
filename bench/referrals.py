"""Referral figures at scale (issue 13): `make bench` with BENCH_ONLY=referrals.

"Leaderboard and funnel for the whole organisation at 1,000,000 members and
300,000 referrals: under 300 ms, against a per-member count loop in the same run."

Data (BENCH_SCALE scales every count): a geography of 10 provinces, 60
districts, 300 constituencies and 2,400 wards; 1,000,000 members over the
wards (``bench.data.generate_members``: its status mix), 1% of them deleted;
300,000 referrals made by 150,000 would-be recruiters drawn with a long tail
(a few recruit hundreds, most one or two), in a realistic mix of statuses:
pending and expired ones are prospects (a name and a phone, nobody joined),
registered and credited ones have a referred member (pending and active
members respectively), rejected ones are lost duplicates, rejected joins or
credits reversed later; an award in the ledger for every credit (5, 10 or 20
points) and an award plus its reversal for every reversed one. Rows go in
with executemany (the point is tables of a realistic size to query), then
ANALYZE. The database is kept between runs (BENCH_DIR, default
/tmp/muster-bench; on PostgreSQL a database named after the size) and
rebuilt only when its counts are not the ones asked for; BENCH_REFERRALS_KEEP=0
removes them afterwards.

Measured, in the same process and run, on SQLite and, when BENCH_PG_URL is
set (a server URL), on PostgreSQL:

- **fast**: ``stats.leaderboard(stats.area(None), limit=20)`` plus
  ``stats.funnel(...)`` for the whole organisation, exactly what the console
  statistics page and ``GET /api/v1/referrals/stats`` run: median and p95 of
  BENCH_REFERRALS_REPEAT runs after a warm-up, each part on its own too.
- extras: ``unit_leaderboard`` at ward level (every ward of the
  organisation), ``top_per_unit`` and ``per_week``, the rest of that page.
- **baseline**: the same leaderboard and funnel by a per-member loop: for each
  live member who made referrals, one statement counting their referrals by
  status and summing their ledger, then a sort in Python. Looping over every
  live member instead (most of whom never referred anyone) would be far
  slower still: it is timed on a sample and extrapolated, and says so.

The baseline's answer (top 20 with ranks, total, funnel) is checked against
the fast one: ``same_result``.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

TARGETS = {"leaderboard_and_funnel_ms": 300}
# The same data and measurement before migration 0020 and the rework of stats.py's whole-organisation plans
# (every referral and ledger row joined to its member to check it was not deleted), for the record.
BEFORE = {"sqlite": {"leaderboard_and_funnel_median_ms": 2121.1, "unit_leaderboard_wards_median_ms": 1644.6},
          "postgresql": {"leaderboard_and_funnel_median_ms": 942.0, "unit_leaderboard_wards_median_ms": 1560.5}}
MEMBERS = 1_000_000
REFERRALS = 300_000
RECRUITERS = 150_000  # members who ever refer someone (drawn with a long tail)
DELETED_SHARE = 0.01
REPEAT = int(os.environ.get("BENCH_REFERRALS_REPEAT", "9"))
SAMPLE = int(os.environ.get("BENCH_REFERRALS_LOOP_SAMPLE", "20000"))  # members timed to estimate a loop over all
KEEP = os.environ.get("BENCH_REFERRALS_KEEP", "1") != "0"  # keep the databases for the next run (0: remove them)
TREE = (10, 6, 5, 8)  # provinces, districts per province, constituencies per district, wards per constituency
# Where referrals are now: most made through a code or link have a referred member; prospects never joined.
STATUS_WEIGHTS = {"pending": 14, "registered": 16, "credited": 46, "expired": 14, "rejected": 10}
REJECTED_KINDS = {"reversed": 40, "join_rejected": 30, "duplicate": 30}
POINTS = (5, 10, 10, 10, 20)
BATCH = 20_000
SEED = 1313


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
    return create_app(config)


# --- data ----------------------------------------------------------------------------------


def _bulk(table, rows) -> int:
    from sqlalchemy import insert

    from app.extensions import db

    conn, batch, n = db.session.connection(), [], 0
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            conn.execute(insert(table), batch)
            n, batch = n + len(batch), []
    if batch:
        conn.execute(insert(table), batch)
        n += len(batch)
    db.session.commit()
    return n


def _tree() -> int:
    """The geography, ids and paths computed here; the number of wards."""
    from app.models import Unit
    from app.models.base import utcnow

    provinces, districts, constituencies, wards = TREE
    rows, now, next_id = [], utcnow(), iter(range(1, 10**7))

    def add(name: str, code: str, level: int, parent: dict | None) -> dict:
        uid = next(next_id)
        row = {"id": uid, "parent_id": parent["id"] if parent else None, "level": level, "name": name, "code": code,
               "path": f"{parent['path'] if parent else '/'}{uid}/", "created_at": now}
        rows.append(row)
        return row

    for p in range(1, provinces + 1):
        prow = add(f"Province {p}", f"P{p}", 0, None)
        for d in range(1, districts + 1):
            drow = add(f"District {p}.{d}", f"P{p}-D{d}", 1, prow)
            for c in range(1, constituencies + 1):
                crow = add(f"Constituency {p}.{d}.{c}", f"P{p}-D{d}-C{c}", 2, drow)
                for w in range(1, wards + 1):
                    add(f"Ward {p}.{d}.{c}.{w}", f"P{p}-D{d}-C{c}-W{w}", 3, crow)
    _bulk(Unit, rows)
    return provinces * districts * constituencies * wards


def _referrals(count: int, recruiters: int) -> dict:
    """Referrals and the ledger, with ids set here so ledger rows can name their referral."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Member, PointsEntry, Referral

    rng = random.Random(SEED)
    by_status: dict[str, list[int]] = {}
    for mid, status in db.session.execute(select(Member.id, Member.status).order_by(Member.id)):
        by_status.setdefault(status, []).append(mid)
    for ids in by_status.values():
        rng.shuffle(ids)
    active = by_status["active"]
    pool = rng.sample(active, min(recruiters, len(active)))  # deleted ones among them: their referrals stay
    # Referred members, each at most once: active ones were credited, pending ones registered.
    referred = {"credited": list(active), "registered": list(by_status.get("pending", [])),
                "rejected": by_status.get("resigned", []) + by_status.get("expelled", [])
                + by_status.get("lapsed", [])}
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    kinds, kind_weights = list(REJECTED_KINDS), list(REJECTED_KINDS.values())
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=730)
    referrals, ledger = [], []
    counts = {s: 0 for s in statuses}

    def take(kind: str, referrer: int) -> int:
        candidates = referred[kind]
        while True:
            mid = candidates.pop()
            if mid != referrer:
                return mid

    for rid in range(1, count + 1):
        status = rng.choices(statuses, weights)[0]
        referrer = pool[int(len(pool) * rng.random() ** 2)]  # the long tail: a few recruit hundreds
        created = start + timedelta(seconds=rng.randrange(0, 730 * 86400))
        row = {"id": rid, "referrer_id": referrer, "referred_member_id": None, "prospect_name": None,
               "prospect_phone": None, "prospect_email": None, "code": None, "source": "prospect",
               "status": status, "reason": "", "created_at": created, "registered_at": None,
               "credited_at": None, "closed_at": None, "updated_at": created}
        kind = rng.choices(kinds, kind_weights)[0] if status == "rejected" else None
        if status in ("pending", "expired") or kind == "duplicate":
            row["prospect_name"] = f"Prospect {rid}"
            row["prospect_phone"] = f"+26095{rid:07d}"
            if status == "expired" or kind == "duplicate":
                row["closed_at"] = created + timedelta(days=60 if status == "expired" else 3)
        else:
            row["source"] = rng.choice(("code", "link"))
            row["code"] = "BENCH2"
            row["referred_member_id"] = take("credited" if status == "credited" or kind == "reversed"
                                             else "registered" if status == "registered" else "rejected", referrer)
            row["registered_at"] = min(now, created + timedelta(hours=rng.randrange(0, 24 * 20)))
            if status == "credited" or kind == "reversed":
                row["credited_at"] = min(now, row["registered_at"] + timedelta(hours=rng.randrange(0, 24 * 30)))
                points = rng.choice(POINTS)
                ledger.append({"member_id": referrer, "referral_id": rid, "points": points, "kind": "award",
                               "reason": "", "created_at": row["credited_at"]})
                if kind == "reversed":
                    row["closed_at"] = min(now, row["credited_at"] + timedelta(days=rng.randrange(1, 90)))
                    ledger.append({"member_id": referrer, "referral_id": rid, "points": -points, "kind": "reversal",
                                   "reason": "Reversed", "created_at": row["closed_at"]})
            elif status == "rejected":
                row["closed_at"] = row["registered_at"] + timedelta(days=2)
        counts[status] += 1
        referrals.append(row)
    _bulk(Referral, referrals)
    _bulk(PointsEntry, ledger)
    return {"by_status": counts, "ledger_entries": len(ledger)}


def _sizes() -> dict:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Member, PointsEntry, Referral, Unit

    return {
        "members": db.session.scalar(select(func.count()).select_from(Member)),
        "live_members": db.session.scalar(select(func.count()).select_from(Member).where(Member.deleted_at.is_(None))),
        "wards": db.session.scalar(select(func.count()).select_from(Unit).where(Unit.level == 3)),
        "referrals": db.session.scalar(select(func.count()).select_from(Referral)),
        "by_status": dict(db.session.execute(select(Referral.status, func.count()).group_by(Referral.status)
                                             .order_by(Referral.status)).all()),
        "ledger_entries": db.session.scalar(select(func.count()).select_from(PointsEntry)),
        "referrers": db.session.scalar(select(func.count(func.distinct(Referral.referrer_id)))),
    }


def _prepare(app, members: int, referrals: int, recruiters: int) -> dict:
    """Build the data unless the database already holds exactly this size; the sizes and build time."""
    from flask_migrate import upgrade
    from sqlalchemy import func, select, text, update

    from app.extensions import db
    from app.models import Member, Referral
    from bench.data import generate_members

    with app.app_context():
        upgrade(revision="heads")
        have = (db.session.scalar(select(func.count()).select_from(Member)),
                db.session.scalar(select(func.count()).select_from(Referral)))
        built = None
        if have != (members, referrals):
            if any(have):
                raise RuntimeError(f"{app.config['SQLALCHEMY_DATABASE_URI']} holds other data {have}: remove it")
            started = time.perf_counter()
            _tree()
            generate_members(members, seed=SEED)
            every = round(1 / DELETED_SHARE)
            db.session.execute(update(Member).where(Member.id % every == 7).values(deleted_at=func.now()))
            db.session.commit()
            _referrals(referrals, recruiters)
            built = round(time.perf_counter() - started, 1)
            print(f"referrals bench data: {members} members, {referrals} referrals in {built}s", file=sys.stderr)
        # Statistics as a settled database has them (ANALYZE; on PostgreSQL VACUUM too, as autovacuum would:
        # the visibility map lets it read covering indexes alone).
        if db.engine.dialect.name == "postgresql":
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            db.session.execute(text("ANALYZE"))
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


def _fast():
    from app.services.referrals import stats

    where = stats.area(None)
    board, total = stats.leaderboard(where, limit=20)
    return board, total, stats.funnel(where)


LOOP_SQL = """
SELECT r.status, count(*), count(r.registered_at), count(r.credited_at),
       (SELECT coalesce(sum(e.points), 0) FROM referral_rewards e WHERE e.member_id = :id)
FROM referrals r WHERE r.referrer_id = :id GROUP BY r.status
"""


def _loop(member_ids: list[int]) -> tuple[list[tuple[int, int, int]], int, dict]:
    """The leaderboard and funnel one member at a time: one statement each, then a sort in Python."""
    from sqlalchemy import text

    from app.extensions import db

    stmt = text(LOOP_SQL)
    conn = db.session.connection()
    points: dict[int, int] = {}
    funnel = {"recorded": 0, "registered": 0, "credited": 0, "by_status": {}}
    for mid in member_ids:
        for status, n, registered, credited, balance in conn.execute(stmt, {"id": mid}):
            funnel["recorded"] += n
            funnel["registered"] += registered
            funnel["credited"] += credited
            funnel["by_status"][status] = funnel["by_status"].get(status, 0) + n
            points[mid] = int(balance)
    ranked = sorted(((mid, p) for mid, p in points.items() if p > 0), key=lambda r: (-r[1], r[0]))
    top, rank = [], 0
    for i, (mid, p) in enumerate(ranked[:20]):
        rank = i + 1 if i == 0 or ranked[i - 1][1] != p else rank
        top.append((mid, p, rank))
    return top, len(ranked), funnel


def _baseline(live_count: int) -> dict:
    """The per-member loop over the live referrers, timed once; and over a sample of all live members."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Member, Referral

    started = time.perf_counter()
    referrers = list(db.session.scalars(
        select(Referral.referrer_id).distinct().join(Member, Member.id == Referral.referrer_id)
        .where(Member.deleted_at.is_(None)).order_by(Referral.referrer_id)))
    top, total, funnel = _loop(referrers)
    seconds = time.perf_counter() - started
    db.session.rollback()
    rng = random.Random(SEED)
    live = list(db.session.scalars(select(Member.id).where(Member.deleted_at.is_(None))))
    sample = rng.sample(live, min(SAMPLE, len(live)))
    sample_started = time.perf_counter()
    _loop(sample)
    per_member = (time.perf_counter() - sample_started) / len(sample)
    db.session.rollback()
    return {"seconds": round(seconds, 2), "members_looped": len(referrers), "statements": len(referrers) + 1,
            "top": top, "total": total, "funnel": funnel,
            "loops_over": (f"live referrers only ({len(referrers):,} members): a loop over every live member "
                           f"({live_count:,}) would take about {per_member * live_count:.0f} s, "
                           f"estimated from {len(sample):,} members sampled at random "
                           f"({per_member * 1e6:.0f} µs each)"),
            "all_members_estimated_seconds": round(per_member * live_count, 1)}


def _measure(url: str, members: int, referrals: int, recruiters: int) -> dict:
    from app.extensions import db
    from app.services.referrals import stats

    app = _app(url)
    sizes = _prepare(app, members, referrals, recruiters)
    with app.app_context():
        both, (board, total, funnel) = _timed(_fast)
        leaderboard_only, _ = _timed(lambda: stats.leaderboard(stats.area(None), limit=20))
        funnel_only, _ = _timed(lambda: stats.funnel(stats.area(None)))
        wards, ward_rows = _timed(lambda: stats.unit_leaderboard(stats.area(None), 3))
        tops, top_rows = _timed(lambda: stats.top_per_unit(stats.area(None)), repeat=max(3, REPEAT // 3))
        weeks, _ = _timed(lambda: stats.per_week(stats.area(None)), repeat=max(3, REPEAT // 3))
        base = _baseline(sizes["live_members"])
        fast_top = [(r.member_id, r.points, r.rank) for r in board]
        fast_funnel = {"recorded": funnel.recorded, "registered": funnel.registered, "credited": funnel.credited,
                       "by_status": dict(sorted(funnel.by_status.items()))}
        base["funnel"]["by_status"] = dict(sorted(base["funnel"]["by_status"].items()))
        same = fast_top == base["top"] and total == base["total"] and fast_funnel == base["funnel"]
        db.session.remove()
        db.engine.dispose()
    return {
        "database": url.split(":")[0].split("+")[0],
        **sizes,
        "recruiters_ranked": total,
        "repeat": REPEAT,
        "leaderboard_and_funnel": {**both, "leaderboard_median_ms": leaderboard_only["median_ms"],
                                   "funnel_median_ms": funnel_only["median_ms"],
                                   "under_target": both["median_ms"] < TARGETS["leaderboard_and_funnel_ms"]},
        "unit_leaderboard_wards": {**wards, "units": len(ward_rows)},
        "top_per_ward": {**tops, "wards": len(top_rows)},
        "per_week": weeks,
        "baseline_per_member_loop": {"seconds": base["seconds"], "members_looped": base["members_looped"],
                                     "statements": base["statements"], "loops_over": base["loops_over"],
                                     "all_members_estimated_seconds": base["all_members_estimated_seconds"],
                                     "same_result": same},
        "ratio_baseline_over_fast": round(base["seconds"] * 1000 / both["median_ms"], 1),
        "funnel": fast_funnel,
        "top_3": fast_top[:3],
    }


def _postgres(members: int, referrals: int, recruiters: int) -> dict | None:
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
    name = f"muster_bench_referrals_{members}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    try:
        return _measure(server.set(database=name).render_as_string(hide_password=False), members, referrals,
                        recruiters)
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
    referrals = max(3_000, int(REFERRALS * scale))
    recruiters = max(1_500, int(RECRUITERS * scale))
    path = _workdir() / f"referrals-{members}.db"
    try:
        results = {"targets": TARGETS, "sqlite": _measure(f"sqlite:///{path}", members, referrals, recruiters)}
    finally:
        if not KEEP:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    pg = _postgres(members, referrals, recruiters)
    if pg is not None:
        results["postgresql"] = pg
    if scale == 1:
        results["before"] = BEFORE
    return results


if __name__ == "__main__":  # python -m bench.referrals
    import json

    print(json.dumps(run(float(os.environ.get("BENCH_SCALE", "1"))), indent=2))

"""Generating a large registry quickly, for benchmarks.

Rows go in with executemany on a raw connection: the point is to have a
million realistic members to query, not to measure the registry's own writes.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import func, insert, select

from app.extensions import db
from app.models import Member, Unit
from app.services.members import fold
from app.services.seed import FIRST_NAMES, LAST_NAMES, STATUS_WEIGHTS

BATCH = 20_000


def generate_members(count: int, seed: int = 7) -> None:
    """Add ``count`` members spread evenly over the lowest-level units."""
    rng = random.Random(seed)
    last_level = db.session.scalar(select(func.max(Unit.level)))
    wards = list(db.session.scalars(select(Unit.id).where(Unit.level == last_level).order_by(Unit.id)))
    start = (db.session.scalar(select(func.max(Member.id))) or 0) + 1
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    today = date.today()
    surnames = LAST_NAMES + [f"{name}{suffix}" for name in LAST_NAMES for suffix in ("a", "e", "o", "wa")]
    conn = db.session.connection()
    rows = []
    for i in range(start, start + count):
        last = rng.choice(surnames)
        rows.append({
            "id": i,
            "membership_number": f"B{i:09d}",
            "first_name": rng.choice(FIRST_NAMES),
            "last_name": last,
            "surname_key": fold(last),
            "gender": rng.choice(("female", "male")),
            "date_of_birth": today - timedelta(days=rng.randrange(18 * 365, 80 * 365)),
            "national_id": f"{i:09d}/{i % 97:02d}/1",
            "phone": f"+26096{i:07d}",
            "email": None,
            "unit_id": wards[i % len(wards)],
            "status": rng.choices(statuses, weights)[0],
            "joined_on": today - timedelta(days=rng.randrange(0, 3650)),
        })
        if len(rows) == BATCH:
            conn.execute(insert(Member), rows)
            rows = []
    if rows:
        conn.execute(insert(Member), rows)
    db.session.commit()

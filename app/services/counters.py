"""Allocation of sequential numbers from named counters."""

from __future__ import annotations

from sqlalchemy import select, update

from app.extensions import db
from app.models import Counter


def allocate(name: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers from counter ``name``; return the first.

    One UPDATE ... RETURNING: the row lock it takes serialises concurrent
    allocators on PostgreSQL, and SQLite serialises writers anyway. The counter
    row is created on first use.
    """
    if count < 1:
        raise ValueError("count must be positive")
    new_value = db.session.execute(
        update(Counter)
        .where(Counter.name == name)
        .values(value=Counter.value + count)
        .returning(Counter.value)
    ).scalar()
    if new_value is None:
        if db.session.scalar(select(Counter).where(Counter.name == name)) is None:
            db.session.add(Counter(name=name, value=count))
            db.session.flush()
            return 1
        return allocate(name, count)
    return new_value - count + 1

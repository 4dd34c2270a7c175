"""Allocation of sequential numbers from named counters (membership and card numbers)."""

from __future__ import annotations

from contextlib import suppress

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Counter


def _bump(name: str, count: int) -> int | None:
    return db.session.execute(
        update(Counter).where(Counter.name == name).values(value=Counter.value + count).returning(Counter.value)
    ).scalar()


def allocate(name: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers from counter ``name``; return the first.

    One UPDATE ... RETURNING: the row lock it takes serialises concurrent
    allocators on PostgreSQL, and SQLite serialises writers anyway. The counter
    row is created on first use inside a savepoint, so two first users at once
    both succeed: the loser's insert fails, and its UPDATE then finds the row.
    """
    if count < 1:
        raise ValueError("count must be positive")
    new_value = _bump(name, count)
    if new_value is None:
        # A concurrent allocator may insert the row first; its row serves us too.
        with suppress(IntegrityError), db.session.begin_nested():
            db.session.add(Counter(name=name, value=0))
        new_value = _bump(name, count)
    return new_value - count + 1

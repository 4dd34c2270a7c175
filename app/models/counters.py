"""Named counters used to hand out human-readable numbers (membership numbers, later card numbers).

A row per counter, incremented with UPDATE ... RETURNING so that concurrent
writers each get a distinct block without a table lock.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Counter(db.Model):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)

"""Small helpers shared by the model modules."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, String
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Timezone-aware now; stored as UTC in every database."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A DateTime that always comes back timezone-aware (UTC), on SQLite too.

    SQLite drops tzinfo; without this, comparing a stored value with utcnow()
    raises TypeError on SQLite but works on PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        if value is not None and dialect.name == "sqlite":
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def binary_string(length: int) -> String:
    """A string compared byte-wise on every database (C collation on PostgreSQL).

    Prefix searches are done as range comparisons on such columns, which only
    hold when the ordering is byte-wise; SQLite's default already is.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")

"""Small helpers shared by the model modules."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone

from sqlalchemy import DateTime, String
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Timezone-aware now; stored as UTC in every database."""
    return datetime.now(timezone.utc)


def fold(text: str) -> str:
    """Case- and accent-insensitive key: 'Müller' -> 'muller' (search keys such as members.surname_key)."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def folded(source: str):
    """A column default: ``fold`` of column ``source`` in the same INSERT.

    It applies to ORM and Core inserts alike (an executemany computes it per
    row), so no write path can leave a search key empty; updates that change
    ``source`` set the key themselves.
    """

    def default(context) -> str:
        return fold(context.get_current_parameters().get(source) or "")

    return default


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

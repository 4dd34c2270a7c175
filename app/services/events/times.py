"""Event times: stored in UTC, shown and cut into days in the organisation's time zone.

The console enters and shows times in ``MUSTER_TIMEZONE`` (default UTC), which
also draws the day boundaries of ``once_per_day`` check-ins; the API speaks
UTC ISO 8601. Input times are read here, whatever their shape.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app

from app.services.errors import ServiceError


def org_timezone() -> ZoneInfo | timezone:
    """The organisation's time zone (MUSTER_TIMEZONE); UTC when unset or unknown."""
    name = current_app.config.get("TIMEZONE") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def local(value: datetime | None) -> datetime | None:
    """A stored (UTC) time in the organisation's time zone, for display and day boundaries."""
    return value.astimezone(org_timezone()) if value is not None else None


def as_datetime(value: Any, field: str, label: str) -> datetime | None:
    """A timezone-aware datetime from a datetime (naive = UTC) or an ISO 8601 string."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ServiceError(f"{label} must be a date and time like 2027-01-31T18:00:00Z.", field=field) from None
    else:
        raise ServiceError(f"{label} must be a date and time.", field=field)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        parsed = parsed.astimezone(timezone.utc)
    except OverflowError:
        raise ServiceError(f"{label} is out of range.", field=field) from None
    if not 2000 <= parsed.year <= 2200:
        raise ServiceError(f"{label} must be between the years 2000 and 2200.", field=field)
    return parsed

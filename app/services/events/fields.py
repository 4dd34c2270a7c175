"""An event's fields: what each may hold, checked all at once (``clean_event``).

Every field is checked before anything is refused, so one ``ValidationErrors``
names them all (the console shows each under its field, the API lists them in
``details.fields``); rules across fields (end after start, 31 days at most,
deadline before the start) run on the fields that passed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.models import CHECKIN_RULES, EVENT_TYPES, Event
from app.models.events import STORED_EVENT_STATUSES
from app.services.errors import ServiceError
from app.services.events.times import as_datetime
from app.services.inputs import unit_id_value
from app.services.members import text_value
from app.services.validation import FieldErrors

EVENT_FIELDS = (
    "title", "description", "event_type", "start_at", "end_at", "location", "venue", "unit_id", "capacity",
    "registration_required", "registration_deadline", "status", "checkin_rule", "walk_ins_allowed",
)
MAX_DURATION = timedelta(days=31)
MAX_CAPACITY = 1_000_000


def _bool(value: Any, field: str, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, "", 0, "0", "false", "no", "off"):
        return False
    if value in (1, "1", "true", "yes", "on", "y"):
        return True
    raise ServiceError(f"{label} must be true or false.", field=field)


def clean_event(data: dict[str, Any], *, partial: bool = False, current: Event | None = None) -> dict[str, Any]:
    """Validate event fields; with ``partial`` only the keys given (checked against ``current``).

    Every field is checked before anything is refused (one ``ValidationErrors``
    names them all); rules across fields run on the fields that passed.
    """
    errors = FieldErrors()
    for key in sorted(set(data) - set(EVENT_FIELDS)):
        errors.add(key, f"Unknown field '{key}'.")
    out: dict[str, Any] = {}

    def wanted(key: str) -> bool:
        return key in data or not partial

    def text(key: str, label: str, max_len: int, required: bool = False) -> None:
        if wanted(key):
            with errors.check():
                out[key] = text_value(data.get(key), key, label, max_len, required=required)

    text("title", "Title", 200, required=True)
    text("description", "Description", 10_000)
    if wanted("event_type"):
        kind = str(data.get("event_type") or "meeting").strip().lower()
        if kind not in EVENT_TYPES:
            errors.add("event_type", f"The type must be one of: {', '.join(EVENT_TYPES)}.")
        out["event_type"] = kind
    for key, label in (("start_at", "Start"), ("end_at", "End")):
        if wanted(key):
            with errors.check():
                value = as_datetime(data.get(key), key, label)
                if value is None:
                    raise ServiceError(f"{label} is required.", field=key)
                out[key] = value
    if wanted("registration_deadline"):
        with errors.check():
            out["registration_deadline"] = as_datetime(
                data.get("registration_deadline"), "registration_deadline", "Registration deadline"
            )
    text("location", "Location", 200)
    text("venue", "Venue", 200)
    if wanted("unit_id"):
        with errors.check():
            out["unit_id"] = _event_unit_id(data.get("unit_id"))
    if wanted("capacity"):
        with errors.check():
            out["capacity"] = _capacity(data.get("capacity"))
    for key, label, default in (("registration_required", "Registration required", True),
                                ("walk_ins_allowed", "Walk-ins allowed", False)):
        if wanted(key):
            with errors.check():
                out[key] = _bool(data.get(key, default if not partial else None), key, label)
    if wanted("checkin_rule"):
        rule = str(data.get("checkin_rule") or "once").strip().lower()
        if rule not in CHECKIN_RULES:
            errors.add("checkin_rule", f"The check-in rule must be one of: {', '.join(CHECKIN_RULES)}.")
        out["checkin_rule"] = rule
    if wanted("status"):
        with errors.check():
            out["status"] = _event_status(data.get("status"), current)

    # Rules across fields, on the values the event will have (fields already at fault are skipped).
    def final(key: str) -> Any:
        if key in out:
            return out[key]
        return getattr(current, key) if current is not None else None

    start, end, deadline = final("start_at"), final("end_at"), final("registration_deadline")
    if start is not None and end is not None and not errors.has("start_at", "end_at"):
        if end <= start:
            errors.add("end_at", "The end must be after the start.")
        elif end - start > MAX_DURATION:
            errors.add("end_at", "An event lasts 31 days at most.")
    if (deadline is not None and start is not None and deadline > start
            and not errors.has("start_at", "registration_deadline")):
        errors.add("registration_deadline", "The registration deadline must be before the start.")
    errors.raise_if_any()
    return out


def _event_unit_id(unit_id: Any) -> int:
    return unit_id_value(unit_id, "Choose the unit the event belongs to.")


def _capacity(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        capacity = int(value)
    except (TypeError, ValueError):
        raise ServiceError("Capacity must be a whole number.", field="capacity") from None
    if isinstance(value, bool) or not 1 <= capacity <= MAX_CAPACITY:
        raise ServiceError(f"Capacity must be between 1 and {MAX_CAPACITY:,} (or empty for no limit).",
                           field="capacity")
    return capacity


def _event_status(value: Any, current: Event | None) -> str:
    status = str(value or "draft").strip().lower()
    if status in STORED_EVENT_STATUSES:
        return status
    if status in ("ongoing", "completed") and current is not None and status == current.current_status:
        return current.status  # sending back what was read changes nothing
    if status in ("ongoing", "completed"):
        raise ServiceError("Ongoing and completed follow the dates: set 'upcoming' to publish the event.",
                           field="status")
    raise ServiceError("The status must be draft, upcoming (published) or cancelled.", field="status")


def snapshot(event: Event) -> dict[str, Any]:
    """The event's fields as the audit log compares them."""
    return {key: getattr(event, key) for key in EVENT_FIELDS}

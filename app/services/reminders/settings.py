"""Reminder settings: the environment's defaults, overridden by what admins saved in the console.

Offsets (``MUSTER_RENEWAL_REMINDERS``), event hours
(``MUSTER_EVENT_REMINDER_HOURS``) and the subjects and texts of both kinds
of reminder. What an admin saves is kept in ``reminder_settings`` (one row
per key) and wins over the environment; clearing a field in the form puts
the default back (the row goes). Settings apply to every unit, so changing
them needs ``members.update`` everywhere (global admins and super admins).

Texts are plain text with a few ``{placeholders}``, substituted here — never
templates: an admin's text cannot reach Jinja (no template injection), and
the HTML mail escapes it like any other value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import ReminderSetting
from app.security import authorize_everywhere
from app.services import audit
from app.services.errors import ServiceError, ValidationErrors

MANAGE = "members.update"  # everywhere: the settings apply to every unit
MAX_OFFSETS = 12
MAX_OFFSET_DAYS = 366
MAX_EVENT_HOURS = 24 * 30

RENEWAL_PLACEHOLDERS = ("first_name", "org_name", "card_number", "expires_on", "when")
EVENT_PLACEHOLDERS = ("first_name", "org_name", "event_title", "event_start", "event_place")
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")

DEFAULT_TEXTS = {
    "renewal_subject": "Your {org_name} membership card {when}",
    "renewal_text": ("Your membership card {card_number} {when} ({expires_on}). Renew your membership to stay "
                     "a member in good standing."),
    "event_subject": "Reminder: {event_title}, {event_start}",
    "event_text": "You are registered for {event_title} on {event_start} at {event_place}. We look forward to "
                  "seeing you.",
}


@dataclass(frozen=True)
class ReminderSettings:
    renewal_offsets: tuple[int, ...]
    event_hours: float
    renewal_subject: str
    renewal_text: str
    event_subject: str
    event_text: str


KEYS = tuple(f.name for f in fields(ReminderSettings))


def format_offsets(offsets: tuple[int, ...] | list[int]) -> str:
    """``-30,-7,0,+14``: how offsets are written (the environment's and the form's notation)."""
    return ",".join(f"{o:+d}" if o else "0" for o in offsets)


def format_hours(hours: float) -> str:
    return f"{hours:g}"


def parse_offsets(raw: str) -> tuple[int, ...]:
    """``"-30, -7, 0, +14"`` -> (-30, -7, 0, 14), sorted and without repeats; ValueError with a reason."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if not parts:
        raise ValueError("Enter at least one offset in days, such as -30,-7,0,+14.")
    offsets = set()
    for part in parts:
        if not re.fullmatch(r"[+-]?[0-9]{1,4}", part):
            raise ValueError(f"{part!r} is not a whole number of days (write offsets such as -30,-7,0,+14).")
        value = int(part)
        if abs(value) > MAX_OFFSET_DAYS:
            raise ValueError(f"{part} is more than {MAX_OFFSET_DAYS} days from expiry.")
        offsets.add(value)
    if len(offsets) > MAX_OFFSETS:
        raise ValueError(f"At most {MAX_OFFSETS} offsets.")
    return tuple(sorted(offsets))


def parse_hours(raw: str) -> float:
    text = (raw or "").strip()
    if not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,2})?", text):
        raise ValueError("Enter a number of hours, such as 24.")
    value = float(text)
    if not 0 < value <= MAX_EVENT_HOURS:
        raise ValueError(f"Enter more than 0 and at most {MAX_EVENT_HOURS} hours.")
    return value


def check_text(raw: str, allowed: tuple[str, ...], *, limit: int, what: str) -> str:
    """The text, stripped, if every ``{placeholder}`` is one of ``allowed``; ValueError otherwise."""
    text = (raw or "").strip()
    if not text:
        raise ValueError(f"Enter the {what}.")
    if len(text) > limit:
        raise ValueError(f"The {what} has at most {limit} characters.")
    if "\n" in text and what.endswith("subject"):
        raise ValueError("A subject is one line.")
    unknown = sorted({name for name in PLACEHOLDER_RE.findall(text) if name not in allowed})
    if unknown:
        raise ValueError(f"Unknown placeholder {{{unknown[0]}}}: use " + ", ".join(f"{{{a}}}" for a in allowed) + ".")
    return text


def fill(text: str, values: dict[str, Any]) -> str:
    """Substitute ``{name}`` placeholders (checked on save; anything else is left as written)."""
    return PLACEHOLDER_RE.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def defaults() -> dict[str, str]:
    """The environment's values, as the form writes them."""
    config = current_app.config
    return {
        "renewal_offsets": format_offsets(parse_offsets(config["RENEWAL_REMINDERS"])),
        "event_hours": format_hours(float(config["EVENT_REMINDER_HOURS"])),
        **DEFAULT_TEXTS,
    }


def stored() -> dict[str, str]:
    """What admins saved (keys absent: the default applies)."""
    return {row.key: row.value for row in db.session.scalars(select(ReminderSetting))}


def _validate(raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    checks = {
        "renewal_offsets": parse_offsets,
        "event_hours": parse_hours,
        "renewal_subject": lambda v: check_text(v, RENEWAL_PLACEHOLDERS, limit=200, what="renewal subject"),
        "renewal_text": lambda v: check_text(v, RENEWAL_PLACEHOLDERS, limit=2000, what="renewal text"),
        "event_subject": lambda v: check_text(v, EVENT_PLACEHOLDERS, limit=200, what="event subject"),
        "event_text": lambda v: check_text(v, EVENT_PLACEHOLDERS, limit=2000, what="event text"),
    }
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, check in checks.items():
        try:
            values[key] = check(raw[key])
        except ValueError as exc:
            errors[key] = str(exc)
    return values, errors


def current() -> ReminderSettings:
    """The settings in force: saved values over the environment's defaults.

    A saved value that no longer parses (edited in the database by hand)
    falls back to the default rather than stopping every reminder.
    """
    base = defaults()
    merged = {**base, **{k: v for k, v in stored().items() if k in KEYS}}
    values, errors = _validate(merged)
    if errors:
        fallback, _ = _validate({**merged, **{k: base[k] for k in errors}})
        values.update({k: fallback[k] for k in errors})
    return ReminderSettings(**values)


def form_values() -> dict[str, str]:
    """What the settings form shows: saved values, else the defaults, in the form's notation."""
    return {**defaults(), **{k: v for k, v in stored().items() if k in KEYS}}


def check_may_manage(actor: Any) -> None:
    authorize_everywhere(actor, MANAGE, message="Only staff who manage members everywhere may change reminders.")


def update(actor: Any, raw: dict[str, str | None]) -> ReminderSettings:
    """Save the settings form: every field checked at once (``ValidationErrors``), then one row per change.

    A field left empty (or equal to the default) removes the override, so
    the environment's value applies again.
    """
    check_may_manage(actor)
    base = defaults()
    given = {key: (raw.get(key) or "").strip() for key in KEYS}
    filled = {key: given[key] or base[key] for key in KEYS}
    values, errors = _validate(filled)
    if errors:
        raise ValidationErrors(errors)
    normal = {**filled, "renewal_offsets": format_offsets(values["renewal_offsets"]),
              "event_hours": format_hours(values["event_hours"])}
    before = stored()
    changes: dict[str, Any] = {}
    for key in KEYS:
        row = db.session.get(ReminderSetting, key)
        if normal[key] == base[key]:
            if row is not None:
                db.session.delete(row)
                changes[key] = [before.get(key), None]
            continue
        if row is None:
            db.session.add(ReminderSetting(key=key, value=normal[key], updated_by_id=getattr(actor, "id", None)))
            changes[key] = [None, normal[key]]
        elif row.value != normal[key]:
            changes[key] = [row.value, normal[key]]
            row.value = normal[key]
            row.updated_by_id = getattr(actor, "id", None)
    db.session.flush()
    if changes:
        audit.record(actor, "reminders.settings", None, summary="Changed the reminder settings: " +
                     ", ".join(k.replace("_", " ") for k in changes), changes=changes)
    return current()


__all__ = ["ReminderSettings", "ServiceError", "current", "defaults", "fill", "form_values", "update"]

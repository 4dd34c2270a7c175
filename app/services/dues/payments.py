"""The payments list's rules: its filters and its WHERE, for the console list, its totals and the API.

The WHERE starts from the actor's ``payments.read`` scope (``app.security``),
so nobody lists, counts or sums more than they may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Mapping

from sqlalchemy import false

from app.extensions import db
from app.models import PAYMENT_METHODS, PAYMENT_STATUSES, Payment, Unit
from app.models.base import utcnow
from app.security import can, scope_filter, subtree_unit_ids
from app.services import dues
from app.services.errors import ValidationErrors
from app.services.inputs import parse_id

# The same words for an unknown unit and one outside the user's area, so the filter reveals nothing.
UNIT_UNSEEN = "That unit does not exist or is outside your area."


@dataclass(frozen=True)
class Filters:
    status: str | None
    method: str | None
    unit_id: int | None
    since: date | None
    until: date | None


def _date(raw: str, errors: dict[str, str], name: str) -> date | None:
    if not raw:
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = "Give a date as YYYY-MM-DD, for example 2027-01-31."
        return None


def parse_filters(actor: Any, args: Mapping[str, str]) -> Filters:
    """The list's filters from a query string; every bad one at once (``ValidationErrors``)."""
    errors: dict[str, str] = {}
    status = str(args.get("status") or "").strip().lower() or None
    if status is not None and status not in PAYMENT_STATUSES:
        errors["status"] = "Choose a status: " + ", ".join(dues.STATUS_LABELS[s].lower() for s in PAYMENT_STATUSES) + "."
    method = str(args.get("method") or "").strip().lower() or None
    if method is not None and method not in PAYMENT_METHODS:
        errors["method"] = "Choose a method: " + ", ".join(dues.METHOD_LABELS[m].lower() for m in PAYMENT_METHODS) + "."
    unit_id = None
    if args.get("unit_id"):
        unit_id = parse_id(args["unit_id"])
        unit = db.session.get(Unit, unit_id) if unit_id is not None else None
        if unit is None or not can(actor, dues.READ, unit):
            errors["unit_id"] = UNIT_UNSEEN
    since = _date(args.get("since", ""), errors, "since")
    until = _date(args.get("until", ""), errors, "until")
    if since and until and until < since:
        errors["until"] = "The end date is before the start date."
    if errors:
        raise ValidationErrors(errors)
    return Filters(status, method, unit_id, since, until)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min).replace(tzinfo=utcnow().tzinfo)


def list_clauses(actor: Any, filters: Filters) -> list:
    """The WHERE of the list, its count and its totals: the user's scope, then the filters."""
    clauses: list = []
    scope = scope_filter(actor, dues.READ, Payment)
    if scope is not None:
        clauses.append(scope)
    if filters.status:
        clauses.append(Payment.status == filters.status)
    if filters.method:
        clauses.append(Payment.method == filters.method)
    if filters.unit_id is not None:
        unit = db.session.get(Unit, filters.unit_id)
        clauses.append(Payment.unit_id.in_(subtree_unit_ids(unit)) if unit is not None else false())
    if filters.since:
        clauses.append(Payment.created_at >= _midnight(filters.since))
    if filters.until and filters.until < date.max:  # both days included; 9999-12-31 has no next day
        clauses.append(Payment.created_at < _midnight(filters.until + timedelta(days=1)))
    return clauses

"""Membership tiers: what members can pay for (name, price and currency, duration, card type, active).

Managed in the console by people who hold ``payments.refund`` everywhere
(the admins of the whole organisation): a tier's price is the same in every
ward. Tiers are never deleted once paid for: they are switched off
(``active``), so old payments keep their tier.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import CARD_TYPES, MembershipTier
from app.security import authorize_everywhere
from app.services import audit
from app.services.errors import DuplicateError, ValidationErrors

MANAGE = "payments.refund"
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_MONTHS = 120
FIELDS = ("name", "description", "price", "currency", "duration_months", "card_type", "active")


def active_tiers() -> list[MembershipTier]:
    """Tiers a member can choose, cheapest first."""
    return list(db.session.scalars(select(MembershipTier).where(MembershipTier.active.is_(True))
                                   .order_by(MembershipTier.price_minor, MembershipTier.name)))


def parse_price(raw: Any) -> int:
    """"120", "120.5", "1,200.00" -> minor units (12000, 12050, 120000); ValueError for anything else."""
    text = str(raw if raw is not None else "").strip().replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None
    if not value.is_finite() or value < 0 or value > Decimal("10000000000"):
        raise ValueError(text)
    return int((value * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def clean(data: dict[str, Any], tier: MembershipTier | None = None) -> dict[str, Any]:
    """The tier's values from a form or JSON body; every field's problem at once (``ValidationErrors``).

    ``duration_months`` empty or "lifetime" means a lifetime tier.
    """
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the tier a name."
    elif len(name) > 80:
        errors["name"] = "A name is at most 80 characters."
    values["name"] = name
    values["description"] = str(data.get("description") or "").strip()[:2000]
    try:
        values["price_minor"] = parse_price(data.get("price"))
    except ValueError:
        errors["price"] = "Give the price as a number, for example 120 or 120.50."
    currency = str(data.get("currency") or "").strip().upper()
    if not CURRENCY_RE.match(currency):
        errors["currency"] = "Give the currency as its three-letter code, for example ZMW or USD."
    values["currency"] = currency
    raw_months = str(data.get("duration_months") if data.get("duration_months") is not None else "").strip().lower()
    if raw_months in ("", "lifetime", "none"):
        values["duration_months"] = None
    else:
        try:
            months = int(raw_months)
            if not 1 <= months <= MAX_MONTHS:
                raise ValueError
            values["duration_months"] = months
        except ValueError:
            errors["duration_months"] = f"Give the duration in months (1 to {MAX_MONTHS}), or leave it empty for life."
    card_type = str(data.get("card_type") or "standard").strip().lower()
    if card_type not in CARD_TYPES:
        errors["card_type"] = "Choose a card type: " + ", ".join(CARD_TYPES) + "."
    values["card_type"] = card_type
    if values.get("duration_months") is None and "duration_months" not in errors and card_type != "lifetime":
        errors["card_type"] = "A lifetime tier carries a lifetime card."
    if card_type == "lifetime" and values.get("duration_months") is not None:
        errors["duration_months"] = "A lifetime card has no duration: leave it empty."
    active = data.get("active", True if tier is None else tier.active)
    values["active"] = active if isinstance(active, bool) else str(active).strip().lower() in ("1", "y", "yes",
                                                                                                "true", "on")
    if name and "name" not in errors:
        clash = select(MembershipTier.id).where(func.lower(MembershipTier.name) == name.lower())
        if tier is not None:
            clash = clash.where(MembershipTier.id != tier.id)
        if db.session.scalar(clash) is not None:
            errors["name"] = "Another tier has this name."
    if errors:
        raise ValidationErrors(errors)
    return values


def create_tier(actor: Any, data: dict[str, Any]) -> MembershipTier:
    authorize_everywhere(actor, MANAGE, message="You may not manage membership tiers.")
    values = clean(data)
    tier = MembershipTier(**values)
    db.session.add(tier)
    db.session.flush()
    audit.record(actor, "tier.create", tier, summary=f"Membership tier {tier.name} created")
    return tier


def update_tier(actor: Any, tier: MembershipTier, data: dict[str, Any]) -> MembershipTier:
    authorize_everywhere(actor, MANAGE, message="You may not manage membership tiers.")
    values = clean({**{"name": tier.name, "description": tier.description, "price": tier.price_minor / 100,
                       "currency": tier.currency, "duration_months": tier.duration_months,
                       "card_type": tier.card_type, "active": tier.active}, **data}, tier)
    before = {k: getattr(tier, k) for k in values}
    for key, value in values.items():
        setattr(tier, key, value)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise DuplicateError("Another tier has this name.", field="name") from None
    changes = {k: {"before": before[k], "after": v} for k, v in values.items() if before[k] != v}
    audit.record(actor, "tier.update", tier, summary=f"Membership tier {tier.name} changed", changes=changes)
    return tier

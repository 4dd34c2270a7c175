"""Console "Dues > Tiers": the membership tiers, and creating and editing them (issue 14).

Anyone who may read payments sees the list (it is the price list a treasurer
records against); creating and editing need ``payments.refund`` everywhere,
which ``app.services.dues.tiers`` asks (``authorize_everywhere``); the
pages ask the same authority before showing a form, so a coordinator gets 403.
Tiers are never deleted: they are switched off, so old payments keep theirs.
Every field's message at once (422); one commit per save.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_admin import expose
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField, TextAreaField

from app.admin.base import SecureView, committing, current_actor
from app.admin.widgets import ConsoleForm
from app.extensions import db
from app.models import CARD_TYPES, MembershipTier
from app.security import authorize_everywhere, can
from app.services.dues import READ, format_money
from app.services.dues import tiers as tier_service

REFUSAL = "You may not manage membership tiers."


class TierForm(ConsoleForm):
    name = StringField("Name")
    description = TextAreaField("Description (shown to members choosing a tier)")
    price = StringField("Price, for example 120 or 120.50")
    currency = StringField("Currency (three letters, for example ZMW)")
    duration_months = StringField("Duration in months (empty: lifetime)")
    card_type = SelectField("Card type", choices=[(c, c.capitalize()) for c in CARD_TYPES], validate_choice=False)
    active = BooleanField("Active (members and treasurers can choose it)", default=True)

    def values(self) -> dict[str, Any]:
        return {name: self[name].data for name in tier_service.FIELDS}


def duration_text(tier: MembershipTier) -> str:
    if tier.duration_months is None:
        return "Lifetime"
    return f"{tier.duration_months} month{'' if tier.duration_months == 1 else 's'}"


class TiersView(SecureView):
    permission = READ

    @expose("/")
    def index(self):
        tiers = list(db.session.scalars(select(MembershipTier).order_by(MembershipTier.active.desc(),
                                                                        MembershipTier.price_minor,
                                                                        MembershipTier.name)))
        return self.render("admin/dues/tiers.html", tiers=tiers, money=format_money, duration=duration_text,
                           can_manage=can(current_actor(), tier_service.MANAGE))

    def _render(self, form: TierForm, tier: MembershipTier | None, status: int = 200):
        return self.render("admin/dues/tier_form.html", form=form, tier=tier), status

    @expose("/new", methods=("GET", "POST"))
    def create(self):
        actor = current_actor()
        authorize_everywhere(actor, tier_service.MANAGE, message=REFUSAL)  # 403 before any form is shown
        if request.method != "POST":
            return self._render(TierForm(formdata=None), None)
        form = TierForm()
        with committing(form, show="form") as outcome:
            tier = tier_service.create_tier(actor, form.values())
        if not outcome.ok:
            return self._render(form, None, outcome.status)
        flash(f"Tier {tier.name} created: {format_money(tier.price_minor, tier.currency)}, "
              f"{duration_text(tier).lower()}.", "success")
        return redirect(url_for(".index"))

    @expose("/<pk:tier_id>/edit", methods=("GET", "POST"))
    def edit(self, tier_id: int):
        actor = current_actor()
        authorize_everywhere(actor, tier_service.MANAGE, message=REFUSAL)
        tier = db.get_or_404(MembershipTier, tier_id)
        if request.method != "POST":
            form = TierForm(formdata=None, data={
                "name": tier.name, "description": tier.description, "price": f"{tier.price_minor / 100:.2f}",
                "currency": tier.currency, "card_type": tier.card_type, "active": tier.active,
                "duration_months": "" if tier.duration_months is None else str(tier.duration_months)})
            return self._render(form, tier)
        form = TierForm()
        with committing(form, show="form") as outcome:
            tier_service.update_tier(actor, tier, form.values())
        if not outcome.ok:
            return self._render(form, db.get_or_404(MembershipTier, tier_id), outcome.status)
        flash(f"Tier {tier.name} saved.", "success")
        return redirect(url_for(".index"))


def register(admin: Any) -> None:
    admin.add_view(TiersView(name="Tiers", endpoint="dues_tiers", url="/admin/dues/tiers", category="Dues"))

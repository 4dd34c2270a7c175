"""Console "Dues > Reconcile" (issue 14): the payments that wait for someone, and the buttons that settle them.

Which payments wait, and what the two buttons do, is decided in
``app.services.dues.reconcile``; this view lists a page of them, posts the
buttons, commits once and says in a flash what came of it.

- The list (``/admin/dues/reconcile/``): within the user's ``payments.read``
  scope, online payments still pending some minutes after they were started
  (the member may have paid and Stripe's webhook not come) and completed
  payments that have not renewed the membership (held, with the reason),
  oldest first, paged, with an empty state.
- "Check with Stripe" (``POST /admin/dues/reconcile/<id>/check``) reads the
  Checkout Session again and completes the payment if Stripe says it is paid;
  hidden, with the reason said on the page, when Stripe is not configured.
- "Renew now" (``POST /admin/dues/reconcile/<id>/renew``) fulfils a held
  payment once staff have dealt with the reason.

Both POSTs carry the CSRF token (``CSRFProtect``) and need
``payments.create`` over the payment (``load_for``: 404 outside the area,
403 without the right), as the refund does.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from flask import flash, redirect, url_for
from flask_admin import expose
from sqlalchemy import select

from app.admin.base import SecureView, committing, current_actor, page_arg, staff_can
from app.admin.widgets import unit_labels
from app.extensions import db
from app.models import Payment, Unit
from app.security import load_for, permits
from app.services import dues
from app.services.dues import reconcile
from app.services.dues import stripe_gateway as gateway

PAGE_SIZE = 25
# The flash of each outcome (``reconcile.Result.state``): good news green, a wait or a refusal amber.
FLASH_CATEGORIES = {"renewed": "success", "already": "info", "pending": "info", "held": "warning",
                    "failed": "warning", "cancelled": "warning", "refunded": "warning"}


class ReconcileView(SecureView):
    permission = dues.READ

    @expose("/")
    def index(self):
        actor = current_actor()
        page = page_arg()
        rows, total = reconcile.awaiting_page(actor, offset=page * PAGE_SIZE, limit=PAGE_SIZE)
        ids = {p.unit_id for p in rows}
        units = unit_labels(list(db.session.scalars(select(Unit).where(Unit.id.in_(ids))))) if ids else {}
        may_act = {p.id: permits(actor, dues.CREATE, p) for p in rows}
        can_members = staff_can("members.read")
        return self.render(
            "admin/dues/reconcile.html", rows=rows, total=total, page=page, page_size=PAGE_SIZE,
            pages=ceil(total / PAGE_SIZE), unit_names=units, money=dues.format_money,
            method_labels=dues.METHOD_LABELS, kind=reconcile.kind, stripe_on=gateway.enabled(),
            pending_minutes=int(reconcile.PENDING_AFTER.total_seconds() // 60),
            can_check={p.id: may_act[p.id] and reconcile.kind(p) == "pending" and reconcile.can_recheck(p)
                       for p in rows},
            can_renew={p.id: may_act[p.id] and reconcile.kind(p) == "held" for p in rows},
            links={p.id: can_members and permits(actor, "members.read", p.member) for p in rows},
        )

    def _act(self, payment_id: int, action):
        """Load the payment for ``payments.create`` (404 / 403), run the action, commit once, flash, go back."""
        actor = current_actor()
        page = page_arg()
        payment = load_for(actor, Payment, payment_id, dues.CREATE, message="You may not reconcile payments here.")
        with committing() as outcome:  # CSRFProtect has checked the token before this runs
            result = action(actor, payment)
        if outcome.ok:
            flash(result.message, FLASH_CATEGORIES.get(result.state, "info"))
        return redirect(url_for(".index", page=page or None))

    @expose("/<pk:payment_id>/check", methods=("POST",))
    def check(self, payment_id: int):
        """"Check with Stripe": re-read the session; paid means completed and renewed, once."""
        return self._act(payment_id, reconcile.recheck)

    @expose("/<pk:payment_id>/renew", methods=("POST",))
    def renew(self, payment_id: int):
        """"Renew now": fulfil a held payment again, now that staff have dealt with the reason."""
        return self._act(payment_id, reconcile.renew)


def register(admin: Any) -> None:
    admin.add_view(ReconcileView(name="Reconcile", endpoint="dues_reconcile", url="/admin/dues/reconcile",
                                 category="Dues"))

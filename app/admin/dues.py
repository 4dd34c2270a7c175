"""Console "Dues" (issue 14): the scoped payments list, recording a manual payment, refunds; tiers in ``dues_tiers``.

Every rule is in ``app.services.dues`` (which asks ``app.security``); these
views parse the request, call the service, commit once and render.

- Payments (``/admin/dues/payments/``): the user's ``payments.read`` scope,
  newest first, paged, filtered by a GET form (status, method, unit and the
  units below it, recorded since/until). A bad filter is shown under its
  field, every one at once, with a 400 and no table, never a 500. Under the
  filters, the totals of the completed payments in the (whole, filtered) list
  per currency. A held payment shows why it waits for staff.
- Record a payment (``/admin/dues/record/``): the member by membership number,
  looked up among the live members of the user's ``payments.create`` scope (an
  unknown number and one outside the area read the same), a tier, the method,
  a reference and optionally the amount. ``record_manual`` decides; every
  field's message at once (422) and nothing written when it refuses.
- Refund (``/admin/dues/payments/<id>/refund``): a confirmation page with the
  reason it needs, then the POST (CSRF, ``payments.refund``: 404 outside the
  area, 403 without the right); the flash says what happened to the card.
- Export (``/admin/dues/payments/export?format=csv|xlsx&<the list's filters>``):
  exactly the filtered list, through ``app.services.dues.export`` (the one
  export pipeline, audited); a refused export goes back to the list with why.
- Receipt (``/admin/dues/payments/<id>/receipt``): the PDF for staff who may
  read the payment (``load_for``: 404 outside the area); one without a receipt
  yet goes back to the list with the reason (``receipts.check_receipt``).
- The member's page shows a "Payments" panel (``member_payments_panel``, a
  template global): their latest payments the user may read, with receipts
  and "Record a payment" prefilled with the membership number
  (``/admin/dues/record/?membership_number=``).
- Reconciliation (``/admin/dues/reconcile/``) is in ``dues_reconcile``.
"""

from __future__ import annotations

from datetime import date
from math import ceil
from typing import Any

from flask import Response, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import SelectField, StringField, TextAreaField

from app.admin import dues_reconcile, dues_report, dues_tiers
from app.admin.base import SecureView, committing, current_actor, page_arg, staff_can
from app.admin.widgets import ConsoleForm, unit_label, units_in_scope
from app.extensions import db
from app.models import MANUAL_METHODS, PAYMENT_STATUSES, PAYMENT_METHODS, Member, Payment, Unit
from app.security import load_for, permits, scoped
from app.services import dues
from app.services.dues import export as payment_export
from app.services.dues import payments, receipts
from app.services.dues.tiers import active_tiers, parse_price
from app.services.errors import ServiceError, ValidationErrors

PAGE_SIZE = 25
FILTER_FIELDS = ("status", "method", "unit_id", "since", "until")
STATUS_BADGES = {"pending": "info", "completed": "success", "failed": "danger", "refunded": "secondary",
                 "cancelled": "secondary"}
NO_MEMBER = "There is no such member in your area: check the membership number."
AMOUNT_BAD = "Give the amount paid as a number, for example 120 or 120.50, or leave it empty."
PANEL_SIZE = 10  # the member page's payments panel: the latest ones; the rest are in the payments list


def until_text(day: date | None) -> str:
    return f"valid until {day:%d %B %Y}" if day is not None else "valid for life"


# --- the list ---------------------------------------------------------------------------


class PaymentForm(ConsoleForm):
    membership_number = StringField("Membership number")
    tier_id = SelectField("Membership tier", choices=[], validate_choice=False)
    method = SelectField("How it was paid", choices=[("", "Choose…")] + [(m, dues.METHOD_LABELS[m])
                                                                         for m in MANUAL_METHODS],
                         validate_choice=False)
    reference = StringField("Reference (bank or mobile-money transaction; optional for cash)")
    amount = StringField("Amount paid (leave empty for the tier's price)")


class RefundForm(ConsoleForm):
    reason = TextAreaField("Reason (required)")


def _filter_args() -> dict[str, str]:
    """The filter fields as typed (kept in the form, the pager and the export links); empty ones dropped."""
    return {n: request.args.get(n, "").strip() for n in FILTER_FIELDS if request.args.get(n, "").strip()}


class PaymentsView(SecureView):
    permission = dues.READ

    @expose("/")
    def index(self):
        actor = current_actor()
        page = page_arg()
        args = _filter_args()
        errors: dict[str, str] = {}
        rows: list[Payment] = []
        total, totals = 0, []
        try:
            filters = payments.parse_filters(actor, args)
        except ValidationErrors as exc:
            errors, filters = exc.errors, None
        if filters is not None:
            where = payments.list_clauses(actor, filters)
            total = db.session.scalar(select(func.count(Payment.id)).where(*where)) or 0
            rows = list(db.session.scalars(
                select(Payment).where(*where).options(selectinload(Payment.member), selectinload(Payment.tier))
                .order_by(Payment.created_at.desc(), Payment.id.desc()).offset(page * PAGE_SIZE).limit(PAGE_SIZE)))
            totals = [(currency, int(amount or 0), count) for currency, amount, count in db.session.execute(
                select(Payment.currency, func.sum(Payment.amount_minor), func.count(Payment.id))
                .where(*where, Payment.status == "completed").group_by(Payment.currency).order_by(Payment.currency))]
        units = {u.id: u for u in db.session.scalars(select(Unit).where(Unit.id.in_({p.unit_id for p in rows})))} \
            if rows else {}
        can_members = staff_can("members.read")
        return self.render(
            "admin/dues/payments.html", rows=rows, total=total, totals=totals, page=page, page_size=PAGE_SIZE,
            pages=ceil(total / PAGE_SIZE), args=args, errors=errors,
            unit_names={uid: unit_label(u) for uid, u in units.items()},
            units=[(u.id, unit_label(u)) for u in units_in_scope(dues.READ)],
            statuses=[(s, dues.STATUS_LABELS[s]) for s in PAYMENT_STATUSES],
            methods=[(m, dues.METHOD_LABELS[m]) for m in PAYMENT_METHODS],
            status_labels=dues.STATUS_LABELS, method_labels=dues.METHOD_LABELS, badges=STATUS_BADGES,
            money=dues.format_money, can_record=staff_can(dues.CREATE),
            links={p.id: can_members and permits(actor, "members.read", p.member) for p in rows},
            refundable={p.id: p.status == "completed" and permits(actor, dues.REFUND, p) for p in rows},
        ), 400 if errors else 200

    @expose("/export")
    def export(self):
        """The filtered list as a CSV or XLSX file; a refused export goes back to the list with the reason."""
        actor = current_actor()
        args = _filter_args()
        try:
            filters = payments.parse_filters(actor, args)
            return payment_export.export(actor, filters, request.args.get("format", "csv")).response()
        except ServiceError as exc:  # bad filters, format or size: a reading request, nothing to roll back
            for message in (exc.errors.values() if isinstance(exc, ValidationErrors) else [exc.message]):
                flash(message, "error")
        return redirect(url_for(".index", **args))

    @expose("/<pk:payment_id>/receipt")
    def receipt(self, payment_id: int):
        """The payment's PDF receipt for staff (404 outside the area); none yet: back to the list with why."""
        payment = load_for(current_actor(), Payment, payment_id, dues.READ, message="You may not see this payment.")
        try:
            body = receipts.render_receipt_pdf(payment)
        except ServiceError as exc:
            flash(exc.message, "warning")
            return redirect(url_for(".index"))
        response = Response(body, mimetype="application/pdf")
        response.headers["Content-Disposition"] = f'attachment; filename="{receipts.receipt_filename(payment)}"'
        response.headers["Cache-Control"] = "private, no-store"
        return response

    # -- refund ------------------------------------------------------------------------

    def _confirm(self, payment: Payment, form: RefundForm, status: int = 200):
        return self.render("admin/dues/refund.html", payment=payment, form=form, money=dues.format_money,
                           method_labels=dues.METHOD_LABELS, status_labels=dues.STATUS_LABELS,
                           badges=STATUS_BADGES, until_text=until_text), status

    @expose("/<pk:payment_id>/refund", methods=("GET", "POST"))
    def refund(self, payment_id: int):
        """GET: the confirmation page; POST: the refund (one commit), then the list with what happened."""
        actor = current_actor()
        payment = load_for(actor, Payment, payment_id, dues.REFUND)  # 404 out of scope, 403 without the right
        if request.method != "POST":
            return self._confirm(payment, RefundForm(formdata=None))
        form = RefundForm()
        was = payment.status  # the service answers a second refund with the payment unchanged
        with committing(form, show="form") as outcome:  # CSRFProtect has checked the token before this runs
            dues.refund(actor, payment, form.reason.data)
        if not outcome.ok:
            return self._confirm(load_for(actor, Payment, payment_id, dues.REFUND), form, outcome.status)
        label = payment.receipt_number or f"Payment {payment.id}"
        if was == "refunded":
            flash(f"{label} was already refunded: nothing changed.", "info")
        elif payment.hold_reason:
            flash(f"{label} refunded. {payment.hold_reason}", "warning")
        elif payment.fulfilled_at is not None:
            flash(f"{label} refunded: {payment.member.full_name}'s membership is "
                  f"{until_text(payment.extended_from)} again.", "success")
        else:
            flash(f"{label} refunded: it had not renewed the membership, so nothing else changed.", "success")
        return redirect(url_for(".index"))


# --- recording a manual payment ------------------------------------------------------------


class RecordPaymentView(SecureView):
    permission = dues.CREATE

    def _render(self, form: PaymentForm, status: int = 200):
        return self.render("admin/dues/record.html", form=form, has_tiers=len(form.tier_id.choices) > 1), status

    @staticmethod
    def _form(blank: bool = False) -> PaymentForm:
        form = PaymentForm(formdata=None) if blank else PaymentForm()
        form.tier_id.choices = [("", "Choose…")] + [
            (str(t.id), f"{t.name}: {dues.format_money(t.price_minor, t.currency)}"
                        f"{'' if t.duration_months is None else f' for {t.duration_months} months'}"
                        f"{' (lifetime)' if t.duration_months is None else ''}") for t in active_tiers()]
        return form

    @expose("/", methods=("GET", "POST"))
    def index(self):
        if request.method != "POST":
            form = self._form(blank=True)
            # ?membership_number= (the member page's "Record a payment"): only a prefill, checked on POST.
            form.membership_number.data = request.args.get("membership_number", "").strip()[:32]
            return self._render(form)
        actor = current_actor()
        form = self._form()
        number = (form.membership_number.data or "").strip()
        data: dict[str, Any] = {"tier_id": form.tier_id.data, "method": form.method.data,
                                "reference": form.reference.data}
        raw_amount = (form.amount.data or "").strip()
        amount_error = None
        if raw_amount:
            try:
                data["amount_minor"] = parse_price(raw_amount)
            except ValueError:
                amount_error = AMOUNT_BAD
        member = dues.payer(actor, number=number, permission=dues.CREATE)
        if member is None:
            # No member to record for: the service cannot be asked, so the form says what it can read itself.
            form.membership_number.errors = ["Give the member's membership number."] if not number else [NO_MEMBER]
            if form.tier_id.data not in {value for value, _ in form.tier_id.choices if value}:
                form.tier_id.errors = ["Choose a membership tier."]
            if form.method.data not in MANUAL_METHODS:
                form.method.errors = ["Choose how it was paid."]
            if amount_error:
                form.amount.errors = [amount_error]
            return self._render(form, 422)
        if amount_error:
            data["amount_minor"] = raw_amount  # the service refuses it, with every other field's message
        with committing(form, rename={"amount_minor": "amount"}, show="form") as outcome:
            payment = dues.record_manual(actor, member, data)
        if not outcome.ok:
            if amount_error:
                form.amount.errors = [amount_error]
            return self._render(form, outcome.status)
        money = dues.format_money(payment.amount_minor, payment.currency)
        if payment.fulfilled_at is not None:
            flash(f"{money} recorded for {member.full_name} ({member.membership_number}): receipt "
                  f"{payment.receipt_number}; the membership is now {until_text(payment.extended_to)}.", "success")
        else:
            flash(f"{money} recorded for {member.full_name} ({member.membership_number}), but held for staff: "
                  f"{payment.hold_reason}", "warning")
        return redirect(url_for("dues_payments.index"))


# --- the member's page ---------------------------------------------------------------------


def member_payments_panel(member: Member) -> dict[str, Any]:
    """What the member's console page shows about their dues: the latest payments the user may read.

    Shown only to users with ``payments.read`` over the member; the payments
    listed are further those the user may read (a payment lives where it was
    paid, so one made before the member moved in may be out of sight).
    """
    if not permits(current_user, dues.READ, member):
        return {"visible": False}
    where = [Payment.member_id == member.id]
    stmt = scoped(select(Payment).where(*where), current_user, dues.READ, Payment)
    rows = list(db.session.scalars(stmt.options(selectinload(Payment.tier))
                                   .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(PANEL_SIZE)))
    total = len(rows) if len(rows) < PANEL_SIZE else db.session.scalar(
        scoped(select(func.count(Payment.id)).where(*where), current_user, dues.READ, Payment)) or 0
    return {
        "visible": True, "rows": rows, "total": total, "money": dues.format_money,
        "status_labels": dues.STATUS_LABELS, "method_labels": dues.METHOD_LABELS, "badges": STATUS_BADGES,
        "can_record": permits(current_user, dues.CREATE, member) and not member.is_deleted,
    }


def register(admin: Any) -> None:
    admin.add_view(PaymentsView(name="Payments", endpoint="dues_payments", url="/admin/dues/payments",
                                category="Dues"))
    admin.add_view(RecordPaymentView(name="Record a payment", endpoint="dues_record", url="/admin/dues/record",
                                     category="Dues"))
    dues_tiers.register(admin)
    dues_reconcile.register(admin)
    dues_report.register(admin)  # Dues > Report: per unit and month, with a chart
    admin.app.jinja_env.globals["member_payments_panel"] = member_payments_panel

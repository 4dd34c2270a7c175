"""``/dues``: "Pay dues / renew": the tiers on offer, paying online through Stripe, and the member's payments.

- ``/dues``: the tiers (price, duration, card), a "Pay online" button for
  each when Stripe is configured (``STRIPE_SECRET_KEY``; without it the page
  says to pay a treasurer of the ward) and the renewal window is open
  (``renewal.renewal_state``: else the page says until when the membership
  runs and from when it can be renewed), and the member's payments with
  their receipt numbers and what each extended.
- ``/dues/pay`` (POST, a tier): a pending payment and its Checkout Session;
  the member is sent to Stripe's page.
- ``/dues/done?session_id=``: where Stripe sends the member back. The
  redirect proves nothing: the session is read again from Stripe and the
  payment completed only if Stripe says it is paid (else the page says it is
  waiting for Stripe's confirmation, which the webhook brings).
- ``/dues/<id>/receipt``: the PDF receipt of one of the member's payments.

Success and cancel links are built on MUSTER_PUBLIC_URL, never the Host
header. POST views commit once.
"""

from __future__ import annotations

from flask import Response, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select

from app.database import write_aside
from app.extensions import db
from app.headers import policy_allowing_form_targets
from app.models import MembershipTier, Payment
from app.portal.blueprint import actor, bp
from app.services import dues, self_service
from app.services.dues import online, receipts, renewal, stripe_gateway, tiers
from app.services.errors import ServiceError


def paying_page(body: str, status: int = 200) -> Response:
    """A page holding "Pay online" forms: its policy lets those forms' redirect reach Stripe's Checkout page."""
    response = make_response(body, status)
    if stripe_gateway.enabled():
        response.headers["Content-Security-Policy"] = policy_allowing_form_targets(stripe_gateway.checkout_origins())
    return response


def _render(status: int = 200):
    member = self_service.own_member(actor())
    return paying_page(render_template(
        "portal/dues.html", member=member, tiers=tiers.active_tiers(), payments=dues.payments_of(member),
        online=stripe_gateway.enabled(), form=FlaskForm(), renewal=renewal.renewal_state(member),
        money=dues.format_money, methods=dues.METHOD_LABELS, statuses=dues.STATUS_LABELS), status)


@bp.route("/dues")
@login_required
def dues_page():
    return _render()


@bp.route("/dues/pay", methods=["POST"])
@login_required
def dues_pay():
    member = self_service.own_member(actor())
    tier = db.session.get(MembershipTier, request.form.get("tier_id", type=int) or 0)
    if tier is None:
        abort(404)
    try:
        _payment, url = online.start_checkout(member, tier)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "warning")
        return redirect(url_for("portal.dues_page"))
    return redirect(url, code=303)


@bp.route("/dues/done")
@login_required
def dues_done():
    member = self_service.own_member(actor())
    session_id = (request.args.get("session_id") or "").strip()[:255]
    mine = select(Payment.id).where(Payment.stripe_session_id == session_id, Payment.member_id == member.id)
    payment_id = db.session.scalar(mine) if session_id else None
    if payment_id is None:
        abort(404)  # not a session of this member's: nothing to say about it
    try:
        with write_aside():  # a reading request that may complete the payment: its own short commit
            online.follow_session(session_id)
    except ServiceError as exc:  # Stripe unreachable: the webhook will bring the news
        current_app.logger.warning("dues: could not re-read checkout session %s: %s", session_id, exc.message)
    return render_template("portal/dues_done.html", payment=db.session.get(Payment, payment_id),
                           money=dues.format_money)


@bp.route("/dues/<int:payment_id>/receipt")
@login_required
def dues_receipt(payment_id: int):
    """The PDF receipt of one of the member's own payments (another member's id: 404)."""
    member = self_service.own_member(actor())
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.member_id != member.id:
        abort(404)
    try:
        body = receipts.render_receipt_pdf(payment)
    except ServiceError as exc:
        flash(exc.message, "warning")
        return redirect(url_for("portal.dues_page"))
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{receipts.receipt_filename(payment)}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response

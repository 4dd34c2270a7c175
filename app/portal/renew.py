"""``/renew/<token>``: a renewal reminder's "Renew now", paying without signing in.

The token (``renewal.renew_link_token``, made when the reminder is mailed)
is the proof: it names no one, cannot be forged, and stops working when it
expires or a newer reminder's link replaces it. A visit does not spend it,
so a member who turns back at Stripe's page can follow it again. The pages
show only what the member needs to pay: their first name, their
membership's valid-until, the tiers.

- ``GET /renew/<token>``: the tiers with a "Renew online" button each, or
  why not (already renewed, window not open yet, online payment off, a
  membership staff must look at first).
- ``POST /renew/<token>`` (CSRF): the pending payment and its Checkout
  Session, as the signed-in "Pay online" does (``online.start_checkout``);
  Stripe sends the member back to the page below.
- ``GET /renew/<token>/done?session_id=``: re-reads the session from Stripe
  (the redirect proves nothing) and shows the result; a session of another
  member is 404.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select

from app.database import write_aside
from app.extensions import db
from app.models import MembershipTier, Payment
from app.portal.blueprint import bp
from app.portal.dues import paying_page
from app.services import dues
from app.services.dues import online, renewal, stripe_gateway, tiers
from app.services.errors import ServiceError
from app.services.links import LinkError
from app.services.mail import link_to


def _member(token: str):
    return renewal.member_for_link(token)[1]


def _problem(exc: LinkError):
    return render_template("portal/renew.html", problem=exc.message, member=None), exc.status


@bp.route("/renew/<token>", methods=["GET", "POST"])
def renew(token: str):
    try:
        member = _member(token)
    except LinkError as exc:
        return _problem(exc)
    form = FlaskForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        tier = db.session.get(MembershipTier, request.form.get("tier_id", type=int) or 0)
        if tier is None:
            abort(404)
        done = link_to("portal.renew_done", token=token) + "?session_id={CHECKOUT_SESSION_ID}"
        try:
            _payment, url = online.start_checkout(member, tier, success_url=done,
                                                  cancel_url=link_to("portal.renew", token=token))
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            flash(exc.message, "warning")
            return redirect(url_for("portal.renew", token=token))
        return redirect(url, code=303)
    return paying_page(render_template("portal/renew.html", member=member, state=renewal.renewal_state(member),
                                       tiers=tiers.active_tiers(), online=stripe_gateway.enabled(), form=form,
                                       money=dues.format_money, token=token))


@bp.route("/renew/<token>/done")
def renew_done(token: str):
    try:
        member = _member(token)
    except LinkError as exc:
        return _problem(exc)
    session_id = (request.args.get("session_id") or "").strip()[:255]
    mine = select(Payment.id).where(Payment.stripe_session_id == session_id, Payment.member_id == member.id)
    payment_id = db.session.scalar(mine) if session_id else None
    if payment_id is None:
        abort(404)
    try:
        with write_aside():  # a reading request that may complete the payment: its own short commit
            online.follow_session(session_id)
    except ServiceError as exc:  # Stripe unreachable: the webhook will bring the news
        current_app.logger.warning("dues: could not re-read checkout session %s: %s", session_id, exc.message)
    return render_template("portal/dues_done.html", payment=db.session.get(Payment, payment_id),
                           money=dues.format_money, back=url_for("portal.renew", token=token))

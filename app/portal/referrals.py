"""``/referrals``: "Refer a friend": my code, join link and its QR, share buttons, invitations, points and ranks.

- ``/referrals``: the member's code and join link (on ``MUSTER_PUBLIC_URL``),
  the link's QR code, share buttons (WhatsApp, SMS, email: plain links that
  open the member's own app with the message filled in; "Copy link" through
  app/static/js/portal.js), their points and rank in their ward and the unit
  above it, the form to record someone they invited, and their referrals with
  what became of each (paged).
- ``/referrals/qr.png`` and ``/referrals/qr.svg``: the join link's QR code
  (the SVG for print); ``/referrals/print``: a page to print and pin up.
- ``/referrals/<id>/withdraw`` (POST): take back an invitation still pending.

The QR code and the link carry the code only: nothing about the member.
Rules are in ``app.services.referrals`` (``.mine`` for the member's own view);
POST views commit once.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, abort, current_app, flash, redirect, render_template, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, TelField

from app.extensions import db
from app.models import Referral
from app.portal.blueprint import PER_PAGE, actor, bp, page_arg, pages
from app.services import referrals as referral_service
from app.services.errors import NotFound, ServiceError, ValidationErrors
from app.services.referrals import mine, staff


class InviteForm(FlaskForm):
    name = StringField("Their name")
    phone = TelField("Phone number")
    email = EmailField("Email address")


def _share_links(summary: mine.Summary, org_name: str) -> dict[str, str]:
    """Links that open the member's own WhatsApp, SMS or mail app with the invitation written."""
    message = f"Join me in {org_name}: {summary.link}"
    return {
        "whatsapp": f"https://wa.me/?text={quote(message)}",
        "sms": f"sms:?&body={quote(message)}",
        "email": f"mailto:?subject={quote('Join ' + org_name)}&body={quote(message)}",
    }


def _render(form: InviteForm, status: int = 200):
    summary = mine.summary(actor())
    page = page_arg()
    rows, total = mine.referrals_page(actor(), offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    share = _share_links(summary, current_app.config["ORG_NAME"]) if summary.can_refer else {}
    return render_template("portal/referrals.html", summary=summary, form=form, rows=rows, paging=pages(total, page),
                           share=share, labels=referral_service.STATUS_LABELS,
                           sources=referral_service.SOURCE_LABELS), status


@bp.route("/referrals", methods=["GET", "POST"])
@login_required
def referrals():
    form = InviteForm()
    if not form.is_submitted():
        return _render(form)
    try:
        referral = mine.invite(actor(), form.name.data, form.phone.data, form.email.data)
        db.session.commit()
    except ValidationErrors as exc:
        db.session.rollback()
        for name, message in exc.errors.items():
            form[name].errors = [message] if name in form else []
        return _render(form, 422)
    except ServiceError as exc:
        db.session.rollback()
        target = form[exc.field] if exc.field in form else None
        if target is not None:
            target.errors = [exc.message]
        else:
            form.form_errors.append(exc.message)
        return _render(form, exc.status if 400 <= exc.status < 500 else 422)
    sent = " We have emailed them your join link." if referral.prospect_email else ""
    flash(f"{referral.prospect_name} is on your list.{sent}", "success")
    return redirect(url_for("portal.referrals"))


@bp.route("/referrals/<int:referral_id>/withdraw", methods=["POST"])
@login_required
def referral_withdraw(referral_id: int):
    member = mine.me(actor())
    referral = db.session.get(Referral, referral_id)
    if referral is None or referral.referrer_id != member.id:
        abort(404)
    try:
        staff.withdraw(actor(), referral, None)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "warning")
        return redirect(url_for("portal.referrals"))
    flash(f"The invitation of {referral.prospect_name} is withdrawn.", "success")
    return redirect(url_for("portal.referrals"))


def _qr(fmt: str, mimetype: str) -> Response:
    try:
        body = mine.link_qr(actor(), fmt)
    except NotFound:
        abort(404)  # an image has nowhere to show a message: /referrals says why there is no link
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/referrals/qr.png")
@login_required
def referral_qr_png():
    return _qr("png", "image/png")


@bp.route("/referrals/qr.svg")
@login_required
def referral_qr_svg():
    response = _qr("svg", "image/svg+xml")
    response.headers["Content-Disposition"] = 'attachment; filename="join-link-qr.svg"'
    return response


@bp.route("/referrals/print")
@login_required
def referral_print():
    summary = mine.summary(actor())
    if not summary.can_refer:
        return redirect(url_for("portal.referrals"))
    return render_template("portal/referrals_print.html", summary=summary)

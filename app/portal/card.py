"""``/card``: the member's card on screen, its QR code as an image, and its PDF.

The QR code (``/card/qr.png``) holds the same signed credential as the
printed card (``card_pdf.qr_png``: the card's verification URL), drawn large
enough to scan from a phone held up at the door; the PDF (``/card/pdf``) is
the console's single-card renderer. Both are given only for a card valid
today, and never cached. The page explains a missing, expired, suspended or
revoked card instead.
"""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, url_for
from flask_login import login_required

from app.portal.blueprint import actor, bp
from app.services import card_pdf, self_service
from app.services.errors import ServiceError

# Pixels a module: a 57-module code (with its margin) is 570 px, shown at most 20rem wide (sharp on phones).
QR_BOX = 10


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/card")
@login_required
def card():
    member = self_service.own_member(actor())
    return render_template("portal/card.html", state=self_service.card_state(actor()), member=member)


@bp.route("/card/qr.png")
@login_required
def card_qr():
    try:
        card = self_service.card_for_display(actor())
    except ServiceError:
        abort(404)  # an image has nowhere to show a message: /card says why there is no code
    return _private(Response(card_pdf.qr_png(card, box_size=QR_BOX), mimetype="image/png"))


@bp.route("/card/pdf")
@login_required
def card_pdf_file():
    try:
        card = self_service.card_for_display(actor())
    except ServiceError as exc:
        flash(exc.message, "warning")
        return redirect(url_for("portal.card"))
    response = Response(card_pdf.render_card_pdf(card), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="card-{card.card_number}.pdf"'
    return _private(response)

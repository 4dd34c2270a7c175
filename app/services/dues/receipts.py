"""The PDF receipt of a fulfilled payment (issue 14): one A4 page, names in any script.

A receipt exists once ``fulfil`` has allocated the payment's receipt number
(R-YYYY-NNNNNN, sequential per year); before that (pending, failed,
cancelled, or held for staff) there is nothing to download, and
``check_receipt`` says why with a 409. A refunded payment keeps its receipt:
the member paid and was given a number, so the document stays available,
stamped "REFUNDED on <date>" so it cannot pass as proof of a current payment.

The text is drawn exactly as the cards draw it (``app.services.card_pdf``:
the embedded DejaVu faces, bidi runs, HarfBuzz shaping, fitting and
wrapping), so an Arabic or Cyrillic name reads back from the receipt as it
was typed, and long names shrink or wrap instead of running off the page.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app
from reportlab.lib.colors import HexColor
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from app.extensions import db
from app.models import Payment, Unit
from app.services.card_pdf.card import GREY, INK, LIGHT, new_canvas
from app.services.card_pdf.text import FONT, FONT_BOLD, draw_fitted, draw_line, fit_text, make_line, wrap
from app.services.dues import METHOD_LABELS, STATUS_LABELS, format_money
from app.services.errors import ServiceError

PAGE_W, PAGE_H = A4
MARGIN = 20 * mm
WIDTH = PAGE_W - 2 * MARGIN
RED = HexColor("#b42318")


def check_receipt(payment: Payment) -> None:
    """Refuse (409) a payment that has no receipt: only ``fulfil`` allocates the number.

    Both the member's download and the staff's go through here, so they
    answer the same thing; a held payment's message carries the hold reason,
    which is what staff need to act on.
    """
    if payment.receipt_number and payment.fulfilled_at is not None:
        return
    if payment.hold_reason:
        why = f"it is held for staff: {payment.hold_reason}"
    else:
        why = f"it is {STATUS_LABELS.get(payment.status, payment.status).lower()}"
        if payment.status == "completed":
            why += " but not yet fulfilled"
    raise ServiceError(f"This payment has no receipt yet: {why}.", status=409)


def receipt_filename(payment: Payment) -> str:
    """``receipt-R-2026-000001.pdf``: the receipt number is unique, so is the file name."""
    check_receipt(payment)
    return f"receipt-{payment.receipt_number}.pdf"


def _local_date(at: datetime | None) -> str:
    """A stored UTC moment as a date where the organisation is (MUSTER_TIMEZONE), e.g. 10 May 2027."""
    if at is None:
        return ""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    local = at.astimezone(ZoneInfo(current_app.config.get("TIMEZONE") or "UTC")).date()
    return f"{local.day} {local:%B %Y}"


def _rows(payment: Payment) -> list[tuple[str, list[str]]]:
    """What the receipt says, label by label; each value is one or more lines."""
    member, tier = payment.member, payment.tier
    # The unit the payment was made in (kept on the payment), as the dues report counts it.
    unit = db.session.get(Unit, payment.unit_id)
    if payment.extended_to is not None:
        period = f"valid until {payment.extended_to.day} {payment.extended_to:%B %Y}"
    else:
        period = "for life"
    method = [METHOD_LABELS.get(payment.method, payment.method)]
    if payment.reference:
        method.append(f"Reference: {payment.reference}")
    if payment.method == "stripe":
        recorder = "Paid online"
    else:
        recorder = payment.recorded_by.email if payment.recorded_by is not None else "—"
    return [
        ("Date paid", [_local_date(payment.completed_at or payment.fulfilled_at)]),
        ("Received from", [member.full_name, f"Membership no. {member.membership_number}",
                           unit.name if unit is not None else ""]),
        ("For", [tier.name, period]),
        ("Amount", [format_money(payment.amount_minor, payment.currency)]),
        ("Method", method),
        ("Recorded by", [recorder]),
    ]


def _draw(c: Canvas, payment: Payment) -> None:
    org, url = current_app.config["ORG_NAME"], current_app.config["PUBLIC_URL"]
    color = HexColor(current_app.config.get("CARD_COLOR") or "#1d4f91")
    c.setFillColor(color)
    c.rect(0, PAGE_H - 8 * mm, PAGE_W, 8 * mm, stroke=0, fill=1)
    c.setFillColor(INK)
    y = draw_fitted(c, org, FONT_BOLD, MARGIN, PAGE_H - 22 * mm, WIDTH, 18, 10, max_lines=2)
    c.setFillColor(color)
    y = draw_fitted(c, "Receipt", FONT_BOLD, MARGIN, y - 6 * mm, WIDTH, 28, 28, max_lines=1)
    c.setFillColor(GREY)
    draw_line(c, make_line("RECEIPT NUMBER", FONT, 8), MARGIN, y - 6 * mm)
    c.setFillColor(INK)
    draw_line(c, make_line(payment.receipt_number, FONT_BOLD, 14), MARGIN, y - 12 * mm)
    y -= 20 * mm
    if payment.status == "refunded":
        stamp = fit_text(f"REFUNDED on {_local_date(payment.refunded_at)}", FONT_BOLD, WIDTH, 20, 10, 1)[0]
        c.setStrokeColor(RED)
        c.setLineWidth(1.5)
        c.rect(MARGIN, y - stamp.size * 1.5, stamp.width + 8 * mm, stamp.size * 1.9, stroke=1, fill=0)
        c.setFillColor(RED)
        draw_line(c, stamp, MARGIN + 4 * mm, y - stamp.size * 1.05)
        y -= stamp.size * 1.9 + 8 * mm
    c.setStrokeColor(LIGHT)
    c.setLineWidth(0.6)
    # Each label sits on its own line above its values: text on one baseline is extracted (and read
    # aloud by screen readers) as one line, and a right-to-left name would be reordered with its label.
    for label, values in _rows(payment):
        c.line(MARGIN, y, MARGIN + WIDTH, y)
        y -= 5.5 * mm
        c.setFillColor(GREY)
        draw_line(c, make_line(label.upper(), FONT, 8), MARGIN, y)
        y -= 6 * mm
        c.setFillColor(INK)
        for i, value in enumerate(v for v in values if v):
            for line in fit_text(value, FONT_BOLD if i == 0 else FONT, WIDTH, 12 if i == 0 else 10, 7, 2):
                draw_line(c, line, MARGIN, y)
                y -= line.size * 1.4
        y -= 1.5 * mm
    c.line(MARGIN, y, MARGIN + WIDTH, y)
    c.setFillColor(GREY)
    y = 30 * mm
    note = f"Issued by {org}. Keep this receipt as proof of payment; its number identifies it."
    for line in wrap(note, FONT, 9, WIDTH):
        draw_line(c, line, MARGIN, y)
        y -= 9 * 1.3
    c.setFillColor(color)
    draw_fitted(c, url, FONT_BOLD, MARGIN, y - 1 * mm, WIDTH, 10, 6, max_lines=1)


def render_receipt_pdf(payment: Payment) -> bytes:
    """The receipt as a one-page A4 PDF (409 if the payment has none yet)."""
    check_receipt(payment)
    out = io.BytesIO()
    c = new_canvas(out, A4)
    c.setTitle(f"Receipt {payment.receipt_number}")
    _draw(c, payment)
    c.showPage()
    c.save()
    return out.getvalue()

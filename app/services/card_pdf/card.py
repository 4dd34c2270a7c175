"""One card: the ID-1 layout (85.6 x 53.98 mm), its front and back, and the single-card PDF.

The front is drawn in two parts so print sheets can draw the first once per
file as a form XObject: ``draw_front_static`` (band, logo or initials,
organisation name, field labels) and ``draw_front_variable`` (photo, name,
numbers, ward, QR code, dates). The back is the same on every card.
"""

from __future__ import annotations

import io
from typing import Callable

from reportlab.lib.colors import HexColor, white
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from app.models import MembershipCard
from app.services.card_pdf.content import PHOTO_H, PHOTO_W, CardFace, Design, faces, initials, photo_reader
from app.services.card_pdf.qr import draw_qr, qr_matrix
from app.services.card_pdf.text import (FONT, FONT_BOLD, draw_fitted, draw_line, fit_text, make_line,
                                        register_fonts, wrap)

CARD_W = 85.6 * mm
CARD_H = 53.98 * mm

INK = HexColor("#1f2328")
GREY = HexColor("#5b636b")
LIGHT = HexColor("#e9edf1")

M = mm
BAND_H = 11 * M
PAD = 3 * M
BODY_TOP = CARD_H - BAND_H - 2.6 * M  # top of the photo, the name and the QR code
PHOTO_X, PHOTO_Y = PAD, BODY_TOP - PHOTO_H
QR_SIZE = 21 * M
QR_X, QR_Y = CARD_W - PAD - QR_SIZE + 0.8 * M, BODY_TOP - QR_SIZE
INFO_X = PHOTO_X + PHOTO_W + 2.5 * M
INFO_W = QR_X - INFO_X - 1.2 * M
# (label baseline, value baseline) of membership number, ward and card type: the last
# value sits on the photo's bottom edge; the name has the space above.
FIELD_ROWS = tuple((PHOTO_Y + k * 5.6 * M + 2.7 * M, PHOTO_Y + k * 5.6 * M + 0.3 * M) for k in (2, 1, 0))
TYPE_LABELS = {"standard": "Standard", "premium": "Premium", "lifetime": "Lifetime"}


def new_canvas(target, pagesize) -> Canvas:
    """A compressed reportlab canvas with the embedded fonts and Muster as producer."""
    register_fonts()
    c = Canvas(target, pagesize=pagesize, pageCompression=1, initialFontName=FONT)
    c.setAuthor("Muster")
    c.setCreator("Muster")
    c.setProducer("Muster (ReportLab)")
    return c


def _label(c: Canvas, text: str, x: float, y: float, anchor: str = "start") -> None:
    c.setFillColor(GREY)
    draw_line(c, make_line(text.upper(), FONT, 4.6), x, y, anchor)


def draw_front_static(c: Canvas, design: Design) -> None:
    """The parts of the front that are the same on every card."""
    c.setFillColor(white)
    c.rect(0, 0, CARD_W, CARD_H, stroke=0, fill=1)
    c.setFillColor(design.color)
    c.rect(0, CARD_H - BAND_H, CARD_W, BAND_H, stroke=0, fill=1)
    c.rect(0, 0, CARD_W, 1.2 * M, stroke=0, fill=1)
    # Logo, or the organisation's initials in a circle.
    logo_d = 8 * M
    lx, ly = PAD, CARD_H - BAND_H + (BAND_H - logo_d) / 2
    if design.logo is not None:
        c.drawImage(design.logo, lx, ly, logo_d, logo_d, mask="auto", preserveAspectRatio=True, anchor="c")
    else:
        c.setFillColor(white)
        c.circle(lx + logo_d / 2, ly + logo_d / 2, logo_d / 2, stroke=0, fill=1)
        c.setFillColor(design.color)
        mark = fit_text(initials(design.org_name), FONT_BOLD, logo_d * 0.8, 8, 4, 1)[0]
        draw_line(c, mark, lx + logo_d / 2, ly + logo_d / 2 - mark.size * 0.36, "middle")
    name_x = lx + logo_d + 2.2 * M
    lines = fit_text(design.org_name, FONT_BOLD, CARD_W - name_x - PAD, 10, 6.5, 2)
    c.setFillColor(white)
    block = sum(line.size for line in lines) * 1.1
    y = CARD_H - BAND_H / 2 + block / 2
    for line in lines:
        y -= line.size * 0.9
        draw_line(c, line, name_x, y)
        y -= line.size * 0.2
    c.setFillColor(GREY)
    draw_line(c, make_line("MEMBERSHIP CARD", FONT_BOLD, 4.6), QR_X + QR_SIZE / 2, QR_Y - 2.6 * M, "middle")
    # Labels of the variable fields.
    for label, (label_y, _value_y) in zip(("Member no.", "Ward", "Card type"), FIELD_ROWS):
        _label(c, label, INFO_X, label_y)
    _label(c, "Card no.", PAD, 10.6 * M)
    _label(c, "Issued", 40 * M, 10.6 * M)
    _label(c, "Expires", CARD_W - PAD, 10.6 * M, "end")
    c.setStrokeColor(LIGHT)
    c.setLineWidth(0.4)
    c.line(PAD, 12.6 * M, CARD_W - PAD, 12.6 * M)


def draw_photo_placeholder(c: Canvas) -> None:
    """A grey silhouette where a member without a photo would have one."""
    c.setFillColor(LIGHT)
    c.rect(PHOTO_X, PHOTO_Y, PHOTO_W, PHOTO_H, stroke=0, fill=1)
    c.setFillColor(HexColor("#b8c0c8"))
    cx = PHOTO_X + PHOTO_W / 2
    c.circle(cx, PHOTO_Y + PHOTO_H * 0.55, PHOTO_W * 0.19, stroke=0, fill=1)
    path = c.beginPath()
    path.moveTo(PHOTO_X + PHOTO_W * 0.14, PHOTO_Y)
    path.curveTo(PHOTO_X + PHOTO_W * 0.14, PHOTO_Y + PHOTO_H * 0.33, PHOTO_X + PHOTO_W * 0.86,
                 PHOTO_Y + PHOTO_H * 0.33, PHOTO_X + PHOTO_W * 0.86, PHOTO_Y)
    path.close()
    c.drawPath(path, stroke=0, fill=1)
    c.setFillColor(white)
    draw_line(c, make_line("No photo", FONT_BOLD, 4.6), cx, PHOTO_Y + 1.6 * M, "middle")


def draw_front_variable(c: Canvas, face: CardFace, photo: ImageReader | None,
                        placeholder: Callable[[Canvas], None] = draw_photo_placeholder) -> None:
    """The parts of the front that differ from card to card."""
    if photo is not None:
        c.drawImage(photo, PHOTO_X, PHOTO_Y, PHOTO_W, PHOTO_H)
    else:
        placeholder(c)
    c.setFillColor(INK)
    draw_fitted(c, face.name, FONT_BOLD, INFO_X, BODY_TOP + 0.4 * M, INFO_W, 9, 6.5, max_lines=2)
    c.setFillColor(INK)
    values = ((face.membership_number, FONT_BOLD), (face.unit_name, FONT),
              (TYPE_LABELS.get(face.card_type, face.card_type), FONT))
    for (text, font), (_label_y, y) in zip(values, FIELD_ROWS):
        draw_line(c, fit_text(text, font, INFO_W, 7, 4.5, 1)[0], INFO_X, y)
    draw_qr(c, qr_matrix(face.qr_data), QR_X, QR_Y, QR_SIZE, INK)
    c.setFillColor(INK)
    draw_line(c, make_line(face.card_number, FONT_BOLD, 8.5), PAD, 6.4 * M)
    draw_line(c, make_line(face.issued_on.isoformat(), FONT, 7), 40 * M, 6.4 * M)
    expires = face.expires_on.isoformat() if face.expires_on else "Never (lifetime)"
    draw_line(c, make_line(expires, FONT_BOLD, 7), CARD_W - PAD, 6.4 * M, "end")


def draw_back(c: Canvas, design: Design) -> None:
    """The back: how to check the card, and where."""
    c.setFillColor(white)
    c.rect(0, 0, CARD_W, CARD_H, stroke=0, fill=1)
    c.setFillColor(design.color)
    c.rect(0, CARD_H - 4 * M, CARD_W, 4 * M, stroke=0, fill=1)
    c.rect(0, 0, CARD_W, 1.2 * M, stroke=0, fill=1)
    width = CARD_W - 2 * PAD
    c.setFillColor(INK)
    y = draw_fitted(c, "How to check this card", FONT_BOLD, PAD, CARD_H - 6.5 * M, width, 8.5, 6, max_lines=1)
    steps = [
        "1. Scan the QR code on the front with a phone camera.",
        "2. The page that opens shows if the card is valid, expired, suspended or revoked, "
        "with the holder's first name and photo.",
        "3. Compare the photo and name with the person showing the card.",
    ]
    c.setFillColor(INK)
    y -= 1.2 * M
    for step in steps:
        for line in wrap(step, FONT, 6.4, width):
            y -= 6.4 * 0.85
            draw_line(c, line, PAD, y)
            y -= 6.4 * 0.35
        y -= 0.8 * M
    c.setFillColor(LIGHT)
    c.roundRect(PAD - 1 * M, 11.4 * M, width + 2 * M, 8.4 * M, 1.2 * M, stroke=0, fill=1)
    _label(c, "Verification page", PAD, 17.2 * M)
    c.setFillColor(design.color)
    draw_fitted(c, design.verify_url, FONT_BOLD, PAD, 16.2 * M, width, 8, 4.5, max_lines=1)
    c.setFillColor(GREY)
    notice = (f"This card remains the property of {design.org_name}. "
              "If found, please return it to any of its offices.")
    y = 7.6 * M
    for line in wrap(notice, FONT, 5.2, width)[:2]:
        draw_line(c, line, PAD, y)
        y -= 5.2 * 1.2


def render_card_pdf(card: MembershipCard, base_url: str | None = None) -> bytes:
    """One card as a PDF the size of the card: page 1 the front, page 2 the back."""
    face = next(faces([card], base_url))
    design = Design.current(base_url)
    out = io.BytesIO()
    c = new_canvas(out, (CARD_W, CARD_H))
    c.setTitle(f"Membership card {card.card_number}")
    draw_front_static(c, design)
    draw_front_variable(c, face, photo_reader(face.photo))
    c.showPage()
    draw_back(c, design)
    c.showPage()
    c.save()
    return out.getvalue()

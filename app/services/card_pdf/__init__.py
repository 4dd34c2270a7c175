"""Membership cards on paper: one card as a PDF, print sheets, and the QR code as PNG or SVG.

- ``render_card_pdf(card)``: an ID-1 (CR80, 85.6 x 53.98 mm) PDF, front and back.
- ``render_print_sheet(cards, out)``: A4 sheets of 10 cards with crop marks;
  every sheet of fronts is followed by a sheet of backs with the columns
  mirrored, so long-edge duplex printing puts each back behind its front.
- ``qr_png(card)`` / ``qr_svg(card)``: the card's QR code alone.

The package, by concern (docs/cards.md, "Paper"):

- ``text``: embedded fonts, bidi runs, HarfBuzz shaping, fitting and wrapping;
- ``qr``: the code's modules (zxing-cpp), drawn into a PDF, or as PNG / SVG;
- ``content``: what is printed (``CardFace``, ``Design``, ``faces``), photos, logo;
- ``card``: the card's layout, its front and back, the single-card PDF;
- ``sheets``: A4 sheets, crop marks, drawing chunk by chunk;
- ``stitch``: the chunks written out as one PDF as they come (pypdf reads and writes the objects).
"""

from app.services.card_pdf.card import (BAND_H, BODY_TOP, CARD_H, CARD_W, FIELD_ROWS, GREY, INFO_W, INFO_X, INK,
                                        LIGHT, M, PAD, PHOTO_X, PHOTO_Y, QR_SIZE, QR_X, QR_Y, draw_back,
                                        render_card_pdf)
from app.services.card_pdf.content import PHOTO_H, PHOTO_W, CardFace, Design, faces
from app.services.card_pdf.qr import qr_matrix, qr_png, qr_svg
from app.services.card_pdf.sheets import (A4_H, A4_W, CARDS_PER_SHEET, draw_crop_marks, render_print_sheet,
                                          slot_origin)
from app.services.card_pdf.text import (FONT, FONT_BOLD, FONT_DIR, Line, fit_text, make_line, register_fonts,
                                        visual_runs)

__all__ = [
    "A4_H", "A4_W", "BAND_H", "BODY_TOP", "CARDS_PER_SHEET", "CARD_H", "CARD_W", "FIELD_ROWS", "FONT", "FONT_BOLD",
    "FONT_DIR", "GREY", "INFO_W", "INFO_X", "INK", "LIGHT", "M", "PAD", "PHOTO_H", "PHOTO_W", "PHOTO_X", "PHOTO_Y",
    "QR_SIZE", "QR_X", "QR_Y", "CardFace", "Design", "Line", "draw_back", "draw_crop_marks", "faces", "fit_text",
    "make_line", "qr_matrix", "qr_png", "qr_svg", "register_fonts", "render_card_pdf", "render_print_sheet",
    "slot_origin", "visual_runs",
]

"""A4 print sheets: 10 cards (2 x 5) with crop marks, each sheet of fronts followed by its backs.

Backs have their columns mirrored, so long-edge duplex printing puts each
back behind its front. For any batch size: the parts of a card that are the
same for everyone are form XObjects drawn once per chunk, sheets are drawn
``SHEETS_PER_CHUNK`` at a time as small reportlab documents, and each chunk
is copied into the output as soon as it is drawn (``PdfStreamWriter``), with
a garbage collection after it, so memory stays flat.
"""

from __future__ import annotations

import gc
import io
import os
from typing import IO, Callable, Iterable

from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from app.models import MembershipCard
from app.services.card_pdf.card import (CARD_H, CARD_W, INK, draw_back, draw_front_static, draw_front_variable,
                                        draw_photo_placeholder, new_canvas)
from app.services.card_pdf.content import CardFace, Design, faces, photo_reader
from app.services.card_pdf.stitch import PdfStreamWriter

A4_W, A4_H = 210 * mm, 297 * mm
SHEET_COLS, SHEET_ROWS = 2, 5
COL_GAP = 10 * mm
ROW_GAP = 2 * mm
CARDS_PER_SHEET = SHEET_COLS * SHEET_ROWS
# Sheets per reportlab document before it is copied into the output.
SHEETS_PER_CHUNK = 20

MARGIN_X = (A4_W - SHEET_COLS * CARD_W - (SHEET_COLS - 1) * COL_GAP) / 2
MARGIN_Y = (A4_H - SHEET_ROWS * CARD_H - (SHEET_ROWS - 1) * ROW_GAP) / 2
MARK_OFFSET, MARK_LEN = 1.5 * mm, 4 * mm

Sheet = list[tuple[CardFace, ImageReader | None]]


def slot_origin(index: int, back: bool = False) -> tuple[float, float]:
    """Lower-left corner of card slot ``index`` (0-9, row by row from the top) on a sheet.

    On back sheets the columns are mirrored, so that after a long-edge flip
    each back lands behind its own front.
    """
    row, col = divmod(index, SHEET_COLS)
    if back:
        col = SHEET_COLS - 1 - col
    x = MARGIN_X + col * (CARD_W + COL_GAP)
    y = A4_H - MARGIN_Y - (row + 1) * CARD_H - row * ROW_GAP
    return x, y


def draw_crop_marks(c: Canvas) -> None:
    """Cut marks in the margins and the column gap, on the line of every card edge."""
    c.setStrokeColor(INK)
    c.setLineWidth(0.25)
    xs = sorted({x for i in range(SHEET_COLS) for x in (slot_origin(i)[0], slot_origin(i)[0] + CARD_W)})
    ys = sorted({y for r in range(SHEET_ROWS) for y in (slot_origin(r * SHEET_COLS)[1],
                                                        slot_origin(r * SHEET_COLS)[1] + CARD_H)})
    left, right = xs[0], xs[-1]
    bottom, top = ys[0], ys[-1]
    for y in ys:
        c.line(left - MARK_OFFSET - MARK_LEN, y, left - MARK_OFFSET, y)
        c.line(right + MARK_OFFSET, y, right + MARK_OFFSET + MARK_LEN, y)
        for i in range(1, len(xs) - 1, 2):  # in the gaps between columns
            c.line(xs[i] + MARK_OFFSET, y, xs[i] + MARK_OFFSET + MARK_LEN, y)
            c.line(xs[i + 1] - MARK_OFFSET - MARK_LEN, y, xs[i + 1] - MARK_OFFSET, y)
    for x in xs:
        c.line(x, bottom - MARK_OFFSET - MARK_LEN, x, bottom - MARK_OFFSET)
        c.line(x, top + MARK_OFFSET, x, top + MARK_OFFSET + MARK_LEN)


def _render_chunk(sheets: list[Sheet], design: Design) -> bytes:
    """A reportlab document of whole sheets: fronts, then mirrored backs, sheet after sheet."""
    out = io.BytesIO()
    c = new_canvas(out, (A4_W, A4_H))
    if not sheets:  # nothing to print is still a valid PDF: one blank page
        c.showPage()
        c.save()
        return out.getvalue()
    c.beginForm("front", 0, 0, CARD_W, CARD_H)
    draw_front_static(c, design)
    c.endForm()
    c.beginForm("back", 0, 0, CARD_W, CARD_H)
    draw_back(c, design)
    c.endForm()
    c.beginForm("nophoto", 0, 0, CARD_W, CARD_H)
    draw_photo_placeholder(c)
    c.endForm()
    c.beginForm("marks", 0, 0, A4_W, A4_H)
    draw_crop_marks(c)
    c.endForm()

    def placeholder(canvas: Canvas) -> None:
        canvas.doForm("nophoto")

    for sheet in sheets:
        c.doForm("marks")
        for i, (face, photo) in enumerate(sheet):
            x, y = slot_origin(i)
            c.saveState()
            c.translate(x, y)
            c.doForm("front")
            draw_front_variable(c, face, photo, placeholder)
            c.restoreState()
        c.showPage()
        c.doForm("marks")
        for i in range(len(sheet)):
            x, y = slot_origin(i, back=True)
            c.saveState()
            c.translate(x, y)
            c.doForm("back")
            c.restoreState()
        c.showPage()
    c.save()
    return out.getvalue()


def render_print_sheet(cards: Iterable[MembershipCard], out: str | os.PathLike | IO[bytes], *,
                       base_url: str | None = None,
                       progress: Callable[[int], None] | None = None) -> int:
    """Write A4 print sheets for ``cards`` (10 per sheet, each followed by its backs) to ``out``.

    ``out`` is a path or a binary file object. ``progress(n)`` is called
    with the number of cards done after every chunk. Returns the number of
    cards printed.
    """
    design = Design.current(base_url)
    own_file = isinstance(out, (str, os.PathLike))
    handle: IO[bytes] = open(out, "wb") if own_file else out  # type: ignore[arg-type]
    done = 0
    try:
        writer = PdfStreamWriter(handle)
        chunk: list[Sheet] = []
        sheet: Sheet = []
        for face in faces(cards, base_url):
            sheet.append((face, photo_reader(face.photo)))
            if len(sheet) == CARDS_PER_SHEET:
                chunk.append(sheet)
                sheet = []
                if len(chunk) == SHEETS_PER_CHUNK:
                    writer.add(_render_chunk(chunk, design))
                    done += sum(len(s) for s in chunk)
                    chunk = []
                    # A reportlab document is full of reference cycles; collect each chunk's now,
                    # or they pile up until Python's occasional full collection.
                    gc.collect()
                    if progress:
                        progress(done)
        if sheet:
            chunk.append(sheet)
        if chunk or not writer.pages:
            writer.add(_render_chunk(chunk, design))
            done += sum(len(s) for s in chunk)
            if progress:
                progress(done)
        writer.finish(title=f"Membership cards ({done})")
    finally:
        if own_file:
            handle.close()
    return done

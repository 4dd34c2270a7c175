"""Membership cards on paper: one card as a PDF, print sheets, and the QR code as PNG or SVG.

- ``render_card_pdf(card)``: an ID-1 (CR80, 85.6 x 53.98 mm) PDF, front and back.
- ``render_print_sheet(cards, out)``: A4 sheets of 10 cards with crop marks;
  every sheet of fronts is followed by a sheet of backs with the columns
  mirrored, so long-edge duplex printing puts each back behind its front.
- ``qr_png(card)`` / ``qr_svg(card)``: the card's QR code alone.

Text is set in the DejaVu Sans files shipped in ``app/static/fonts`` (Latin
with diacritics, Cyrillic, Greek, Arabic, Hebrew...). Right-to-left text is
split into directional runs (Unicode bidi algorithm, python-bidi) and each run
is shaped by HarfBuzz (uharfbuzz, through reportlab), so Arabic letters join.
Shaped glyphs are written in display order as presentation forms, which
PDF text extraction (pdfium, as in Chrome) turns back into the name as typed.
Names that are too long shrink, then wrap onto two lines, then shrink
further: they never run off the card.

Speed and memory for large batches (see bench/cards.py): the parts of a card
that are the same for everyone are drawn once per file as PDF form XObjects;
QR codes use a fixed mask pattern (choosing the "best" of eight is most of
the qrcode library's time and any mask is valid), and their codewords and
module placement are computed here from tables (same output as the library,
checked by the tests); photos are scaled down to what 300 dpi needs. Sheets are rendered in chunks, each a small reportlab
document, and the chunks are stitched into one PDF written straight to the
output (``_PdfStitcher``), so memory stays flat however many cards there are.
"""

from __future__ import annotations

import gc
import io
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

import qrcode
import qrcode.base
import qrcode.util
from flask import current_app
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.colors import HexColor, white
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont, shapeStr
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import select

from app.extensions import db
from app.models import Member, MemberPhoto, MembershipCard, Unit

try:  # the bidi algorithm's levels (python-bidi); without it RTL text is drawn unreordered
    from bidi import algorithm as _bidi
except ImportError:  # pragma: no cover
    _bidi = None

FONT_DIR = Path(__file__).resolve().parent.parent / "static" / "fonts"
FONT = "MusterSans"
FONT_BOLD = "MusterSans-Bold"

CARD_W = 85.6 * mm
CARD_H = 53.98 * mm
A4_W, A4_H = 210 * mm, 297 * mm
SHEET_COLS, SHEET_ROWS = 2, 5
COL_GAP = 10 * mm
ROW_GAP = 2 * mm
CARDS_PER_SHEET = SHEET_COLS * SHEET_ROWS
# Sheets per reportlab document before it is stitched into the output.
SHEETS_PER_CHUNK = 20

INK = HexColor("#1f2328")
GREY = HexColor("#5b636b")
LIGHT = HexColor("#e9edf1")
QR_MASK = 0  # any of the 8 masks is valid; choosing the "best" one was 80% of the encoding time

_font_lock = threading.Lock()
_fonts_ready = False


def register_fonts() -> None:
    """Register the embedded DejaVu Sans faces with reportlab (once per process)."""
    global _fonts_ready
    if _fonts_ready:
        return
    with _font_lock:
        if not _fonts_ready:
            for name, filename in ((FONT, "DejaVuSans.ttf"), (FONT_BOLD, "DejaVuSans-Bold.ttf")):
                font = TTFont(name, str(FONT_DIR / filename))
                _prefer_presentation_forms(font)
                pdfmetrics.registerFont(font)
            _fonts_ready = True


def _is_presentation_form(codepoint: int) -> bool:
    return 0xFB50 <= codepoint <= 0xFDFF or 0xFE70 <= codepoint <= 0xFEFF


def _prefer_presentation_forms(font: TTFont) -> None:
    """Name shaped Arabic glyphs by their presentation-form code points.

    A glyph reached from several code points (alef is both U+0627 and its
    isolated form U+FE8D) is written with the first one listed. Shaped words
    otherwise mix base letters (isolated forms) with presentation forms
    (joined ones), and text extraction (pdfium) then reorders each kind
    differently; all presentation forms read back as the word typed.
    """
    for chars in font.face.glyphToChar.values():
        if len(chars) > 1 and any(_is_presentation_form(ch) for ch in chars):
            chars.sort(key=lambda ch: not _is_presentation_form(ch))


# --- text: bidi, shaping, fitting --------------------------------------------------------

_RTL = frozenset({"R", "AL", "AN"})
_RTL_LETTERS = frozenset({"R", "AL"})


def is_complex(text: str) -> bool:
    """Does the text need bidi reordering and shaping (Arabic, Hebrew...)?"""
    return any(unicodedata.bidirectional(ch) in _RTL for ch in text)


def _levels(text: str) -> list[int]:
    storage = _bidi.get_empty_storage()
    base = _bidi.get_base_level(text)
    storage["base_level"], storage["base_dir"] = base, ("L", "R")[base]
    _bidi.get_embedding_levels(text, storage)
    _bidi.explicit_embed_and_overrides(storage)
    _bidi.resolve_weak_types(storage)
    _bidi.resolve_neutral_types(storage, False)
    _bidi.resolve_implicit_levels(storage, False)
    return [ch["level"] for ch in storage["chars"]]


def visual_runs(text: str) -> list[tuple[str, bool]]:
    """The text as (logical run, right-to-left?) pairs in left-to-right display order (UAX #9, L2)."""
    if _bidi is None or not text:
        return [(text, False)]
    levels = _levels(text)
    runs: list[list[Any]] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or levels[i] != levels[start]:
            runs.append([levels[start], text[start:i]])
            start = i
    highest = max(level for level, _ in runs)
    lowest_odd = min((level for level, _ in runs if level % 2), default=None)
    if lowest_odd is not None:
        for level in range(highest, lowest_odd - 1, -1):
            i = 0
            while i < len(runs):
                if runs[i][0] >= level:
                    j = i
                    while j < len(runs) and runs[j][0] >= level:
                        j += 1
                    runs[i:j] = runs[i:j][::-1]
                    i = j
                else:
                    i += 1
    return [(run, level % 2 == 1) for level, run in runs]


def _mirror(run: str) -> str:
    mirrored = getattr(_bidi, "MIRRORED", {}) if _bidi else {}
    return "".join(mirrored.get(ch, ch) for ch in reversed(run))


@dataclass
class Line:
    """A line of text ready to draw: plain, or shaped pieces in display order."""

    text: str
    font: str
    size: float
    width: float
    pieces: list[Any] | None = None  # None: plain text, drawn as is


@lru_cache(maxsize=4096)
def _shaped(text: str, font: str, size: float) -> tuple[tuple[Any, ...], float]:
    pieces = []
    width = 0.0
    for run, rtl in visual_runs(text):
        if rtl and not any(unicodedata.bidirectional(ch) in _RTL_LETTERS for ch in run):
            run = _mirror(run)  # neutrals or numbers in a right-to-left stretch: HarfBuzz would keep them LTR
        piece = shapeStr(run, font, size)
        shape_data = getattr(piece, "__shapeData__", None)
        if shape_data is not None:
            width += sum(sd.x_advance for sd in shape_data) * size / 1000
        else:
            width += pdfmetrics.stringWidth(piece, font, size)
        pieces.append(piece)
    return tuple(pieces), width


def make_line(text: str, font: str, size: float) -> Line:
    if not is_complex(text):
        return Line(text, font, size, pdfmetrics.stringWidth(text, font, size))
    pieces, width = _shaped(text, font, size)
    return Line(text, font, size, width, list(pieces))


def draw_line(c: Canvas, line: Line, x: float, y: float, anchor: str = "start") -> None:
    """Draw a line with its left edge (start), centre (middle) or right edge (end) at x."""
    if anchor == "middle":
        x -= line.width / 2
    elif anchor == "end":
        x -= line.width
    if line.pieces is None:
        c.setFont(line.font, line.size)
        c.drawString(x, y, line.text)
        return
    text = c.beginText(x, y)
    text.setFont(line.font, line.size)
    for piece in line.pieces:
        text.textOut(piece)
    c.drawText(text)


def _split_two(text: str) -> list[tuple[str, str]]:
    """Ways to break a text into two lines at a space, most balanced first."""
    spaces = [m.start() for m in re.finditer(r"\s+", text.strip())]
    stripped = text.strip()
    options = [(stripped[:i].strip(), stripped[i:].strip()) for i in spaces]
    return sorted(options, key=lambda pair: abs(len(pair[0]) - len(pair[1])))


def fit_text(text: str, font: str, max_width: float, size: float, min_size: float,
             max_lines: int = 2) -> list[Line]:
    """The largest lines (one, else two) that fit ``max_width``; never wider than it.

    One line shrinking from ``size`` to ``min_size``; then two lines, each
    shrinking the same way; then whatever size makes the best split fit.
    """
    text = " ".join((text or "").split())
    step = 0.5
    s = size
    while s >= min_size:
        line = make_line(text, font, s)
        if line.width <= max_width:
            return [line]
        s -= step
    splits = _split_two(text) if max_lines >= 2 else []
    if splits:
        s = size * 0.9
        while s >= min_size:
            for first, second in splits:
                lines = [make_line(first, font, s), make_line(second, font, s)]
                if max(line.width for line in lines) <= max_width:
                    return lines
            s -= step
        first, second = splits[0]
        lines = [make_line(first, font, min_size), make_line(second, font, min_size)]
        widest = max(line.width for line in lines)
        factor = max_width / widest
        return [make_line(first, font, min_size * factor), make_line(second, font, min_size * factor)]
    line = make_line(text, font, min_size)
    return [make_line(text, font, min_size * max_width / line.width)] if line.width > max_width else [line]


def draw_fitted(c: Canvas, text: str, font: str, x: float, top: float, max_width: float, size: float,
                min_size: float, *, max_lines: int = 2, anchor: str = "start", leading: float = 1.15,
                color=None) -> float:
    """Fit and draw text below ``top`` (the top of the first line); returns the y under the last line."""
    lines = fit_text(text, font, max_width, size, min_size, max_lines)
    if color is not None:
        c.setFillColor(color)
    y = top
    for line in lines:
        y -= line.size * 0.8
        draw_line(c, line, x, y, anchor)
        y -= line.size * (leading - 0.8)
    return y


# --- QR codes ----------------------------------------------------------------------------


# --- QR encoding: the qrcode library lays the symbol out; the codewords are computed here ----
# Its pure-Python bit buffer and Reed-Solomon polynomials were half of a card's drawing
# time. ``qr_codewords`` gives the same bytes (tests compare them) with table lookups.

_GF_EXP = [0] * 512
_GF_LOG = [0] * 256
_value = 1
for _i in range(255):
    _GF_EXP[_i] = _value
    _GF_LOG[_value] = _i
    _value <<= 1
    if _value & 0x100:
        _value ^= 0x11D
for _i in range(255, 512):
    _GF_EXP[_i] = _GF_EXP[_i - 255]
_generators: dict[int, list[list[int]]] = {}
_layouts: dict[int, tuple[int, list[tuple[int, int]]]] = {}


def _generator_rows(ec_count: int) -> list[list[int]]:
    """For each byte value f: f times the Reed-Solomon generator polynomial (leading term omitted)."""
    if ec_count not in _generators:
        poly = [1]
        for i in range(ec_count):
            nxt = [0] * (len(poly) + 1)
            for j, coef in enumerate(poly):
                nxt[j] ^= coef
                if coef:
                    nxt[j + 1] ^= _GF_EXP[_GF_LOG[coef] + i]
            poly = nxt
        logs = [_GF_LOG[c] for c in poly[1:]]
        _generators[ec_count] = [[0] * ec_count] + [[_GF_EXP[_GF_LOG[f] + g] for g in logs] for f in range(1, 256)]
    return _generators[ec_count]


def _ec_bytes(data: list[int], ec_count: int) -> list[int]:
    rows = _generator_rows(ec_count)
    rem = [0] * ec_count
    for byte in data:
        row = rows[byte ^ rem[0]]
        rem = [a ^ b for a, b in zip(rem[1:] + [0], row)]
    return rem


def _layout(version: int) -> tuple[int, list[tuple[int, int]]]:
    """(data capacity in bits, [(data, ec) bytes per block]) for a version at level M."""
    if version not in _layouts:
        blocks = qrcode.base.rs_blocks(version, ERROR_CORRECT_M)
        _layouts[version] = (sum(b.data_count for b in blocks) * 8,
                             [(b.data_count, b.total_count - b.data_count) for b in blocks])
    return _layouts[version]


def qr_version(raw: bytes) -> int:
    """The smallest QR version holding ``raw`` in byte mode at level M."""
    for version in range(1, 41):
        count_bits = 8 if version < 10 else 16
        if 4 + count_bits + 8 * len(raw) <= _layout(version)[0]:
            return version
    raise ValueError("too much data for a QR code")


def qr_codewords(raw: bytes, version: int) -> list[int]:
    """Data and error-correction codewords, interleaved, of ``raw`` as one byte-mode segment (level M)."""
    limit, blocks = _layout(version)
    count_bits = 8 if version < 10 else 16
    bits = 4 + count_bits + 8 * len(raw)
    value = (((0b0100 << count_bits) | len(raw)) << (8 * len(raw))) | int.from_bytes(raw, "big")
    tail = min(4, limit - bits)  # terminator
    bits += tail
    pad = -bits % 8
    value <<= tail + pad
    bits += pad
    data = list(value.to_bytes(bits // 8, "big"))
    data += [0xEC, 0x11] * ((limit // 8 - len(data)) // 2 + 1)
    data = data[:limit // 8]
    dc_blocks, ec_blocks, offset = [], [], 0
    for data_count, ec_count in blocks:
        block = data[offset:offset + data_count]
        offset += data_count
        dc_blocks.append(block)
        ec_blocks.append(_ec_bytes(block, ec_count))
    out = []
    for i in range(max(len(b) for b in dc_blocks)):
        out += [b[i] for b in dc_blocks if i < len(b)]
    for i in range(max(len(b) for b in ec_blocks)):
        out += [b[i] for b in ec_blocks if i < len(b)]
    return out


_cells: dict[tuple[int, int], list[tuple[list[bool | None], int, bool]]] = {}


class _QRCode(qrcode.QRCode):
    """The library's QR code with a faster ``map_data``, giving the same modules (tests compare).

    The free cells the data fills, in the library's zigzag order, and the
    mask bit of each, depend on the version and mask only: they are worked
    out once, then placing a code's bits is one pass over a list.
    """

    def map_data(self, data, mask_pattern):
        key = (self.version, mask_pattern)
        cells = _cells.get(key)
        if cells is None:
            cells = _cells[key] = self._free_cells(mask_pattern)
        modules = self.modules
        bits = bin(int.from_bytes(bytes(data), "big") | (1 << (8 * len(data))))[3:] if data else ""
        nbits = len(bits)
        for i, (row, col, masked) in enumerate(cells):
            dark = i < nbits and bits[i] == "1"
            modules[row][col] = dark != masked

    def _free_cells(self, mask_pattern):
        mask = qrcode.util.mask_func(mask_pattern)
        n = self.modules_count
        cells = []
        inc, row = -1, n - 1
        for col in range(n - 1, 0, -2):
            if col <= 6:
                col -= 1
            while True:
                for c in (col, col - 1):
                    if self.modules[row][c] is None:
                        cells.append((row, c, bool(mask(row, c))))
                row += inc
                if row < 0 or n <= row:
                    row -= inc
                    inc = -inc
                    break
        return cells


def qr_modules(data: str) -> list[list[bool]]:
    """The QR code's dark modules (byte mode, error correction M, fixed mask, no quiet zone)."""
    raw = data.encode("utf-8")
    version = qr_version(raw)
    code = _QRCode(version=version, error_correction=ERROR_CORRECT_M, border=0, mask_pattern=QR_MASK)
    code.add_data(qrcode.util.QRData(raw, mode=qrcode.util.MODE_8BIT_BYTE))
    code.data_cache = qr_codewords(raw, version)
    code.make(fit=False)
    return code.get_matrix()


def draw_qr(c: Canvas, modules: list[list[bool]], x: float, y: float, size: float, quiet: int = 2) -> None:
    """The code on a white square of side ``size`` at (x, y), with ``quiet`` modules of margin.

    Drawn in module units (one ``cm`` scales them to size) as one filled
    path; each run of dark modules in a row is one integer rectangle, written
    straight into the content stream (reportlab's float formatting of ~600
    rectangles per code was most of a card's drawing time).
    """
    n = len(modules)
    unit = size / (n + 2 * quiet)
    c.setFillColor(white)
    c.rect(x, y, size, size, stroke=0, fill=1)
    c.saveState()
    c.setFillColor(INK)
    rects = []
    for r, row in enumerate(modules):
        col = 0
        y_row = n - 1 - r
        while col < n:
            if row[col]:
                start = col
                while col < n and row[col]:
                    col += 1
                rects.append(f"{start} {y_row} {col - start} 1 re")
            else:
                col += 1
    c.addLiteral(f"{unit:.4f} 0 0 {unit:.4f} {x + quiet * unit:.3f} {y + quiet * unit:.3f} cm\n"
                 + "\n".join(rects) + "\nf")
    c.restoreState()


# --- images ------------------------------------------------------------------------------

PHOTO_W, PHOTO_H = 19 * mm, 23.75 * mm
# Pixels a photo needs at 300 dpi.
PHOTO_PX = (int(PHOTO_W / 72 * 300), int(PHOTO_H / 72 * 300))


def photo_reader(content: bytes | None) -> ImageReader | None:
    """A member's photo cropped to the card's 4:5 frame at print resolution, or None."""
    if not content:
        return None
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.draft("RGB", PHOTO_PX)  # JPEG decodes straight at 1/2, 1/4... of its size, not below PHOTO_PX
            img = img.convert("RGB")
            # Crop to the frame's 4:5; scale down only when well above print resolution.
            width, height = img.size
            if width * PHOTO_PX[1] > height * PHOTO_PX[0]:
                new_w = height * PHOTO_PX[0] // PHOTO_PX[1]
                img = img.crop(((width - new_w) // 2, 0, (width - new_w) // 2 + new_w, height))
            else:
                new_h = width * PHOTO_PX[1] // PHOTO_PX[0]
                img = img.crop((0, (height - new_h) // 2, width, (height - new_h) // 2 + new_h))
            if img.width > PHOTO_PX[0] * 1.5:
                img = img.resize(PHOTO_PX, Image.Resampling.BILINEAR)
            out = io.BytesIO()
            img.save(out, "JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    out.seek(0)
    return ImageReader(out)


@lru_cache(maxsize=8)
def _logo_reader(path: str, mtime: float) -> ImageReader | None:
    try:
        with Image.open(path) as img:
            img = img.convert("RGBA")
            img.thumbnail((300, 300))
            out = io.BytesIO()
            img.save(out, "PNG")
    except (OSError, ValueError):
        return None
    out.seek(0)
    return ImageReader(out)


def logo_reader() -> ImageReader | None:
    """The organisation's logo (CARD_LOGO, a PNG or JPEG), or None to draw its initials."""
    path = current_app.config.get("CARD_LOGO")
    if not path or not os.path.exists(path):
        return None
    return _logo_reader(str(path), os.path.getmtime(path))


def _initials(name: str) -> str:
    words = [w for w in re.split(r"\s+", name or "") if w and w[0].isalnum()]
    return "".join(w[0] for w in words[:3]).upper() or "M"


# --- what is printed ---------------------------------------------------------------------


@dataclass
class CardFace:
    """Everything printed on one card, as plain values."""

    card_number: str
    card_type: str
    issued_on: date
    expires_on: date | None
    name: str
    membership_number: str
    unit_name: str
    qr_data: str
    photo: bytes | None = None


@dataclass
class Design:
    """What is the same on every card of a run."""

    org_name: str
    color: Any
    logo: ImageReader | None
    verify_url: str

    @classmethod
    def current(cls, base_url: str | None = None) -> Design:
        from app.services.cards import verify_base_url

        return cls(
            org_name=current_app.config["ORG_NAME"],
            color=HexColor(current_app.config.get("CARD_COLOR") or "#1d4f91"),
            logo=logo_reader(),
            verify_url=verify_base_url(base_url),
        )


def faces(cards: Iterable[MembershipCard], base_url: str | None = None, batch: int = 200) -> Iterator[CardFace]:
    """Card faces for ``cards`` in order, loading members, units and photos a batch at a time."""
    from app.services.cards import verification_url

    pending: list[MembershipCard] = []

    def flush() -> Iterator[CardFace]:
        member_ids = list({card.member_id for card in pending})
        people = {
            row.id: row for row in db.session.execute(
                select(Member.id, Member.first_name, Member.last_name, Member.membership_number,
                       Unit.name.label("unit_name"))
                .join(Unit, Unit.id == Member.unit_id).where(Member.id.in_(member_ids))
            )
        }
        photos = dict(db.session.execute(
            select(MemberPhoto.member_id, MemberPhoto.content).where(MemberPhoto.member_id.in_(member_ids))
        ).all())
        for card in pending:
            person = people[card.member_id]
            yield CardFace(
                card_number=card.card_number, card_type=card.card_type, issued_on=card.issued_on,
                expires_on=card.expires_on, name=f"{person.first_name} {person.last_name}",
                membership_number=person.membership_number, unit_name=person.unit_name,
                qr_data=verification_url(card, base_url), photo=photos.get(card.member_id),
            )
        pending.clear()

    for card in cards:
        pending.append(card)
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()


# --- drawing one card --------------------------------------------------------------------

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
        initials = make_line(_initials(design.org_name), FONT_BOLD, 8)
        initials = fit_text(initials.text, FONT_BOLD, logo_d * 0.8, 8, 4, 1)[0]
        draw_line(c, initials, lx + logo_d / 2, ly + logo_d / 2 - initials.size * 0.36, "middle")
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
    draw_qr(c, qr_modules(face.qr_data), QR_X, QR_Y, QR_SIZE)
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
        for line in _wrap(step, FONT, 6.4, width):
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
    for line in _wrap(notice, FONT, 5.2, width)[:2]:
        draw_line(c, line, PAD, y)
        y -= 5.2 * 1.2


def _wrap(text: str, font: str, size: float, width: float) -> list[Line]:
    """Greedy word wrap at a fixed size (words longer than the width are shrunk to fit)."""
    lines: list[Line] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and make_line(candidate, font, size).width > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return [fit_text(line, font, width, size, size / 3, 1)[0] for line in lines]


def _new_canvas(target, pagesize) -> Canvas:
    register_fonts()
    c = Canvas(target, pagesize=pagesize, pageCompression=1, initialFontName=FONT)
    c.setAuthor("Muster")
    c.setCreator("Muster")
    c.setProducer("Muster (ReportLab)")
    return c


# --- one card ----------------------------------------------------------------------------


def render_card_pdf(card: MembershipCard, base_url: str | None = None) -> bytes:
    """One card as a PDF the size of the card: page 1 the front, page 2 the back."""
    face = next(faces([card], base_url))
    design = Design.current(base_url)
    out = io.BytesIO()
    c = _new_canvas(out, (CARD_W, CARD_H))
    c.setTitle(f"Membership card {card.card_number}")
    draw_front_static(c, design)
    draw_front_variable(c, face, photo_reader(face.photo))
    c.showPage()
    draw_back(c, design)
    c.showPage()
    c.save()
    return out.getvalue()


# --- print sheets ------------------------------------------------------------------------

MARGIN_X = (A4_W - SHEET_COLS * CARD_W - (SHEET_COLS - 1) * COL_GAP) / 2
MARGIN_Y = (A4_H - SHEET_ROWS * CARD_H - (SHEET_ROWS - 1) * ROW_GAP) / 2
MARK_OFFSET, MARK_LEN = 1.5 * mm, 4 * mm


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


def _render_chunk(sheets: list[list[tuple[CardFace, ImageReader | None]]], design: Design) -> bytes:
    """A reportlab document of whole sheets: fronts, then mirrored backs, sheet after sheet."""
    out = io.BytesIO()
    c = _new_canvas(out, (A4_W, A4_H))
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
        stitcher = _PdfStitcher(handle)
        chunk: list[list[tuple[CardFace, ImageReader | None]]] = []
        sheet: list[tuple[CardFace, ImageReader | None]] = []
        for face in faces(cards, base_url):
            sheet.append((face, photo_reader(face.photo)))
            if len(sheet) == CARDS_PER_SHEET:
                chunk.append(sheet)
                sheet = []
                if len(chunk) == SHEETS_PER_CHUNK:
                    stitcher.add(_render_chunk(chunk, design))
                    done += sum(len(s) for s in chunk)
                    chunk = []
                    # A reportlab document is full of reference cycles; collect each chunk's now,
                    # or they pile up until Python's occasional full collection.
                    gc.collect()
                    if progress:
                        progress(done)
        if sheet:
            chunk.append(sheet)
        if chunk or not stitcher.pages:
            stitcher.add(_render_chunk(chunk, design) if chunk else _empty_document())
            done += sum(len(s) for s in chunk)
            if progress:
                progress(done)
        stitcher.finish(title=f"Membership cards ({done})")
    finally:
        if own_file:
            handle.close()
    return done


def _empty_document() -> bytes:
    out = io.BytesIO()
    c = _new_canvas(out, (A4_W, A4_H))
    c.showPage()
    c.save()
    return out.getvalue()


# --- stitching chunks into one PDF -------------------------------------------------------

_REF = re.compile(rb"(\d+) 0 R\b")
_OBJ_HEAD = re.compile(rb"^(\d+) 0 obj")


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


class _PdfStitcher:
    """Concatenates reportlab documents into one PDF, writing each as it comes.

    Each chunk's objects are renumbered after the previous chunks' and copied
    (stream data untouched); its page tree root becomes a kid of one new
    root. Only the chunk being copied and one offset per object are held in
    memory. reportlab writes classic cross-reference tables and direct
    /Length values, which is all this relies on.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self.out = handle
        self.pos = 0
        self.offsets: list[int] = []  # offsets[n - 1] is the offset of object n
        self.kids: list[int] = []
        self.pages = 0
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self.root = self._reserve()
        self.catalog = self._reserve()

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.pos += len(data)

    def _reserve(self) -> int:
        self.offsets.append(-1)
        return len(self.offsets)

    def _begin_object(self, number: int) -> None:
        self.offsets[number - 1] = self.pos

    def add(self, pdf: bytes) -> None:
        startxref = int(pdf[pdf.rindex(b"startxref") + 9:].split()[0])
        trailer = pdf[pdf.index(b"trailer", startxref):]
        root_ref = int(re.search(rb"/Root (\d+) 0 R", trailer).group(1))  # type: ignore[union-attr]
        info_match = re.search(rb"/Info (\d+) 0 R", trailer)
        info_ref = int(info_match.group(1)) if info_match else None
        lines = pdf[startxref:].split(b"\n")
        first, count = (int(v) for v in lines[1].split()[:2])
        offsets = {}
        for i, line in enumerate(lines[2:2 + count]):
            parts = line.split()
            if len(parts) >= 3 and parts[2] == b"n":
                offsets[first + i] = int(parts[0])
        order = sorted(offsets, key=offsets.get)  # type: ignore[arg-type]
        ends = {num: (offsets[order[k + 1]] if k + 1 < len(order) else startxref) for k, num in enumerate(order)}
        catalog = pdf[offsets[root_ref]:ends[root_ref]]
        pages_ref = int(re.search(rb"/Pages (\d+) 0 R", catalog).group(1))  # type: ignore[union-attr]
        skip = {root_ref, info_ref}
        mapping = {num: self._reserve() for num in sorted(offsets) if num not in skip}

        def renumber(match: re.Match) -> bytes:
            return b"%d 0 R" % mapping[int(match.group(1))]

        for num in order:
            if num in skip:
                continue
            body = pdf[offsets[num]:ends[num]]
            body = body[body.index(b"obj") + 3:]
            stream_at = body.find(b"stream")
            head, tail = (body, b"") if stream_at < 0 else (body[:stream_at], body[stream_at:])
            head = _REF.sub(renumber, head)
            if num == pages_ref:
                head = head.replace(b"/Type /Pages", b"/Type /Pages /Parent %d 0 R" % self.root, 1)
                self.pages += int(re.search(rb"/Count (\d+)", head).group(1))  # type: ignore[union-attr]
                self.kids.append(mapping[num])
            self._begin_object(mapping[num])
            self._write(b"%d 0 obj" % mapping[num] + head + tail)

    def finish(self, title: str = "") -> None:
        self._begin_object(self.root)
        kids = b" ".join(b"%d 0 R" % k for k in self.kids)
        self._write(b"%d 0 obj\n<< /Type /Pages /Kids [ %s ] /Count %d >>\nendobj\n" % (self.root, kids, self.pages))
        self._begin_object(self.catalog)
        self._write(b"%d 0 obj\n<< /Type /Catalog /Pages %d 0 R >>\nendobj\n" % (self.catalog, self.root))
        info = self._reserve()
        self._begin_object(info)
        self._write(b"%d 0 obj\n<< /Producer (Muster \\(ReportLab\\)) /Title %s >>\nendobj\n"
                    % (info, _pdf_string(title).encode("latin-1", "replace")))
        xref = self.pos
        rows = [b"xref\n0 %d\n" % (len(self.offsets) + 1), b"0000000000 65535 f \n"]
        rows += [b"%010d 00000 n \n" % offset for offset in self.offsets]
        self._write(b"".join(rows))
        self._write(b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
                    % (len(self.offsets) + 1, self.catalog, info, xref))


# --- QR images for the API ---------------------------------------------------------------


def qr_png(card: MembershipCard, base_url: str | None = None, box_size: int = 8) -> bytes:
    """The card's QR code (its verification URL) as a PNG."""
    from app.services.cards import verification_url

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    code.add_data(verification_url(card, base_url))
    code.make(fit=True)
    out = io.BytesIO()
    code.make_image().save(out, "PNG")
    return out.getvalue()


def qr_svg(card: MembershipCard, base_url: str | None = None) -> bytes:
    """The card's QR code as an SVG (one path; scales to any size)."""
    from qrcode.image.svg import SvgPathImage

    from app.services.cards import verification_url

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, image_factory=SvgPathImage)
    code.add_data(verification_url(card, base_url))
    code.make(fit=True)
    return code.make_image().to_string(encoding="unicode").encode("utf-8")

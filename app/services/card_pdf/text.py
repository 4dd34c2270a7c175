"""Text on a card: the embedded fonts, right-to-left runs, shaping, and fitting a box.

Text is set in the DejaVu Sans files shipped in ``app/static/fonts`` (Latin
with diacritics, Cyrillic, Greek, Arabic, Hebrew...). Right-to-left text is
split into directional runs (Unicode bidi algorithm, python-bidi) and each run
is shaped by HarfBuzz (uharfbuzz, through reportlab's ``shapeStr``), so Arabic
letters join. Shaped glyphs are written in display order as presentation
forms, which PDF text extraction (pdfium, as in Chrome) turns back into the
name as typed. Names that are too long shrink, then wrap onto two lines, then
shrink further: they never run off the card.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont, shapeStr
from reportlab.pdfgen.canvas import Canvas

try:  # the bidi algorithm's levels (python-bidi); without it RTL text is drawn unreordered
    from bidi import algorithm as _bidi
except ImportError:  # pragma: no cover
    _bidi = None

FONT_DIR = Path(__file__).resolve().parents[2] / "static" / "fonts"
FONT = "MusterSans"
FONT_BOLD = "MusterSans-Bold"

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


# --- bidi: directional runs in display order ---------------------------------------------

_RTL = frozenset({"R", "AL", "AN"})
_RTL_LETTERS = frozenset({"R", "AL"})


def is_complex(text: str) -> bool:
    """Does the text need bidi reordering and shaping (Arabic, Hebrew...)?"""
    return any(unicodedata.bidirectional(ch) in _RTL for ch in text)


def _levels(text: str) -> list[int]:
    """The resolved embedding level of each character (UAX #9 up to rule I2).

    python-bidi's public ``get_display`` returns only the reordered string,
    and HarfBuzz must shape each run in logical order, so the algorithm's own
    steps (the same ones ``get_display`` runs) are called up to the levels.
    """
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


# --- lines: measured, shaped, drawn ------------------------------------------------------


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
    """``text`` measured (and shaped, if it needs it) in ``font`` at ``size``."""
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


# --- fitting a box -----------------------------------------------------------------------


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


def wrap(text: str, font: str, size: float, width: float) -> list[Line]:
    """Greedy word wrap at a fixed size (words longer than the width are shrunk to fit)."""
    lines: list[str] = []
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

"""QR codes: the card's drawn into a PDF, or alone as PNG / SVG (the card's for the API, a join link's).

The code holds the card's verification URL (``services.cards.verification_url``)
at error correction level M, made by zxing-cpp's writer (``create_barcode``;
the tests read the codes back with the same library). Printed codes use one
fixed data mask: any of the eight is valid, and scoring all eight to choose
the "best" is most of an encoder's time -- 10,000 codes are one print run
(figures in docs/cards.md, "Library or home-made"). Codes shown alone (PNG,
SVG) let the library choose.
"""

from __future__ import annotations

import io
import re

import zxingcpp
from PIL import Image
from reportlab.lib.colors import Color, white
from reportlab.pdfgen.canvas import Canvas

from app.models import MembershipCard
from app.services.cards import verification_url

EC_LEVEL = "M"
PRINT_MASK = 0
_DARK = bytes.maketrans(b"\x00\xff", b"\x01\x00")  # zxing-cpp's image: 0 is a dark module, 255 a light one
_RUN = re.compile(rb"\x01+")


def qr_code(data: str, mask: int | None = None) -> zxingcpp.Barcode:
    """``data`` as a QR code at level M, with data mask ``mask`` (0-7), or the library's choice."""
    options = {} if mask is None else {"data_mask": mask}
    return zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.QRCode, ec_level=EC_LEVEL, **options)


def qr_matrix(data: str) -> list[bytes]:
    """The printed code's modules, row by row from the top, without quiet zone: 1 dark, 0 light."""
    image = qr_code(data, PRINT_MASK).to_image(add_quiet_zones=False)
    height, width = image.shape
    modules = memoryview(image).tobytes().translate(_DARK)
    return [modules[row * width:(row + 1) * width] for row in range(height)]


def draw_qr(c: Canvas, matrix: list[bytes], x: float, y: float, size: float, ink: Color, quiet: int = 2) -> None:
    """The code on a white square of side ``size`` at (x, y), with ``quiet`` modules of margin.

    Drawn in module units (one ``cm`` scales them to size) as one filled
    path; each run of dark modules in a row is one integer rectangle, written
    straight into the content stream (reportlab's float formatting of ~600
    rectangles per code was most of a card's drawing time).
    """
    n = len(matrix)
    unit = size / (n + 2 * quiet)
    c.setFillColor(white)
    c.rect(x, y, size, size, stroke=0, fill=1)
    c.saveState()
    c.setFillColor(ink)
    rects = [f"{run.start()} {n - 1 - r} {run.end() - run.start()} 1 re"
             for r, row in enumerate(matrix) for run in _RUN.finditer(row)]
    c.addLiteral(f"{unit:.4f} 0 0 {unit:.4f} {x + quiet * unit:.3f} {y + quiet * unit:.3f} cm\n"
                 + "\n".join(rects) + "\nf")
    c.restoreState()


def png_of(data: str, box_size: int = 8) -> bytes:
    """Any text (a link) as a QR code PNG, ``box_size`` pixels a module, 4 modules of margin."""
    image = qr_code(data).to_image(scale=box_size, add_quiet_zones=True)
    height, width = image.shape
    out = io.BytesIO()
    Image.frombytes("L", (width, height), memoryview(image).tobytes()).save(out, "PNG", optimize=True)
    return out.getvalue()


def svg_of(data: str, scale: int = 3) -> bytes:
    """Any text as a QR code SVG (one path on white; ``scale`` units a module, 4 modules of margin)."""
    return qr_code(data).to_svg(scale=scale, add_quiet_zones=True).encode("utf-8")


def qr_png(card: MembershipCard, base_url: str | None = None, box_size: int = 8) -> bytes:
    """The card's QR code (its verification URL) as a PNG."""
    return png_of(verification_url(card, base_url), box_size)


def qr_svg(card: MembershipCard, base_url: str | None = None, scale: int = 3) -> bytes:
    """The card's QR code as an SVG."""
    return svg_of(verification_url(card, base_url), scale)

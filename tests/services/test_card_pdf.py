"""Cards on paper: the single-card PDF, print sheets, QR codes that decode, names in any script."""

from __future__ import annotations

import io

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter
from reportlab.pdfgen.canvas import Canvas

from app.services import card_pdf, cards
from app.services import members as member_service
from app.services.card_pdf import qr, sheets
from app.services.card_pdf.stitch import PdfStreamWriter

DPI = 300
NAMES = [
    ("Zoë", "Łukasiewicz-Brontë"),  # Latin with diacritics
    ("Дмитрий", "Шостакович"),  # Cyrillic
    ("Αλέξανδρος", "Παπαδόπουλος"),  # Greek
    ("محمد", "عبد الله"),  # Arabic: joined letters, right to left
    ("فاطمة", "الزهراء"),
    ("Nguyễn Thị", "Minh Khai"),  # stacked diacritics
    ("שרה", "לוי"),  # Hebrew
]


def _photo() -> bytes:
    img = Image.new("RGB", (480, 600), (170, 120, 90))
    draw = ImageDraw.Draw(img)
    draw.ellipse((140, 90, 340, 330), fill=(230, 190, 160))
    out = io.BytesIO()
    img.save(out, "JPEG")
    return out.getvalue()


def _pages(pdf: bytes, dpi: int = DPI):
    doc = pdfium.PdfDocument(pdf)
    try:
        for page in doc:
            yield page.render(scale=dpi / 72).to_pil(), page.get_textpage().get_text_range(), page.get_size()
    finally:
        doc.close()


def _token(url: str) -> str:
    assert "/verify/" in url, url
    return url.rsplit("/", 1)[1]


def test_single_card_is_id1_front_and_back(tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"], first_name="Chanda", last_name="Mwansa"))
    pages = list(_pages(card_pdf.render_card_pdf(card)))
    assert len(pages) == 2
    for _image, _text, (width, height) in pages:
        assert width == pytest.approx(85.6 / 25.4 * 72, abs=0.01)
        assert height == pytest.approx(53.98 / 25.4 * 72, abs=0.01)
    front, back = pages[0][1], pages[1][1]
    for expected in ("Chanda Mwansa", card.card_number, card.member.membership_number, "Lukashya Ward 1",
                     card.issued_on.isoformat(), card.expires_on.isoformat(), "Standard", "Muster Demo Movement"):
        assert expected in front, expected
    assert "How to check this card" in back and "/verify/" in back


def test_qr_round_trip_pdf_to_image_to_verify(tree, make_member):
    """PDF -> 300 dpi image -> decode -> verify -> valid; then revoke -> revoked."""
    card = cards.issue_card(None, make_member(tree["w1"]))
    image = next(_pages(card_pdf.render_card_pdf(card)))[0]
    decoded = zxingcpp.read_barcodes(image)
    assert [d.format for d in decoded] == [zxingcpp.BarcodeFormat.QRCode]
    token = _token(decoded[0].text)
    assert cards.verify_token(token).status == "valid"
    cards.revoke_card(None, card, "lost")
    assert cards.verify_token(token).status == "revoked"


def test_qr_decodes_with_a_long_public_url(app, tree, make_member, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://membership.northern-province.example-organisation.org/members")
    card = cards.issue_card(None, make_member(tree["w1"]))
    image = next(_pages(card_pdf.render_card_pdf(card)))[0]
    decoded = zxingcpp.read_barcodes(image)
    assert decoded and decoded[0].text.startswith(
        "https://membership.northern-province.example-organisation.org/members/verify/")
    assert cards.verify_token(_token(decoded[0].text)).status == "valid"


@pytest.mark.parametrize("first,last", NAMES, ids=[f"{f} {l}" for f, l in NAMES])
def test_names_in_any_script_extract_exactly(tree, make_member, first, last):
    card = cards.issue_card(None, make_member(tree["w1"], first_name=first, last_name=last))
    _image, text, _size = next(_pages(card_pdf.render_card_pdf(card)))
    assert f"{first} {last}" in text.splitlines()


def test_fonts_are_embedded_from_the_app(tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"], first_name="Дмитрий", last_name="Шостакович"))
    pdf = card_pdf.render_card_pdf(card)
    assert b"DejaVuSans" in pdf and b"/FontFile2" in pdf
    assert (card_pdf.FONT_DIR / "DejaVuSans.ttf").exists() and (card_pdf.FONT_DIR / "DejaVu-LICENSE.txt").exists()


def test_arabic_is_shaped_and_right_to_left():
    """Joined forms, in display order: the first letter typed is drawn rightmost."""
    card_pdf.register_fonts()
    line = card_pdf.make_line("محمد", card_pdf.FONT, 10)
    assert line.pieces is not None
    drawn = "".join(str(p) for p in line.pieces)
    assert drawn == "\ufeaa\ufee4\ufea4\ufee3"  # dal final, meem medial, hah medial, meem initial
    mixed = card_pdf.visual_runs("Ali محمد bin")
    assert mixed == [("Ali ", False), ("محمد", True), (" bin", False)]


@pytest.mark.parametrize("name", [
    "Maximiliana Alexandrina Featherstonehaugh-Wolfeschlegelsteinhausen",
    "Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaftschaferswessenschafewarenwohlgepflegeundsorgfaltigkeitbeschutzen",
    "عبد الرحمن بن عبد العزيز بن محمد بن سعود آل سعود",
])
def test_long_names_shrink_or_wrap_but_never_overflow(name):
    card_pdf.register_fonts()
    lines = card_pdf.fit_text(name, card_pdf.FONT_BOLD, card_pdf.INFO_W, 9, 6.5, 2)
    assert 1 <= len(lines) <= 2
    assert all(line.width <= card_pdf.INFO_W + 0.01 for line in lines)
    assert " ".join(line.text for line in lines) == " ".join(name.split())
    short = card_pdf.fit_text("Li Na", card_pdf.FONT_BOLD, card_pdf.INFO_W, 9, 6.5, 2)
    assert len(short) == 1 and short[0].size == 9


def test_long_name_renders_inside_the_text_column(tree, make_member):
    first, last = "Maximiliana Alexandrina", "Featherstonehaugh-Wolfeschlegelsteinhausen"
    card = cards.issue_card(None, make_member(tree["w1"], first_name=first, last_name=last))
    doc = pdfium.PdfDocument(card_pdf.render_card_pdf(card))
    try:
        page = doc[0]
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        start = text.index("Featherstonehaugh")
        right_edges = [textpage.get_charbox(i)[2] for i in range(start, start + len("Featherstonehaugh-Wolfeschlegelsteinhausen"))]
    finally:
        doc.close()
    assert first in text and max(right_edges) <= card_pdf.QR_X


def test_photo_or_placeholder(tree, make_member):
    with_photo = make_member(tree["w1"])
    member_service.set_photo(None, with_photo, _photo())
    plain = cards.issue_card(None, make_member(tree["w1"]))
    photographed = cards.issue_card(None, with_photo)
    assert "No photo" in next(_pages(card_pdf.render_card_pdf(plain)))[1]
    image, text, _ = next(_pages(card_pdf.render_card_pdf(photographed)))
    assert "No photo" not in text
    # The photo's skin tone is printed where the photo goes.
    x = int((card_pdf.PHOTO_X + card_pdf.PHOTO_W / 2) / 72 * DPI)
    y = int((card_pdf.CARD_H - card_pdf.PHOTO_Y - card_pdf.PHOTO_H * 0.45) / 72 * DPI)
    r, g, b = image.convert("RGB").getpixel((x, y))
    assert abs(r - 230) < 30 and abs(g - 190) < 30 and abs(b - 160) < 30


def test_configured_logo_is_used(app, tree, make_member, tmp_path):
    logo = tmp_path / "logo.png"
    Image.new("RGB", (200, 200), (255, 0, 0)).save(logo)
    app.config["CARD_LOGO"] = str(logo)
    try:
        card = cards.issue_card(None, make_member(tree["w1"]))
        image, text, _ = next(_pages(card_pdf.render_card_pdf(card)))
    finally:
        app.config["CARD_LOGO"] = None
    assert "MDM" not in text  # the initials stand in only when there is no logo
    x = int((card_pdf.PAD + 4 * card_pdf.M) / 72 * DPI)
    y = int(card_pdf.BAND_H / 2 / 72 * DPI)
    assert image.convert("RGB").getpixel((x, y)) == (255, 0, 0)


# --- print sheets ------------------------------------------------------------------------


def test_print_sheet_layout_decodes_and_mirrors_backs(tree, make_member, tmp_path):
    issued = [cards.issue_card(None, make_member(tree["w1"], first_name=f"P{i}", last_name="Sheet"))
              for i in range(13)]
    out = tmp_path / "sheet.pdf"
    assert card_pdf.render_print_sheet(issued, out) == 13
    pages = list(_pages(out.read_bytes()))
    assert len(pages) == 4  # fronts, backs, fronts, backs
    for _image, _text, (width, height) in pages:
        assert (width, height) == pytest.approx((595.2756, 841.8898), abs=0.01)
    decoded = zxingcpp.read_barcodes(pages[0][0])
    assert len(decoded) == 10
    tokens = {_token(d.text) for d in decoded}
    assert {cards.verify_token(t).card_number for t in tokens} == {c.card_number for c in issued[:10]}
    assert all(cards.verify_token(t).status == "valid" for t in tokens)
    assert len(zxingcpp.read_barcodes(pages[2][0])) == 3
    # Front slot 0 is top left; its back is top right on the next page (long-edge duplex).
    front_x, _ = card_pdf.slot_origin(0)
    back_x, _ = card_pdf.slot_origin(0, back=True)
    assert front_x + back_x + card_pdf.CARD_W == pytest.approx(card_pdf.A4_W)
    assert pages[1][1].count("How to check this card") == 10 and pages[3][1].count("How to check this card") == 3
    # The last sheet holds 3 cards: the third sits left on row 2, so its back is right on row 2
    # and the left of row 2 stays blank on the back page.
    img = pages[3][0].convert("L")
    x3, y3 = card_pdf.slot_origin(2)
    bx3, by3 = card_pdf.slot_origin(2, back=True)
    assert (x3, by3) == (front_x, y3) and bx3 == back_x
    band_y = int((card_pdf.A4_H - (y3 + card_pdf.CARD_H) + 2 * card_pdf.M) / 72 * DPI)
    left_mid = int((front_x + card_pdf.CARD_W / 2) / 72 * DPI)
    right_mid = int((back_x + card_pdf.CARD_W / 2) / 72 * DPI)
    assert img.getpixel((right_mid, band_y)) < 128 and img.getpixel((left_mid, band_y)) > 200
    front_img = pages[2][0].convert("L")
    assert front_img.getpixel((left_mid, band_y)) < 128 and front_img.getpixel((right_mid, band_y)) > 200


def test_print_sheet_stitches_many_chunks(tree, make_member, monkeypatch):
    """Chunks stitched into one valid PDF whose page count and order are right."""
    monkeypatch.setattr(sheets, "SHEETS_PER_CHUNK", 1)
    issued = [cards.issue_card(None, make_member(tree["w1"], first_name=f"N{i:02d}", last_name="Stitch"))
              for i in range(25)]
    out = io.BytesIO()
    progress = []
    assert card_pdf.render_print_sheet(issued, out, progress=progress.append) == 25
    assert progress == [10, 20, 25]
    doc = pdfium.PdfDocument(out.getvalue())
    try:
        assert len(doc) == 6
        fronts = [doc[i].get_textpage().get_text_range() for i in (0, 2, 4)]
    finally:
        doc.close()
    assert "N00 Stitch" in fronts[0] and "N10 Stitch" in fronts[1] and "N24 Stitch" in fronts[2]
    assert "N10 Stitch" not in fronts[0]
    data = out.getvalue()
    assert data.count(b"%%EOF") == 1 and data.count(b"/Type /Catalog") == 1


def test_empty_print_sheet_is_a_valid_pdf(tmp_path):
    out = tmp_path / "empty.pdf"
    assert card_pdf.render_print_sheet([], out) == 0
    doc = pdfium.PdfDocument(str(out))
    assert len(doc) == 1
    doc.close()


def test_crop_marks_stay_outside_the_cards():
    """Every mark lies in a margin or gap, never on a card."""
    slots = [card_pdf.slot_origin(i) for i in range(card_pdf.CARDS_PER_SHEET)]

    class Recorder:
        def __init__(self):
            self.lines = []

        def setStrokeColor(self, *_):
            pass

        def setLineWidth(self, *_):
            pass

        def line(self, x1, y1, x2, y2):
            self.lines.append((x1, y1, x2, y2))

    rec = Recorder()
    card_pdf.draw_crop_marks(rec)
    assert len(rec.lines) > 20
    for x1, y1, x2, y2 in rec.lines:
        for sx, sy in slots:
            inside = (sx < (x1 + x2) / 2 < sx + card_pdf.CARD_W) and (sy < (y1 + y2) / 2 < sy + card_pdf.CARD_H)
            assert not inside
        assert 0 <= min(x1, x2) and max(x1, x2) <= card_pdf.A4_W and 0 <= min(y1, y2) and max(y1, y2) <= card_pdf.A4_H


def _reportlab_pdf(*page_texts: str) -> bytes:
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(200, 100))
    for text in page_texts:
        canvas.drawString(20, 50, text)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def test_stitcher_reads_any_pdf_not_only_the_shape_reportlab_writes():
    """An incrementally updated PDF with a cross-reference stream (as pypdf writes one) is read whole.

    The old stitcher read the last classic xref table with regular expressions:
    it lost the first revision's objects and had no trailer to find here.
    """
    writer = PdfWriter(io.BytesIO(_reportlab_pdf("First page")), incremental=True)
    writer.append(PdfReader(io.BytesIO(_reportlab_pdf("Second page"))))
    updated = io.BytesIO()
    writer.write(updated)
    assert b"/XRef" in updated.getvalue() and updated.getvalue().count(b"startxref") == 2

    out = io.BytesIO()
    stitched = PdfStreamWriter(out)
    stitched.add(updated.getvalue())
    stitched.add(_reportlab_pdf("Third page"))
    stitched.finish(title="Three pages")
    reader = PdfReader(io.BytesIO(out.getvalue()), strict=True)  # strict: every xref offset must be right
    assert [page.extract_text().strip() for page in reader.pages] == ["First page", "Second page", "Third page"]
    assert reader.metadata.title == "Three pages"
    doc = pdfium.PdfDocument(out.getvalue())
    try:
        assert [doc[i].get_textpage().get_text_range().strip() for i in range(len(doc))] == [
            "First page", "Second page", "Third page"]
    finally:
        doc.close()


def test_printed_qr_code_is_level_m_and_decodes():
    """The modules drawn on a card are a level-M code of the URL with the one print mask, dark as 1."""
    url = "https://members.example.org/verify/" + "Ab-_9" * 21
    matrix = qr.qr_matrix(url)
    masked = [memoryview(qr.qr_code(url, mask).to_image(add_quiet_zones=False)).tobytes() for mask in range(8)]
    assert len(set(masked)) == 8  # the library honours the mask asked for (unknown options it ignores)
    assert b"".join(matrix) == masked[qr.PRINT_MASK].translate(bytes.maketrans(b"\x00\xff", b"\x01\x00"))
    n = len(matrix)
    assert all(len(row) == n for row in matrix) and set(b"".join(matrix)) == {0, 1}
    assert matrix[0][:7] == b"\x01" * 7  # the top-left finder pattern starts at the corner
    image = Image.new("L", (n * 4 + 32,) * 2, 255)
    for r, row in enumerate(matrix):
        for col, dark in enumerate(row):
            if dark:
                image.paste(0, (16 + col * 4, 16 + r * 4, 20 + col * 4, 20 + r * 4))
    decoded = zxingcpp.read_barcodes(image)
    assert [d.text for d in decoded] == [url] and decoded[0].extra["ECLevel"] == "M"

"""Membership cards at scale: print sheets for 10,000 cards, and verifications per second.

Print sheets: Muster's ``render_print_sheet`` (static parts as form XObjects,
QR codes by zxing-cpp, photos scaled to 300 dpi, chunks copied into one file
as they are drawn) against a baseline that draws the same layout with plain
reportlab calls on one canvas (every element drawn per card, reportlab's QR
widget, photos embedded as stored). Both render the same cards (all of them:
10,000 at full scale; ``BENCH_CARDS_BASELINE`` draws fewer for a quick look)
through the same loader (members, units, photos, signed codes), in the same
run, each in a forked child process so its memory can be measured on its own:
resident size is sampled as the cards go by, so "flat" is visible in the numbers.

Verification: ``verify_token`` (Ed25519 signature + one indexed lookup) in a
loop over the codes of random cards, with the signature check and the lookup
also timed alone.

BENCH_SCALE=0.1 gives a quick run (1,000 cards).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

PHOTO_SHARE = 0.5  # half the members have a photo, as in a registry being built up


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _prepare(count: int):
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.models import Member, MembershipCard, Unit
    from app.services import cards, geo, rbac
    from app.services import members as member_service

    workdir = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MUSTER_INSTANCE_DIR"] = str(workdir)
    config = Config()
    config.SQLALCHEMY_DATABASE_URI = os.environ.get("BENCH_CARDS_DATABASE_URL",
                                                    f"sqlite:///{workdir / f'cards-{count}.db'}")
    config.CARD_KEYS_DIR = str(workdir / "card_keys")
    config.PUBLIC_URL = "https://members.example.org"
    config.RATELIMIT_ENABLED = False
    app = create_app(config)
    with app.app_context():
        upgrade(revision="heads")
        have = db.session.scalar(select(func.count()).select_from(MembershipCard))
        if have < count:
            started = time.perf_counter()
            rbac.ensure_catalogue()
            ward = db.session.scalar(select(Unit).where(Unit.code == "BW1"))
            if ward is None:
                province = geo.create_unit(None, "Bench Province", "BP", None)
                district = geo.create_unit(None, "Bench District", "BD", province)
                constituency = geo.create_unit(None, "Bench Constituency", "BC", district)
                ward = geo.create_unit(None, "Bench Ward 1", "BW1", constituency)
            from bench.data import generate_members

            missing = count - have
            generate_members(missing)
            db.session.execute(db.update(Member).where(Member.status != "active").values(status="active"))
            photos = _photos()
            rng = random.Random(4)
            without = list(db.session.scalars(
                select(Member).outerjoin(MembershipCard, MembershipCard.member_id == Member.id)
                .where(MembershipCard.id.is_(None)).order_by(Member.id).limit(missing)))
            for start in range(0, len(without), 1000):
                chunk = without[start:start + 1000]
                for member in chunk:
                    if rng.random() < PHOTO_SHARE:
                        member_service.set_photo(None, member, rng.choice(photos))
                cards.issue_cards(None, chunk)
                db.session.commit()
            print(f"issued {missing} cards in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        if db.engine.dialect.name == "sqlite":
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
    return app


def _photos() -> list[bytes]:
    from PIL import Image, ImageDraw

    out = []
    for i in range(8):
        img = Image.new("RGB", (480, 600), (120 + i * 15, 100, 80))
        draw = ImageDraw.Draw(img)
        draw.ellipse((130, 80, 350, 340), fill=(220, 180 - i * 5, 150))
        draw.rectangle((80, 380, 400, 600), fill=(30 + i * 20, 50, 110))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


# --- the baseline: the same layout with plain reportlab calls ---------------------------


def baseline_print_sheet(cards_iter, out_path: str, base_url: str, progress) -> int:
    """One canvas; every card drawn element by element; QR by reportlab's widget; photos as stored."""
    from reportlab.graphics import renderPDF
    from reportlab.graphics.barcode.qr import QrCodeWidget
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib.colors import white
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.pdfgen.canvas import Canvas

    from app.services import card_pdf as cp

    cp.register_fonts()
    design = cp.Design.current(base_url)
    c = Canvas(out_path, pagesize=(cp.A4_W, cp.A4_H), pageCompression=1)

    def text(x, y, s, font, size, anchor="start"):
        width = stringWidth(s, font, size)
        if width > 0 and anchor == "middle":
            x -= width / 2
        elif anchor == "end":
            x -= width
        c.setFont(font, size)
        c.drawString(x, y, s)

    def front(face, x, y):
        c.saveState()
        c.translate(x, y)
        c.setFillColor(white)
        c.rect(0, 0, cp.CARD_W, cp.CARD_H, stroke=0, fill=1)
        c.setFillColor(design.color)
        c.rect(0, cp.CARD_H - cp.BAND_H, cp.CARD_W, cp.BAND_H, stroke=0, fill=1)
        c.rect(0, 0, cp.CARD_W, 1.2 * cp.M, stroke=0, fill=1)
        c.setFillColor(white)
        d = 8 * cp.M
        ly = cp.CARD_H - cp.BAND_H + (cp.BAND_H - d) / 2
        c.circle(cp.PAD + d / 2, ly + d / 2, d / 2, stroke=0, fill=1)
        text(cp.PAD + d + 2.2 * cp.M, cp.CARD_H - cp.BAND_H / 2 - 3, design.org_name, cp.FONT_BOLD, 10)
        c.setFillColor(cp.GREY)
        for label, (label_y, _v) in zip(("MEMBER NO.", "WARD", "CARD TYPE"), cp.FIELD_ROWS):
            text(cp.INFO_X, label_y, label, cp.FONT, 4.6)
        text(cp.PAD, 10.6 * cp.M, "CARD NO.", cp.FONT, 4.6)
        text(40 * cp.M, 10.6 * cp.M, "ISSUED", cp.FONT, 4.6)
        text(cp.CARD_W - cp.PAD, 10.6 * cp.M, "EXPIRES", cp.FONT, 4.6, "end")
        if face.photo:
            c.drawImage(ImageReader(io.BytesIO(face.photo)), cp.PHOTO_X, cp.PHOTO_Y, cp.PHOTO_W, cp.PHOTO_H)
        else:
            c.setFillColor(cp.LIGHT)
            c.rect(cp.PHOTO_X, cp.PHOTO_Y, cp.PHOTO_W, cp.PHOTO_H, stroke=0, fill=1)
        c.setFillColor(cp.INK)
        text(cp.INFO_X, cp.BODY_TOP - 7, face.name, cp.FONT_BOLD, 9)
        for value, (_l, value_y) in zip((face.membership_number, face.unit_name, face.card_type.capitalize()),
                                        cp.FIELD_ROWS):
            text(cp.INFO_X, value_y, value, cp.FONT, 7)
        widget = QrCodeWidget(face.qr_data, barLevel="M")
        x0, y0, x1, y1 = widget.getBounds()
        drawing = Drawing(cp.QR_SIZE, cp.QR_SIZE, transform=[cp.QR_SIZE / (x1 - x0), 0, 0,
                                                             cp.QR_SIZE / (y1 - y0), 0, 0])
        drawing.add(widget)
        renderPDF.draw(drawing, c, cp.QR_X, cp.QR_Y)
        text(cp.PAD, 6.4 * cp.M, face.card_number, cp.FONT_BOLD, 8.5)
        text(40 * cp.M, 6.4 * cp.M, face.issued_on.isoformat(), cp.FONT, 7)
        text(cp.CARD_W - cp.PAD, 6.4 * cp.M, face.expires_on.isoformat() if face.expires_on else "Never",
             cp.FONT_BOLD, 7, "end")
        c.restoreState()

    def back(x, y):
        c.saveState()
        c.translate(x, y)
        cp.draw_back(c, design)
        c.restoreState()

    done = 0
    sheet = []

    def flush():
        nonlocal sheet
        cp.draw_crop_marks(c)
        for i, face in enumerate(sheet):
            front(face, *cp.slot_origin(i))
        c.showPage()
        cp.draw_crop_marks(c)
        for i in range(len(sheet)):
            back(*cp.slot_origin(i, back=True))
        c.showPage()
        sheet = []

    for face in cp.faces(cards_iter, base_url):
        sheet.append(face)
        done += 1
        if len(sheet) == cp.CARDS_PER_SHEET:
            flush()
            if done % 200 == 0:
                progress(done)
    if sheet:
        flush()
    c.save()
    progress(done)
    return done


# --- running one renderer in its own process ---------------------------------------------


def _render_child(app, which: str, count: int, out_path: str, queue) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import MembershipCard
    from app.services import card_pdf

    with app.app_context():
        db.engine.dispose(close=False)  # the parent's connections are not ours
        samples: list[tuple[int, float]] = []
        marks = {max(1, int(count * f)) for f in (0.1, 0.25, 0.5, 0.75, 1.0)}

        def progress(n: int) -> None:
            if any(n >= m > (samples[-1][0] if samples else 0) for m in marks):
                samples.append((n, _rss_mb()))

        stmt = select(MembershipCard).order_by(MembershipCard.id).limit(count)
        base_rss = _rss_mb()
        started = time.perf_counter()
        if which == "muster":
            n = card_pdf.render_print_sheet(db.session.scalars(stmt).yield_per(500), out_path,
                                            base_url="https://members.example.org", progress=progress)
        else:
            n = baseline_print_sheet(db.session.scalars(stmt).yield_per(500), out_path,
                                     "https://members.example.org", progress)
        elapsed = time.perf_counter() - started
        queue.put({
            "cards": n,
            "seconds": round(elapsed, 2),
            "cards_per_s": round(n / elapsed, 1),
            "pdf_mb": round(os.path.getsize(out_path) / 2**20, 1),
            "rss_mb_at_start": base_rss,
            "rss_mb_by_cards_done": {str(k): v for k, v in samples},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_growth_mb_per_1000_cards": _growth(samples),
        })


def _growth(samples: list[tuple[int, float]]) -> float | None:
    """RSS growth per 1,000 cards between the first and the last sample (0 = flat)."""
    if len(samples) < 2 or samples[-1][0] == samples[0][0]:
        return None
    (n0, r0), (n1, r1) = samples[0], samples[-1]
    return round((r1 - r0) / (n1 - n0) * 1000, 1)


def _render(app, which: str, count: int, workdir: Path) -> dict:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    out_path = str(workdir / f"sheet-{which}-{count}.pdf")
    proc = ctx.Process(target=_render_child, args=(app, which, count, out_path, queue))
    proc.start()
    result = queue.get(timeout=3600)
    proc.join()
    return result


def _check_sheet(path: str, pages: int = 1) -> dict:
    """Decode the QR codes of the first sheet at 300 dpi and verify them (when the test tools are installed)."""
    try:
        import pypdfium2 as pdfium
        import zxingcpp
    except ImportError:
        return {"checked": False}
    from app.services.cards import verify_token

    doc = pdfium.PdfDocument(path)
    try:
        total_pages = len(doc)
        image = doc[0].render(scale=300 / 72).to_pil()
    finally:
        doc.close()
    urls = [r.text for r in zxingcpp.read_barcodes(image)]
    statuses = [verify_token(u.rsplit("/", 1)[1]).status for u in urls]
    return {"pages": total_pages, "qr_decoded_on_page_1": len(urls),
            "valid_on_page_1": statuses.count("valid")}


# --- verification -----------------------------------------------------------------------


def _verification(app, n: int) -> dict:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import MembershipCard
    from app.services import cards

    with app.app_context():
        ids = list(db.session.scalars(select(MembershipCard.id)))
        rng = random.Random(11)
        sample = [db.session.get(MembershipCard, i) for i in rng.sample(ids, min(2000, len(ids)))]
        tokens = [cards.card_token(c) for c in sample]
        numbers = [c.card_number for c in sample]
        db.session.remove()
        for t in tokens[:50]:  # warm caches and the statement cache
            assert cards.verify_token(t).status == "valid"

        started = time.perf_counter()
        for i in range(n):
            result = cards.verify_token(tokens[i % len(tokens)])
            if i % 1000 == 0:
                db.session.expire_all()
        full = time.perf_counter() - started
        assert result.status == "valid"

        started = time.perf_counter()
        for i in range(n):
            cards.decode_token(tokens[i % len(tokens)])
        signature = time.perf_counter() - started

        row = cards.verification.VERIFY_ROW
        started = time.perf_counter()
        for i in range(n):
            db.session.connection().execute(row, {"number": numbers[i % len(numbers)]}).first()
        lookup = time.perf_counter() - started

        bad = [t[:-2] + ("AA" if t[-2:] != "AA" else "BB") for t in tokens[:500]]
        started = time.perf_counter()
        for i in range(n):
            cards.verify_token(bad[i % len(bad)])
        forged = time.perf_counter() - started
    return {
        "verifications": n,
        "per_s": round(n / full),
        "us_each": round(full / n * 1e6, 1),
        "signature_only_per_s": round(n / signature),
        "lookup_only_per_s": round(n / lookup),
        "forged_tokens_per_s": round(n / forged),
        "target_per_s": 5000,
    }


def run(scale: float) -> dict:
    count = max(100, int(10_000 * scale))
    app = _prepare(count)
    workdir = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench"))
    # The baseline draws the same cards (10 to 20 minutes for 10,000 on two cores).
    baseline_count = int(os.environ.get("BENCH_CARDS_BASELINE", str(count)))
    ours = _render(app, "muster", count, workdir)
    base = _render(app, "baseline", baseline_count, workdir)
    with app.app_context():
        check = _check_sheet(str(workdir / f"sheet-muster-{count}.pdf"))
    verify = _verification(app, int(os.environ.get("BENCH_VERIFICATIONS", "20000")))
    with app.app_context():
        from app.extensions import db

        database = db.engine.dialect.name
    return {
        "database": database,
        "cards": count,
        "photo_share": PHOTO_SHARE,
        "print_sheet": {
            "muster": ours,
            "baseline_plain_reportlab": base,
            "speedup": round(ours["cards_per_s"] / base["cards_per_s"], 2),
            "first_sheet_check": check,
            "targets": {"cards_per_s": 200, "seconds_for_10000": 50},
        },
        "verification": verify,
    }

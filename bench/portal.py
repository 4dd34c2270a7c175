"""Member portal at scale: the dashboard and My card for a member of a 1,000,000-member registry.

Data: the demo organisation (``seed_demo``: geography, events with
registrations, the portal member ``member@demo.test`` with a card), then
members up to ``1,000,000 * BENCH_SCALE`` (``bench.data.generate_members``),
a card for most of them, and registrations and events in proportion (raw
executemany inserts: the point is tables of a realistic size to query, not
the registry's own writes). The database file is kept between runs
(BENCH_DIR, default /tmp/muster-bench; BENCH_PORTAL_DATABASE_URL for another).

Measured through the WSGI stack with the Flask test client, signed in as the
portal member through the real login form: ``GET /`` (dashboard) and
``GET /card``; median and p95 of BENCH_PORTAL_REPEAT requests after a
warm-up, and the SQL statements one request runs. The baseline, in the same
app and run: a route that only renders the same template with the same data
(the context captured from a real request of that page, the same user object
as ``current_user``), so its SQL count is 0 and the ratio is what loading
the data costs over rendering it.

Page weight: the dashboard's HTML plus every stylesheet and script it
references, in bytes as the app sends them to a browser that accepts gzip
(static CSS and scripts are compressed by app/static_compression.py; pages
are not), and uncompressed, against the 150 KB target.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, select

REPEAT = int(os.environ.get("BENCH_PORTAL_REPEAT", "60"))
MEMBER_EMAIL = "member@demo.test"
PASSWORD = "demo-password"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
ASSET_RE = re.compile(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"|<script[^>]+src="([^"]+)"')
TARGETS = {"median_ms": 30, "page_weight_kb": 150}
CARD_SHARE = 0.85  # most active members hold a card, as in the demo data
EXTRA_EVENTS_PER_MILLION = 20_000  # events of the whole organisation over the years (all units)
REGISTRATIONS_PER_MILLION = 300_000
BATCH = 20_000
GRANT_CACHES = ("_muster_grants", "_muster_roles", "_muster_scope")  # app.security's per-request caches


def _workdir() -> Path:
    path = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- data ----------------------------------------------------------------------------------


def _bulk(model, rows) -> int:
    from app.extensions import db

    conn, batch, n = db.session.connection(), [], 0
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            conn.execute(insert(model), batch)
            n, batch = n + len(batch), []
    if batch:
        conn.execute(insert(model), batch)
        n += len(batch)
    db.session.commit()
    return n


def _cards(first_id: int) -> int:
    """A card (active, a year to run) for ``CARD_SHARE`` of the active members from ``first_id`` on."""
    from app.extensions import db
    from app.models import Member, MembershipCard

    rng, today = random.Random(11), date.today()
    ids = db.session.scalars(select(Member.id).where(Member.id >= first_id, Member.status == "active")
                             .order_by(Member.id))
    return _bulk(MembershipCard, ({
        "member_id": mid, "card_number": f"BP{mid:010d}", "card_type": "standard", "status": "active",
        "issued_on": today - timedelta(days=d), "expires_on": today - timedelta(days=d) + timedelta(days=730),
    } for mid in ids if rng.random() < CARD_SHARE for d in (rng.randrange(0, 700),)))


def _events_and_registrations(scale: float) -> tuple[int, int]:
    """Events over every unit (past and coming), and registrations of members of their wards."""
    from app.extensions import db
    from app.models import Event, EventRegistration, Member, Unit
    from app.models.base import utcnow

    rng, now = random.Random(12), utcnow()
    units = list(db.session.scalars(select(Unit).order_by(Unit.id)))
    wards = [u for u in units if u.level == max(x.level for x in units)]
    n_events = max(200, int(EXTRA_EVENTS_PER_MILLION * scale))
    start_id = (db.session.scalar(select(func.max(Event.id))) or 0) + 1

    def events():
        for i in range(n_events):
            unit = rng.choice(wards) if rng.random() < 0.8 else rng.choice(units)
            start = now + timedelta(days=rng.randrange(-1500, 120), hours=rng.randrange(0, 24))
            yield {"id": start_id + i, "title": f"Bench event {i}", "event_type": "meeting", "unit_id": unit.id,
                   "start_at": start, "end_at": start + timedelta(hours=3), "capacity": rng.choice((None, 50, 200)),
                   "registration_required": True, "status": "upcoming", "checkin_rule": "once",
                   "walk_ins_allowed": False, "created_at": now, "updated_at": now}

    made = _bulk(Event, events())
    ward_ids = {w.id for w in wards}
    bench_events = [(e.id, e.unit_id) for e in db.session.execute(
        select(Event.id, Event.unit_id).where(Event.id >= start_id, Event.unit_id.in_(ward_ids)))]
    n_regs = max(1000, int(REGISTRATIONS_PER_MILLION * scale))
    per_event = max(1, n_regs // max(1, len(bench_events)))
    max_member = db.session.scalar(select(func.max(Member.id)))
    n_wards = len(wards)
    ward_index = {w.id: i for i, w in enumerate(sorted(wards, key=lambda w: w.id))}

    def registrations():
        # generate_members puts member i in wards[i % len(wards)]: members of a ward without a query.
        for event_id, unit_id in bench_events:
            offset = ward_index[unit_id]
            picks = set()
            for _ in range(per_event):
                k = rng.randrange(0, max(1, max_member // n_wards))
                mid = k * n_wards + offset
                if 0 < mid <= max_member:
                    picks.add(mid)
            for j, mid in enumerate(sorted(picks)):
                yield {"event_id": event_id, "member_id": mid, "status": rng.choice(("registered", "attended",
                                                                                     "cancelled", "no_show")),
                       "source": "self", "registered_at": now - timedelta(days=j % 90), "updated_at": now}

    return made, _bulk(EventRegistration, registrations())


def _prepare(scale: float):
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.models import Event, EventRegistration, Member, MembershipCard
    from app.services.seed import seed_demo
    from bench.data import generate_members

    count = max(3000, int(1_000_000 * scale))
    workdir = _workdir()
    os.environ["MUSTER_INSTANCE_DIR"] = str(workdir)
    config = Config()
    config.SQLALCHEMY_DATABASE_URI = os.environ.get("BENCH_PORTAL_DATABASE_URL",
                                                    f"sqlite:///{workdir / f'portal-{count}.db'}")
    config.CARD_KEYS_DIR = str(workdir / "card_keys")
    config.PUBLIC_URL = "https://members.example.org"
    config.RATELIMIT_ENABLED = False
    app = create_app(config)
    captured = _add_baseline(app)
    with app.app_context():
        upgrade(revision="heads")
        existing = db.session.scalar(select(func.count()).select_from(Member))
        if existing < count:
            started = time.perf_counter()
            seed_demo(member_count=2000)
            db.session.commit()
            first = (db.session.scalar(select(func.max(Member.id))) or 0) + 1
            generate_members(count - db.session.scalar(select(func.count()).select_from(Member)))
            cards = _cards(first)
            events, regs = _events_and_registrations(count / 1_000_000)
            print(f"portal bench data: {count} members, {cards} cards, {events} events, {regs} registrations "
                  f"in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            if db.engine.dialect.name == "sqlite":
                db.session.execute(db.text("ANALYZE"))
                db.session.commit()
        sizes = {
            "members": db.session.scalar(select(func.count()).select_from(Member)),
            "cards": db.session.scalar(select(func.count()).select_from(MembershipCard)),
            "events": db.session.scalar(select(func.count()).select_from(Event)),
            "registrations": db.session.scalar(select(func.count()).select_from(EventRegistration)),
        }
    return app, captured, sizes


# --- the baseline: the same template and data, no queries -------------------------------------


def _add_baseline(app):
    """``/bench/plain/<page>``: render the template a real request of ``page`` rendered, with its data.

    Real requests of the dashboard and the card page record their template and
    the view's own variables (Flask's ``template_rendered`` signal, minus what
    context processors add), and the user Flask-Login loaded. The plain route
    hands that user to Flask-Login (``g._login_user``: no user query) and
    renders the template with those variables (and the role grants the
    layout's menu asks app.security about, as that request cached them): the
    same HTML, from data already in memory.
    """
    from flask import g, render_template, request, template_rendered
    from flask_login import current_user

    captured: dict[str, tuple] = {}

    def record(sender, template, context, **extra):
        page = request.headers.get("X-Bench-Capture")
        if page and page not in captured:
            grants = {key: g.get(key) for key in GRANT_CACHES if g.get(key) is not None}
            captured[page] = (template.name, dict(context), current_user._get_current_object(), grants,
                              request.url_rule)

    template_rendered.connect(record, app, weak=False)

    with app.test_request_context("/"):
        injected: dict = {}
        app.update_template_context(injected)  # what Flask and the context processors add to every template
    skip = set(injected) | set(app.jinja_env.globals)

    def plain(page: str):
        name, context, user, grants, rule = captured[page]
        g._login_user = user
        request.url_rule = rule  # the menu marks the page it is on (request.endpoint)
        for key, value in grants.items():  # the user's roles as app.security cached them in that request
            setattr(g, key, value)
        return render_template(name, **{k: v for k, v in context.items() if k not in skip})

    app.add_url_rule("/bench/plain/<page>", "bench_plain", plain)
    return captured


# --- measuring -----------------------------------------------------------------------------------


class SqlCounter:
    """Counts the SQL statements the app's engine runs (per request: reset, request, read)."""

    def __init__(self, engine) -> None:
        self.n = 0
        sa_event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args, **kwargs) -> None:
        self.n += 1


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(client, url: str, counter: SqlCounter, repeat: int = REPEAT) -> dict:
    for _ in range(3):  # warm-up: templates compiled, caches and pages warm
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    counter.n = 0
    client.get(url)
    statements = counter.n
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        response.get_data()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return {"median_ms": round(statistics.median(samples), 2), "p95_ms": round(_pct(samples, 0.95), 2),
            "sql_per_request": statements}


def _login(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    match = CSRF_RE.search(page)
    response = client.post("/login", data={"email": MEMBER_EMAIL, "password": PASSWORD,
                                           "csrf_token": match.group(1) or match.group(2)})
    if response.status_code != 302:
        raise RuntimeError(f"login as {MEMBER_EMAIL} failed: {response.status_code}")


def _weight(client) -> dict:
    """Bytes of the dashboard's HTML and of the stylesheets and scripts it references.

    ``transferred``: what the app sends a browser that accepts gzip but not
    Brotli (the larger of the two; app/static_compression.py compresses static
    CSS and scripts, never pages); ``uncompressed``: the files as they are.
    """
    browser = {"Accept-Encoding": "gzip, deflate"}
    page = client.get("/", headers=browser)
    html = page.get_data()
    sent, plain = {"html": len(html)}, {"html": len(html)}
    for css, js in ASSET_RE.findall(html.decode()):
        url = (css or js).split("?")[0]
        response = client.get(url, headers=browser)
        assert response.status_code == 200, url
        body = response.get_data()
        sent[url] = len(body)
        plain[url] = len(gzip.decompress(body)) if response.headers.get("Content-Encoding") == "gzip" else len(body)
        response.close()
    total, raw = sum(sent.values()), sum(plain.values())
    return {"transferred_bytes": sent, "total_transferred_kb": round(total / 1024, 1),
            "uncompressed_bytes": plain, "total_uncompressed_kb": round(raw / 1024, 1),
            "under_target": total / 1024 < TARGETS["page_weight_kb"]}


def _same_html(a: bytes, b: bytes) -> bool:
    """Is the plain page the real one (but for the CSRF token, which differs per session)?"""
    strip = re.compile(rb'(name="csrf_token"[^>]*value=")[^"]+"')
    return strip.sub(rb"\1", a) == strip.sub(rb"\1", b)


def run(scale: float) -> dict:
    from app.extensions import db

    app, _captured, sizes = _prepare(scale)
    with app.app_context():
        counter = SqlCounter(db.engine)
    member = app.test_client()
    _login(member)
    pages = {"dashboard": "/", "card": "/card"}
    for page, url in pages.items():  # one real request of each page records its template and data
        member.get(url, headers={"X-Bench-Capture": page})
    plain = app.test_client()  # anonymous: the plain route gets its user from the captured request
    results = {}
    for page, url in pages.items():
        ours = _timed(member, url, counter)
        floor = _timed(plain, f"/bench/plain/{page}", counter)
        same = _same_html(member.get(url).get_data(), plain.get(f"/bench/plain/{page}").get_data())
        results[page] = {"muster": ours, "template_only": floor, "same_html": same,
                         "median_ratio": round(ours["median_ms"] / floor["median_ms"], 2),
                         "under_target": ours["median_ms"] < TARGETS["median_ms"]}
    return {
        "database": app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0],
        **sizes,
        "repeat": REPEAT,
        **results,
        "page_weight_dashboard": _weight(member),
        "targets": TARGETS,
    }

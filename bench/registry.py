"""Console member list at scale: Muster's view against a plain Flask-Admin ModelView.

Both views run in the same app on the same database in the same run, so the
ratio says what the scoped, index-driven list buys over the naive one
(Flask-Admin's default ILIKE search and joined filters). Medians of repeated
requests through the WSGI stack, logged in as a super admin.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from flask_admin import Admin
from flask_admin.contrib.sqla import ModelView
from flask_admin.theme import Bootstrap4Theme
from sqlalchemy import func, select

REPEAT = int(os.environ.get("BENCH_REPEAT", "9"))
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def _median_ms(client, url: str, repeat: int = REPEAT) -> float:
    response = client.get(url)  # warm-up (and a check that the page works)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return round(statistics.median(samples), 2)


def _prepare(scale: float):
    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.models import Member
    from app.services.seed import seed_demo
    from bench.data import generate_members

    count = int(1_000_000 * scale)
    workdir = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / f"registry-{count}.db"
    os.environ["MUSTER_INSTANCE_DIR"] = str(workdir)
    config = Config()
    config.SQLALCHEMY_DATABASE_URI = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{db_path}")
    config.RATELIMIT_ENABLED = False
    app = create_app(config)

    class NaiveMemberView(ModelView):
        """What Flask-Admin gives out of the box: ILIKE search, filter through a join."""

        column_list = ["membership_number", "first_name", "last_name", "phone", "unit", "status", "joined_on"]
        column_searchable_list = ["first_name", "last_name", "phone", "national_id", "email", "membership_number"]
        column_filters = ["unit.path", "status"]
        page_size = 20

    naive = Admin(app, name="naive", url="/naive", endpoint="naive", theme=Bootstrap4Theme())
    naive.add_view(NaiveMemberView(Member, db.session, endpoint="naive_member"))

    with app.app_context():
        from flask_migrate import upgrade

        upgrade(revision="heads")
        existing = db.session.scalar(select(func.count()).select_from(Member))
        if existing < count:
            started = time.perf_counter()
            seed_demo(member_count=0)
            db.session.commit()
            generate_members(count - existing)
            print(f"generated {count - existing} members in {time.perf_counter() - started:.1f}s",
                  file=__import__("sys").stderr)
        if db.engine.dialect.name == "sqlite":
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
    return app, count


def _login(client, email: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    match = CSRF_RE.search(page)
    token = match.group(1) or match.group(2)
    response = client.post("/login", data={"email": email, "password": "demo-password", "csrf_token": token})
    if response.status_code != 302:
        raise RuntimeError(f"login as {email} failed: {response.status_code}")


def run(scale: float) -> dict:
    from app.extensions import db
    from app.models import Member, Unit

    app, count = _prepare(scale)
    with app.app_context():
        district = db.session.scalar(select(Unit).where(Unit.level == 1).order_by(Unit.id))
        in_district = db.session.scalar(
            select(func.count()).select_from(Member).join(Unit, Unit.id == Member.unit_id)
            .where(Unit.path.startswith(district.path))
        )
        sample = db.session.scalar(select(Member).where(Member.id == count // 2))
        phone, surname_prefix = sample.phone, sample.last_name[:4]
        path_filter_index = next(
            i for i, flt in enumerate(app.extensions["admin"][-1]._views[-1]._filters)
            if "path" in str(flt.column) and flt.operation() == "contains"
        )

    last_page = min(1999, max(0, in_district // 20 - 1))
    client = app.test_client()
    _login(client, "superadmin@demo.test")
    ours = {
        "page_1": _median_ms(client, f"/admin/member/?unit={district.id}"),
        "page_2000": _median_ms(client, f"/admin/member/?unit={district.id}&page={last_page}"),
        "search_phone": _median_ms(client, f"/admin/member/?search={phone.replace('+', '%2B')}"),
        "search_surname_prefix": _median_ms(client, f"/admin/member/?search={surname_prefix}"),
    }
    flt = f"flt0_{path_filter_index}={district.path}"
    naive = {
        "page_1": _median_ms(client, f"/naive/naive_member/?{flt}"),
        "page_2000": _median_ms(client, f"/naive/naive_member/?{flt}&page={last_page}"),
        "search_phone": _median_ms(client, f"/naive/naive_member/?search={phone.replace('+', '%2B')}"),
        "search_surname_prefix": _median_ms(client, f"/naive/naive_member/?search={surname_prefix}"),
    }
    return {
        "database": app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0],
        "members": count,
        "members_in_district": in_district,
        "page_compared": last_page + 1,
        "repeat": REPEAT,
        "muster_ms": ours,
        "naive_modelview_ms": naive,
        "page_2000_over_page_1": round(ours["page_2000"] / ours["page_1"], 2),
        "naive_over_muster": {key: round(naive[key] / ours[key], 2) for key in ours},
        "targets": {"list_ms": 150, "search_ms": 100, "page_2000_over_page_1": 2.0},
    }

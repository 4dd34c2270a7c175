"""Member import and export at scale, against a raw baseline measured in the same run.

- Import: a generated CSV of 100,000 members typed the way wards type them
  (local phone numbers, d/m/y dates, wards by code), through
  ``services.imports.import_file`` exactly as `flask members import` runs it
  (validation, lookups, batches of 1,000 committed one by one). The baseline
  is a raw DBAPI ``executemany`` of the same, already clean, rows into the same
  table with the same batch commits. Peak RSS growth is sampled during each run.
- Export: 1,000,000 members as CSV through the console route
  (/admin/member/export/), streamed and consumed as a browser would, as a super
  admin; time and peak RSS growth.

SQLite always; PostgreSQL too when BENCH_PG_URL is set (a server URL: the
benchmark creates and drops its own database, muster_bench_import).
"""

from __future__ import annotations

import csv
import gc
import os
import random
import tempfile
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path

IMPORT_ROWS = 100_000
EXPORT_ROWS = 1_000_000
BATCH = 1000
PG_DATABASE = "muster_bench_import"


class PeakRss:
    """Samples this process's resident memory while a block runs; ``growth_mb`` is peak minus start."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.start = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mb(self) -> float:
        return round((self.peak - self.start) / 1024 / 1024, 1)


def _people(count: int, wards: list[tuple[int, str]], seed: int = 11):
    """(csv row, clean values) per generated person."""
    from app.services.members import fold
    from app.services.seed import FIRST_NAMES, LAST_NAMES

    rng = random.Random(seed)
    today = date.today()
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES) + rng.choice(("", "a", "e", "wa"))
        born = date(1950 + rng.randrange(55), 1 + rng.randrange(12), 1 + rng.randrange(28))
        unit_id, code = wards[i % len(wards)]
        national_id = f"IMP{i:07d}/{i % 97:02d}/1"
        local = f"0977{i:06d}"
        email = f"{fold(first)}.{fold(last)}{i}@example.org" if i % 2 else ""
        row = [last, first, national_id, f"{local[:4]} {local[4:7]} {local[7:]}", email,
               "F" if i % 2 else "M", born.strftime("%d/%m/%Y"), code]
        clean = {"first_name": first, "last_name": last, "surname_key": fold(last), "national_id": national_id,
                 "phone": "+260" + local[1:], "email": email or None, "gender": "female" if i % 2 else "male",
                 "date_of_birth": born, "unit_id": unit_id, "status": "pending", "joined_on": today,
                 "membership_number": f"R{i:08d}"}
        yield row, clean


def _app(url: str, workdir: Path):
    from app import create_app
    from app.config import Config

    os.environ["MUSTER_INSTANCE_DIR"] = str(workdir)
    config = Config()
    config.SQLALCHEMY_DATABASE_URI = url
    config.RATELIMIT_ENABLED = False
    return create_app(config)


def _reset(app) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.extensions import db
    from app.services.seed import seed_demo

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            db.drop_all()
            with db.engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(revision="heads")
        seed_demo(member_count=0)
        db.session.commit()


def _clear_members() -> None:
    from sqlalchemy import text

    from app.extensions import db

    db.session.execute(text("DELETE FROM member_tags"))
    db.session.execute(text("DELETE FROM member_status_changes"))
    db.session.execute(text("DELETE FROM audit_entries WHERE action LIKE 'member%'"))
    db.session.execute(text("DELETE FROM members"))
    db.session.commit()


def _bench_import(app, rows: int, workdir: Path) -> dict:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Member, Unit
    from app.services import imports

    with app.app_context():
        dialect = db.engine.dialect.name
        last_level = db.session.scalar(select(func.max(Unit.level)))
        wards = list(db.session.execute(select(Unit.id, Unit.code).where(Unit.level == last_level)
                                        .order_by(Unit.id)).all())
        path = workdir / f"import-{rows}.csv"
        clean_rows = []
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["Surname", "First name", "ID No", "Cell", "E-mail", "Sex", "Date of birth", "Ward"])
            for row, clean in _people(rows, wards):
                writer.writerow(row)
                clean_rows.append(clean)

        # Baseline: raw executemany of the same clean rows, committed per batch like the import.
        now = datetime.now(timezone.utc)
        columns = list(clean_rows[0]) + ["created_at", "updated_at"]
        marks = ", ".join(["%s" if dialect == "postgresql" else "?"] * len(columns))
        sql = f"INSERT INTO members ({', '.join(columns)}) VALUES ({marks})"
        stamp = now if dialect == "postgresql" else now.replace(tzinfo=None).isoformat(sep=" ")
        tuples = [tuple(c.values()) + (stamp, stamp) for c in clean_rows]
        if dialect == "sqlite":
            tuples = [tuple(v.isoformat() if isinstance(v, date) else v for v in t) for t in tuples]
        del clean_rows
        db.session.commit()  # end this session's read transaction before another connection writes
        raw_conn = db.engine.raw_connection()
        try:
            cursor = raw_conn.cursor()
            started = time.perf_counter()
            for i in range(0, len(tuples), BATCH):
                if dialect == "sqlite":
                    cursor.execute("BEGIN")
                cursor.executemany(sql, tuples[i:i + BATCH])
                raw_conn.commit()
            raw_seconds = time.perf_counter() - started
        finally:
            raw_conn.close()
        del tuples
        assert db.session.scalar(select(func.count()).select_from(Member)) == rows
        _clear_members()
        db.session.remove()

        info = imports.inspect_file(path)
        settings = imports.ImportSettings(mapping=imports.guess_mapping(info.headers), batch_size=BATCH)

        def commit(progress):
            db.session.commit()

        with PeakRss() as memory:
            started = time.perf_counter()
            result = imports.import_file(None, path, info, settings, filename=path.name, on_batch=commit,
                                         total=rows)
            db.session.commit()
            seconds = time.perf_counter() - started
        assert result.summary()["new"] == rows, result.summary()
        # Idempotence at scale: the same file again changes nothing.
        started = time.perf_counter()
        again = imports.import_file(None, path, info, settings, filename=path.name, on_batch=commit, total=rows)
        db.session.commit()
        rerun_seconds = time.perf_counter() - started
        assert again.summary()["unchanged"] == rows, again.summary()
        db.session.remove()
    return {
        "rows": rows,
        "file_mb": round(path.stat().st_size / 1024 / 1024, 1),
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "raw_executemany_seconds": round(raw_seconds, 2),
        "raw_executemany_rows_per_s": round(rows / raw_seconds),
        "ratio_vs_raw": round((rows / seconds) / (rows / raw_seconds), 3),
        "rss_growth_mb": memory.growth_mb,
        "rerun_same_file_seconds": round(rerun_seconds, 2),
        "rerun_unchanged": again.summary()["unchanged"],
    }


def _login(client, email: str) -> None:
    import re

    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    response = client.post("/login", data={"email": email, "password": "demo-password", "csrf_token": match.group(1)})
    if response.status_code != 302:
        raise RuntimeError(f"login as {email} failed: {response.status_code}")


def _bench_export(app, rows: int) -> dict:
    from sqlalchemy import func, select, text

    from app.extensions import db
    from app.models import Member
    from bench.data import generate_members

    with app.app_context():
        existing = db.session.scalar(select(func.count()).select_from(Member).where(Member.deleted_at.is_(None)))
        if existing < rows:
            generate_members(rows - existing)
        if db.engine.dialect.name == "sqlite":
            db.session.execute(text("ANALYZE"))
        else:
            db.session.execute(text("ANALYZE members"))
        db.session.commit()
        total = db.session.scalar(select(func.count()).select_from(Member).where(Member.deleted_at.is_(None)))
        db.session.remove()
    client = app.test_client()
    _login(client, "superadmin@demo.test")
    with PeakRss() as memory:
        started = time.perf_counter()
        response = client.get("/admin/member/export/?format=csv", buffered=False)
        size = lines = 0
        first_byte = None
        for piece in response.response:
            if first_byte is None:
                first_byte = time.perf_counter() - started
            size += len(piece)
            lines += piece.count(b"\n")
        response.close()
        seconds = time.perf_counter() - started
    if lines - 1 != total:
        raise RuntimeError(f"exported {lines - 1} rows of {total}")
    return {
        "rows": total,
        "seconds": round(seconds, 2),
        "rows_per_s": round(total / seconds),
        "first_byte_ms": round((first_byte or 0) * 1000, 1),
        "csv_mb": round(size / 1024 / 1024, 1),
        "rss_growth_mb": memory.growth_mb,
    }


def _run_database(url: str, workdir: Path, import_rows: int, export_rows: int) -> dict:
    app = _app(url, workdir)
    _reset(app)
    out = {"database": url.split(":")[0], "import": _bench_import(app, import_rows, workdir)}
    out["export_csv"] = _bench_export(app, export_rows)
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()
    return out


def run(scale: float) -> dict:
    import_rows = max(1000, int(IMPORT_ROWS * scale))
    export_rows = max(1000, int(EXPORT_ROWS * scale))
    workdir = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench")) / "imports"
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "imports.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    results = {"sqlite": _run_database(f"sqlite:///{db_path}", workdir, import_rows, export_rows)}
    pg_url = os.environ.get("BENCH_PG_URL")
    if pg_url:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        if pg_url.startswith("postgresql://"):
            pg_url = "postgresql+psycopg://" + pg_url[len("postgresql://"):]
        server = make_url(pg_url)
        admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {PG_DATABASE}"))
        try:
            target = server.set(database=PG_DATABASE).render_as_string(hide_password=False)
            results["postgresql"] = _run_database(target, workdir, import_rows, export_rows)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
            admin.dispose()
    for path in workdir.glob("import-*.csv"):
        path.unlink()
    results["targets"] = {"import_rows_per_s": 5000, "import_rss_growth_mb": 100, "export_seconds": 20}
    return results

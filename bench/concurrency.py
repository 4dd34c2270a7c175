"""SQLite under concurrent use: exports, updates and new-token reads at once (issue 8).

The embedded default (one SQLite file) served the way ``make run`` serves it:
gunicorn, 2 workers of 4 threads, on 127.0.0.1. The issue's mix is sent twice
in the same run, on the same data:

- 50 member exports (35 through the API, 15 through the console), each
  writing its audit entry, then streaming every member as CSV;
- 30 member updates (``PUT /api/v1/members/<id>``);
- 15 reads with newly issued API tokens (each writing the token's last use),

first one request at a time (the baseline), then all of them released
together, each from its own connection. Reported per run: answers by kind
and status, median and p95 latency, wall time; then the ratio of the mixed
run's median latency to the one-at-a-time median (overall and per kind) and
of the wall times, the "database is locked" lines the server logged, and
checks that every export was complete, every update applied and every new
token's use recorded. The target is no answer of 5xx (before the fix, 57 of
the mixed run's 95 at BENCH_SCALE=0.1).

Knobs: BENCH_SCALE (members = 2,000 x scale, at least 200), BENCH_DIR.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from bench.servers import Gunicorn

ROOT = Path(__file__).resolve().parent.parent
API_EXPORTS, CONSOLE_EXPORTS, UPDATES, NEW_TOKEN_READS = 35, 15, 30, 15
PASSWORD = "demo-password"  # the demo logins' (app.services.seed)
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
RUNS = ("one_at_a_time", "mixed")


def _prepare(url: str, count: int) -> dict:
    """Schema, demo geography and logins, ``count`` members, and the API tokens of both runs."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.models import Member, User
    from app.services.auth import issue_token
    from app.services.seed import seed_demo
    from bench.data import generate_members

    config = Config()
    config.SQLALCHEMY_DATABASE_URI = url
    app = create_app(config)
    with app.app_context():
        upgrade(revision="heads")
        seed_demo(member_count=0)
        db.session.commit()
        generate_members(count)
        users = {u.email: u for u in db.session.scalars(select(User))}
        ids = list(db.session.scalars(select(Member.id).order_by(Member.id).limit(UPDATES * len(RUNS))))
        info = {
            "admin_token": issue_token(users["admin@demo.test"], name="bench")[0],
            # Never used before their run: each first read writes the token's last use.
            "fresh": {run: [issue_token(users["coordinator@demo.test"], name=f"{run} {i}")[0]
                            for i in range(NEW_TOKEN_READS)] for run in RUNS},
            "warm_token": issue_token(users["coordinator@demo.test"], name="warm-up")[0],
            "update_ids": {run: ids[i * UPDATES:(i + 1) * UPDATES] for i, run in enumerate(RUNS)},
        }
        db.session.commit()
        db.engine.dispose()
    return info


def _console_cookies(base: str) -> dict[str, str]:
    with requests.Session() as http:
        match = CSRF_RE.search(http.get(f"{base}/login", timeout=30).text)
        answer = http.post(f"{base}/login", allow_redirects=False, timeout=30, data={
            "email": "superadmin@demo.test", "password": PASSWORD, "csrf_token": match.group(1) or match.group(2)})
        if answer.status_code != 302:
            raise RuntimeError(f"console login answered {answer.status_code}")
        return http.cookies.get_dict()


def _csv_rows(body: bytes) -> int:
    return len(list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))) - 1


def _work(run: str, base: str, info: dict, cookies: dict, members: int, in_ward: int) -> list[tuple[str, object]]:
    """The mix as (kind, call); each call answers (status, right?)."""
    admin = {"Authorization": f"Bearer {info['admin_token']}"}

    def export_api():
        answer = requests.get(f"{base}/api/v1/members/export", headers=admin, timeout=300)
        return answer.status_code, answer.ok and _csv_rows(answer.content) == members

    def export_console():
        answer = requests.get(f"{base}/admin/member/export/?format=csv", cookies=cookies, timeout=300)
        return answer.status_code, answer.ok and _csv_rows(answer.content) == members

    def update(member_id: int, note: str):
        answer = requests.put(f"{base}/api/v1/members/{member_id}", headers=admin, json={"notes": note}, timeout=300)
        return answer.status_code, answer.ok and answer.json()["notes"] == note

    def read_with_new_token(token: str):
        answer = requests.get(f"{base}/api/v1/members?per_page=20", timeout=300,
                              headers={"Authorization": f"Bearer {token}"})
        return answer.status_code, answer.ok and answer.json()["total"] == in_ward

    work: list[tuple[str, object]] = [("export_api", export_api)] * API_EXPORTS
    work += [("export_console", export_console)] * CONSOLE_EXPORTS
    work += [("update", lambda m=m: update(m, f"{run} {m}")) for m in info["update_ids"][run]]
    work += [("read_with_new_token", lambda t=t: read_with_new_token(t)) for t in info["fresh"][run]]
    random.Random(8).shuffle(work)
    return work


def _timed(kind: str, call) -> dict:
    started = time.perf_counter()
    try:
        status, right = call()
    except requests.RequestException as exc:
        status, right = type(exc).__name__, False
    return {"kind": kind, "status": status, "right": right, "ms": (time.perf_counter() - started) * 1000}


def _one_at_a_time(work) -> list[dict]:
    return [_timed(kind, call) for kind, call in work]


def _all_at_once(work) -> list[dict]:
    start = threading.Barrier(len(work))
    results: list[dict] = [{}] * len(work)

    def client(i: int) -> None:
        kind, call = work[i]
        start.wait(timeout=60)
        results[i] = _timed(kind, call)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _summary(results: list[dict], seconds: float) -> dict:
    def stats(rows: list[dict]) -> dict:
        ms = sorted(r["ms"] for r in rows)
        return {"median_ms": round(statistics.median(ms), 1), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1)}

    kinds = sorted({r["kind"] for r in results})
    return {
        "seconds": round(seconds, 2),
        "answers": {kind: dict(Counter(str(r["status"]) for r in results if r["kind"] == kind)) for kind in kinds},
        "server_errors": sum(1 for r in results if not isinstance(r["status"], int) or r["status"] >= 500),
        "wrong_content": sum(1 for r in results if not r["right"]),
        "latency": {"all": stats(results), **{kind: stats([r for r in results if r["kind"] == kind]) for kind in kinds}},
    }


def _database_after(url: str, info: dict) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            applied = {run: conn.execute(text("SELECT count(*) FROM members WHERE notes = :prefix || ' ' || id"),
                                         {"prefix": run}).scalar() for run in RUNS}
            audited = conn.execute(text("SELECT count(*) FROM audit_entries WHERE action = 'members.export'")).scalar()
            unused = conn.execute(text("SELECT count(*) FROM api_tokens WHERE last_used_at IS NULL")).scalar()
    finally:
        engine.dispose()
    return {"updates_applied": applied, "export_audit_entries": audited, "tokens_never_used": unused}


def run(scale: float) -> dict:
    members = max(200, int(2000 * scale))
    workdir = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench")) / "concurrency"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    url = f"sqlite:///{workdir / 'muster.db'}"
    os.environ["MUSTER_INSTANCE_DIR"] = str(workdir)  # before the app is imported: its generated files go here
    info = _prepare(url, members)
    server = Gunicorn("wsgi:app", {"DATABASE_URL": url, "MUSTER_INSTANCE_DIR": str(workdir)},
                      ["--workers", "2", "--threads", "4"], log=workdir / "gunicorn.log")
    server.wait("/login")
    try:
        cookies = _console_cookies(server.base)
        warm = requests.get(f"{server.base}/api/v1/members?per_page=1", timeout=60,
                            headers={"Authorization": f"Bearer {info['warm_token']}"})
        in_ward = warm.json()["total"]  # what every coordinator read must find
        summaries = {}
        for name, how in (("one_at_a_time", _one_at_a_time), ("mixed", _all_at_once)):
            work = _work(name, server.base, info, cookies, members, in_ward)
            started = time.perf_counter()
            results = how(work)
            summaries[name] = _summary(results, time.perf_counter() - started)
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    alone, mixed = summaries["one_at_a_time"]["latency"], summaries["mixed"]["latency"]
    return {
        "database": "sqlite (file, WAL)",
        "server": "gunicorn, 2 workers (gthread x 4), 127.0.0.1",
        "cpus": os.cpu_count(),
        "members": members,
        "requests_per_run": {"export_api": API_EXPORTS, "export_console": CONSOLE_EXPORTS, "update": UPDATES,
                             "read_with_new_token": NEW_TOKEN_READS},
        **summaries,
        "mixed_over_one_at_a_time_median": {k: round(mixed[k]["median_ms"] / alone[k]["median_ms"], 2) for k in alone},
        # 95 requests on 8 server threads queue, so the median mostly measures the queue; the wall
        # times say whether running them together costs more than running them in a row.
        "mixed_over_one_at_a_time_wall_time": round(summaries["mixed"]["seconds"] / summaries["one_at_a_time"]["seconds"], 2),
        "server_log": {"database_is_locked": log.count("database is locked"), "tracebacks": log.count("Traceback")},
        "database_after": _database_after(url, info),
        "target": "0 server errors in the mixed run",
        "meets_target": summaries["mixed"]["server_errors"] == 0 and summaries["one_at_a_time"]["server_errors"] == 0,
    }


if __name__ == "__main__":  # python -m bench.concurrency
    import json

    print(json.dumps(run(float(os.environ.get("BENCH_SCALE", "1"))), indent=2))

"""Where one door check-in's time goes, in-process: cProfile over ``POST /api/v1/events/<id>/checkin``.

``python -m bench.checkin_profile`` (PostgreSQL at BENCH_PG_URL, as ``bench/checkin.py``):
the same data as the HTTP bench (``checkin._prepare``, in a database of its
own, BENCH_CHECKIN_PROFILE_DB), then every card is checked in once by calling
the WSGI app directly with prepared environs (no HTTP, no test-client work in
the figures). It prints, per check-in: CPU milliseconds without the profiler
(half the cards, in six chunks: the quietest and the median chunk) next to
``bench/checkin_bare.py``'s route driven the same way, in alternating chunks,
SQL statements, and the functions with the largest cumulative time under
cProfile (BENCH_CHECKIN_PROFILE_TOP rows, default 40; profiling inflates the
absolute figures, the proportions are what it is for).
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from bench.checkin import _admin_sql, _prepare, _url

DB_NAME = os.environ.get("BENCH_CHECKIN_PROFILE_DB", "muster_bench_checkin_profile")
TOP = int(os.environ.get("BENCH_CHECKIN_PROFILE_TOP", "40"))
CHUNKS = 6


def _environs(path: str, bodies: list[bytes], tokens: list[str]) -> list[dict]:
    from werkzeug.test import EnvironBuilder

    environs = []
    for i, body in enumerate(bodies):
        builder = EnvironBuilder(path=path, method="POST", data=body, content_type="application/json",
                                 headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"})
        environ = builder.get_environ()
        environ["_body"] = body  # a fresh input stream per run (see _drive)
        environs.append(environ)
        builder.close()
    return environs


def _drive(app, environs: list[dict]) -> list[str]:
    """Run each request through the WSGI app; the ``result`` of each answer."""
    results = []
    for environ in environs:
        status: list[str] = []
        chunks = app(dict(environ, **{"wsgi.input": io.BytesIO(environ["_body"])}),
                     lambda s, h, exc_info=None: status.append(s))
        payload = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
        results.append(json.loads(payload).get("result") if status[0].startswith("200") else status[0])
    return results


def run(scale: float) -> dict:
    from sqlalchemy import event as sa_event

    from app import create_app
    from app.config import Config
    from app.extensions import db

    count = max(200, int(6000 * scale))
    workdir = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench")) / "checkin_profile"
    workdir.mkdir(parents=True, exist_ok=True)
    _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')
    try:
        info = _prepare(count, workdir, DB_NAME)
        config = Config()
        config.SQLALCHEMY_DATABASE_URI = _url(DB_NAME)
        config.CARD_KEYS_DIR = info["keys_dir"]
        config.SECRET_KEY = "bench-secret-key"
        app = create_app(config)
        path = f"/api/v1/events/{info['event_id']}/checkin"

        def prepared(credentials: list[str], prefix: str, gate: str | None = None) -> list[dict]:
            bodies = [json.dumps({"token": t, "gate": gate or f"Gate {i % 6}", "nonce": f"{prefix}{i}"}).encode()
                      for i, t in enumerate(credentials)]
            return _environs(path, bodies, info["tokens"])

        half = count // 2
        warm = prepared([info["credentials"][-1]] * 100, "w", "warm-up")
        timed = prepared(info["credentials"][:half], "t")
        profiled = prepared(info["credentials"][half:count], "p")

        statements: dict = {"n": 0, "last": []}

        def counted(_conn, _cursor, sql, *_args, **_kwargs):
            statements["n"] += 1
            statements["last"].append(" ".join(sql.split())[:140])

        with app.app_context():
            engine = db.engine
        sa_event.listen(engine, "before_cursor_execute", counted)

        os.environ["BENCH_DATABASE_URL"] = _url(DB_NAME)
        from bench import checkin_bare

        bare_path = f"/events/{info['bare_event_id']}/checkin"
        bare = _environs(bare_path, [json.dumps({"member_id": m, "gate": f"Gate {i % 6}"}).encode()
                                     for i, m in enumerate(info["member_ids"][:half])], info["tokens"])

        _drive(app, warm)
        _drive(checkin_bare.app, bare[:50])
        statements["n"] = 0
        results, cpu_ms, wall_ms, bare_cpu_ms = [], [], [], []
        for part in range(CHUNKS):  # the machine is shared: chunks alternate, the quietest is the figure
            chunk = timed[part::CHUNKS]
            cpu, wall = time.process_time(), time.perf_counter()
            results += _drive(app, chunk)
            cpu_ms.append((time.process_time() - cpu) * 1000 / len(chunk))
            wall_ms.append((time.perf_counter() - wall) * 1000 / len(chunk))
            chunk = bare[50:][part::CHUNKS]
            cpu = time.process_time()
            _drive(checkin_bare.app, chunk)
            bare_cpu_ms.append((time.process_time() - cpu) * 1000 / len(chunk))
        per_request_statements = statements["n"] / len(timed)
        statements["last"] = []
        _drive(app, prepared([info["credentials"][0]], "s"))  # one more scan (already checked in): its SQL
        one_scan = list(statements["last"])
        checkin_bare.engine.dispose()

        profiler = cProfile.Profile()
        profiler.enable()
        results += _drive(app, profiled)
        profiler.disable()
        engine.dispose()
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')

    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = []
    own_by_package: dict[str, float] = {}
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():
        where = filename.replace(str(Path(__file__).resolve().parent.parent) + "/", "")
        where = where.split("site-packages/")[-1]
        rows.append((cumtime, tottime, calls, f"{where}:{line}({name})"))
        package = where.split("/")[0].split(".py")[0] if "/" in where or where.endswith(".py") else "builtins"
        own_by_package[package] = own_by_package.get(package, 0.0) + tottime
    rows.sort(reverse=True)
    n = len(profiled)
    by_own = sorted(rows, key=lambda row: -row[1])[:TOP]
    top = [{"cum_ms": round(c * 1000 / n, 3), "own_ms": round(t * 1000 / n, 3), "calls": round(k / n, 1), "function": f}
           for c, t, k, f in rows[:TOP]]
    counts: dict[str, int] = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return {
        "checkins": len(results),
        "results": counts,
        "cpu_ms_per_checkin": {"min": round(min(cpu_ms), 3), "median": round(statistics.median(cpu_ms), 3)},
        "wall_ms_per_checkin": {"min": round(min(wall_ms), 3), "median": round(statistics.median(wall_ms), 3)},
        "bare_route_cpu_ms": {"min": round(min(bare_cpu_ms), 3), "median": round(statistics.median(bare_cpu_ms), 3)},
        "cpu_ratio_to_bare": round(min(cpu_ms) / min(bare_cpu_ms), 2),
        "sql_statements_per_checkin": round(per_request_statements, 2),
        "sql_of_a_repeat_scan": one_scan,
        "profiled_ms_per_checkin": round(total * 1000 / n, 3),
        "own_ms_by_package": {k: round(v * 1000 / n, 3) for k, v in
                              sorted(own_by_package.items(), key=lambda kv: -kv[1]) if v * 1000 / n >= 0.02},
        "top_cumulative": top,
        "top_own": [{"own_ms": round(t * 1000 / n, 3), "calls": round(k / n, 1), "function": f}
                    for _c, t, k, f in by_own],
    }


if __name__ == "__main__":  # python -m bench.checkin_profile
    result = run(float(os.environ.get("BENCH_SCALE", "0.2")))
    top = result.pop("top_cumulative")
    own = result.pop("top_own")
    print(json.dumps(result, indent=2))
    print(f"{'cum ms':>8} {'own ms':>8} {'calls':>6}  function")
    for row in top:
        print(f"{row['cum_ms']:8.3f} {row['own_ms']:8.3f} {row['calls']:6.1f}  {row['function']}")
    print(f"\n{'own ms':>8} {'calls':>6}  function (by own time)")
    for row in own:
        print(f"{row['own_ms']:8.3f} {row['calls']:6.1f}  {row['function']}")

"""The queue, mail and the door while a print run works: `make bench` with BENCH_ONLY=queue.

Three measurements, each against a baseline doing the same work in the same run:

1. **Enqueue-to-start latency** of a task on the embedded store (SqliteHuey,
   a file) and on Redis (RedisHuey), through a real consumer on threads with
   Muster's settings (``queue.create_consumer``): tasks enqueued one at a
   time at a steady pace, the latency being the time from ``enqueue`` to
   the task's first line. Baseline: the same hand-over through a plain
   in-process ``queue.Queue`` to a thread (what no store costs).
2. **Mail throughput**: 1,000 messages recorded with ``send_mail`` and
   delivered by a real consumer (4 threads) to a local aiosmtpd server,
   counted when the server has them all; against plain smtplib sending the
   same 1,000 rendered messages over one connection in one loop.
3. **The door during a print run**: bench/checkin.py's setup (PostgreSQL,
   gunicorn, cards, gate tokens) plus a ``flask worker`` process; check-ins
   per second without a print job, and while ``POST /api/v1/cards/print``
   runs a 10,000-card print sheet in the worker, in alternating rounds
   (BENCH_QUEUE_DOOR_ROUNDS, default 2). The print run must not slow the
   web processes beyond the CPU it takes on a 2-core machine.

BENCH_SCALE scales the task counts and the print run (1.0 = 10,000 cards).
"""

from __future__ import annotations

import json
import os
import queue as stdlib_queue
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import checkin
from bench.servers import Gunicorn

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PACE_SECONDS = 0.02  # one task every 20 ms: a steady trickle, as from web requests
_started: dict[int, float] = {}


def _stamp(n: int) -> None:
    _started[n] = time.perf_counter()


def _stamp_task():
    """The bench's task, registered once on Muster's queue object."""
    from app import queue

    if "task" not in _stamp.__dict__:
        _stamp.task = queue.huey.task(name="bench.stamp")(_stamp)
    return _stamp.task


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def _summary(latencies_s: list[float]) -> dict:
    ms = [x * 1000 for x in latencies_s]
    return {"tasks": len(ms), "p50_ms": round(statistics.median(ms), 2), "p95_ms": round(_pct(ms, 0.95), 2),
            "max_ms": round(max(ms), 2)}


# --- 1. enqueue-to-start latency ---------------------------------------------------------


def _latency_on(url: str | None, workdir: Path, count: int) -> dict:
    from app import queue

    with queue.using(url, workdir):
        queue.huey.flush()
        described = queue.describe()
        stamp = _stamp_task()
        with queue.running_consumer(2):
            time.sleep(0.5)  # the consumer is polling
            sent: dict[int, float] = {}
            for n in range(count):
                sent[n] = time.perf_counter()
                stamp(n)
                time.sleep(PACE_SECONDS)
            deadline = time.monotonic() + 30
            while len([n for n in sent if n in _started]) < count and time.monotonic() < deadline:
                time.sleep(0.05)
        latencies = [_started[n] - sent[n] for n in sent if n in _started]
    _started.clear()
    return {"store": described, **_summary(latencies), "lost": count - len(latencies)}


def _latency_plain_thread(count: int) -> dict:
    handoff: stdlib_queue.Queue = stdlib_queue.Queue()
    started: dict[int, float] = {}

    def consume() -> None:
        while (n := handoff.get()) is not None:
            started[n] = time.perf_counter()

    thread = threading.Thread(target=consume)
    thread.start()
    sent = {}
    for n in range(count):
        sent[n] = time.perf_counter()
        handoff.put(n)
        time.sleep(PACE_SECONDS)
    handoff.put(None)
    thread.join()
    return {"store": "queue.Queue in this process", **_summary([started[n] - sent[n] for n in sent])}


# --- 2. mail throughput ---------------------------------------------------------------------


class _Counting:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
        return "250 OK"


def _wait_count(handler: _Counting, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while handler.count < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return handler.count >= n


def _mail(count: int, workdir: Path) -> dict:
    from aiosmtpd.controller import Controller
    from flask_migrate import upgrade

    from app import create_app, queue
    from app.config import Config
    from app.database import take_write_lock
    from app.extensions import db
    from app.models import MailMessage
    from app.services import mail

    handler = _Counting()
    controller = Controller(handler, hostname="127.0.0.1", port=checkin_free_port())
    controller.start()
    try:
        config = Config()
        config.SQLALCHEMY_DATABASE_URI = f"sqlite:///{workdir / 'mail-bench.db'}"
        config.MAIL_SERVER, config.MAIL_PORT = "127.0.0.1", controller.port
        config.MAIL_BACKEND = "smtp"
        config.MAIL_USE_TLS = config.MAIL_USE_SSL = False
        config.QUEUE_URL = f"sqlite:////{(workdir / 'mail-queue.db').as_posix().lstrip('/')}"
        app = create_app(config)
        with app.app_context():
            upgrade(revision="heads")
            queue.huey.flush()
            # Baseline first: the same messages, rendered once, through one smtplib connection.
            for i in range(count):
                mail.send_mail("test", f"person{i}@example.org", {"sent_at": f"bench {i}"},
                               key=f"bench-render:{i}")
            db.session.flush()
            rendered = [(m.to_address, _as_bytes(m)) for m in db.session.query(MailMessage).order_by(MailMessage.id)]
            db.session.rollback()
            queue.huey.flush()
            start = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", controller.port) as smtp:
                for to, data in rendered:
                    smtp.sendmail(app.config["MAIL_DEFAULT_SENDER"], [to], data)
            plain_seconds = time.perf_counter() - start
            assert _wait_count(handler, count, 30)
            handler.count = 0

            with queue.running_consumer(4):
                start = time.perf_counter()
                for i in range(count):
                    if i % 50 == 0:
                        take_write_lock()  # as a writing request does on SQLite (app/database.py)
                    mail.send_mail("test", f"person{i}@example.org", {"sent_at": f"bench {i}"},
                                   key=f"bench:{i}")
                    if i % 50 == 49:
                        db.session.commit()
                db.session.commit()
                enqueued = time.perf_counter() - start
                delivered = _wait_count(handler, count, 600)
                queued_seconds = time.perf_counter() - start
            sent = db.session.query(MailMessage).filter(MailMessage.status == "sent").count()
            db.engine.dispose()
    finally:
        controller.stop()
    ours = count / queued_seconds
    plain = count / plain_seconds
    return {
        "messages": count, "all_delivered": delivered and sent == count,
        "muster_queue": {"per_second": round(ours, 1), "seconds": round(queued_seconds, 2),
                         "recording_and_enqueue_seconds": round(enqueued, 2), "consumer_threads": 4},
        "plain_smtplib_one_connection": {"per_second": round(plain, 1), "seconds": round(plain_seconds, 2)},
        "ratio_plain_over_muster": round(plain / ours, 2),
    }


def _as_bytes(message) -> bytes:
    from app.services.mail import delivery

    return delivery.build(message).message().as_bytes(linesep="\r\n")


def checkin_free_port() -> int:
    from bench.servers import free_port

    return free_port()


# --- 3. the door during a print run --------------------------------------------------------------


def _job_state(job_id: int) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(checkin._url(checkin.DB_NAME))
    with engine.connect() as conn:
        row = conn.execute(text("SELECT state, done, total FROM jobs WHERE id = :i"), {"i": job_id}).one()
    engine.dispose()
    return {"state": row.state, "done": row.done, "total": row.total}


def _door(scale: float, workdir: Path) -> dict:
    import redis

    cards_to_print = max(500, int(10000 * scale))
    checkins = max(400, int(4000 * scale))
    rounds = int(os.environ.get("BENCH_QUEUE_DOOR_ROUNDS", "2"))
    redis.Redis.from_url(REDIS_URL).flushdb()
    checkin._admin_sql(f'DROP DATABASE IF EXISTS "{checkin.DB_NAME}" WITH (FORCE)',
                       f'CREATE DATABASE "{checkin.DB_NAME}"')
    server = worker = None
    try:
        info = checkin._prepare(max(cards_to_print, checkins), workdir)
        env = {"DATABASE_URL": checkin._url(checkin.DB_NAME), "MUSTER_INSTANCE_DIR": str(workdir),
               "MUSTER_CARD_KEYS_DIR": info["keys_dir"], "SECRET_KEY": "bench-secret-key",
               "MUSTER_QUEUE_URL": REDIS_URL}
        server = Gunicorn("wsgi:app", env, checkin.SERVER_OPTIONS)
        server.wait("/api/v1/openapi.json")
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi.py", "worker", "--workers", "2"],
                                  cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        path = f"/api/v1/events/{info['event_id']}/checkin"

        def headers(i: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {info['tokens'][i % len(info['tokens'])]}",
                    "Content-Type": "application/json"}

        def bodies(part: range) -> list[bytes]:
            return [json.dumps({"token": info["credentials"][i], "gate": f"Gate {i % checkin.CLIENTS}",
                                "nonce": f"n{i}"}).encode() for i in part]

        checkin._load(server.port, path, bodies(range(checkins, checkins + 1)) * 100, headers, checkin.CLIENTS)
        share = checkins // (2 * rounds)
        quiet, busy, jobs_seen = [], [], []
        for r in range(rounds):
            quiet.append(checkin._measured(server, lambda: checkin._load(
                server.port, path, bodies(range(2 * r * share, (2 * r + 1) * share)), headers, checkin.CLIENTS)))
            job_id = _start_print(server.port, info["print_token"], info["area_id"])
            _wait_running(job_id)
            busy.append(checkin._measured(server, lambda: checkin._load(
                server.port, path, bodies(range((2 * r + 1) * share, (2 * r + 2) * share)), headers,
                checkin.CLIENTS)))
            jobs_seen.append({"after_the_busy_round": _job_state(job_id)})
            _wait_done(job_id, timeout=1800)
            jobs_seen[-1]["finished"] = _job_state(job_id)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        if server is not None:
            server.stop()
        checkin._admin_sql(f'DROP DATABASE IF EXISTS "{checkin.DB_NAME}" WITH (FORCE)')
    without, during = checkin._merged(quiet), checkin._merged(busy)
    return {
        "cards_in_each_print_run": cards_to_print, "cpus": os.cpu_count(),
        "checkins_without_a_print_job": without, "checkins_during_a_print_job": during,
        "ratio_during_over_without": round(during["per_second"] / without["per_second"], 2),
        "print_jobs": jobs_seen,
        "note": "The print run works in the flask worker process, never in gunicorn's: on this 2-core machine "
                "it takes one core, so what the door keeps is the share of the CPU left to it.",
    }


def _api(port: int, method: str, path: str, token: str, body: dict | None = None) -> dict:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    answer = conn.getresponse()
    data = json.loads(answer.read() or b"{}")
    conn.close()
    if answer.status >= 400:
        raise RuntimeError(f"{method} {path}: {answer.status} {data}")
    return data


def _start_print(port: int, token: str, area_id: int) -> int:
    return _api(port, "POST", "/api/v1/cards/print", token, {"unit_id": area_id})["job"]["id"]


def _wait_running(job_id: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _job_state(job_id)["done"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"print job {job_id} did not start: {_job_state(job_id)}")
        time.sleep(0.2)


def _wait_done(job_id: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _job_state(job_id)["state"] not in ("succeeded", "failed", "interrupted"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"print job {job_id} did not finish: {_job_state(job_id)}")
        time.sleep(0.5)


def run(scale: float) -> dict:
    workdir = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "muster-bench")) / "queue"
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.db"):
        old.unlink()
    tasks = max(50, int(300 * scale))
    latency = {
        "sqlite_huey": _latency_on(f"sqlite:////{(workdir / 'latency.db').as_posix().lstrip('/')}", workdir, tasks),
        "redis_huey": _latency_on(REDIS_URL, workdir, tasks),
        "baseline_thread_handoff": _latency_plain_thread(tasks),
    }
    mails = _mail(max(100, int(1000 * scale)), workdir)
    door = _door(scale, workdir / "door")
    return {"enqueue_to_start": latency, "mail": mails, "door_during_print": door}


if __name__ == "__main__":  # python -m bench.queue
    print(json.dumps(run(float(os.environ.get("BENCH_SCALE", "1"))), indent=2))

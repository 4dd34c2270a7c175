"""The bulk mail rate (MUSTER_MAIL_RATE) holds across processes, and mail over it waits instead of dropping.

The cross-process tests start real processes that take slots from the same
store (the machine's SQLite file, or Redis) at once; together they get no
more than the limit.
"""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.config import Config
from app.extensions import db
from app.models import MailMessage
from app.models.base import utcnow
from app.services import mail
from app.services.mail import ratelimit
from app.tasks.mail import deliver_mail

REDIS_URL = "redis://127.0.0.1:6379/2"  # the mail helper's Redis db


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")


def _take_slots(uri: str, tries: int, start, results) -> None:
    """In a separate process: try ``tries`` times to take a slot of 5/minute."""
    store = (ratelimit.SQLiteRateStorage(uri) if uri.startswith("muster+sqlite:") else storage_from_string(uri))
    limiter = MovingWindowRateLimiter(store)
    start.wait(timeout=30)
    results.put(sum(limiter.hit(parse("5/minute"), ratelimit.KEY) for _ in range(tries)))


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_workers_in_separate_processes_share_one_count(tmp_path, store):
    if store == "redis":
        _redis_or_skip()
    uri = f"muster+sqlite:///{tmp_path / 'rate.db'}" if store == "sqlite" else REDIS_URL
    first = ratelimit.SQLiteRateStorage(uri) if store == "sqlite" else storage_from_string(uri)
    first.clear(parse("5/minute").key_for(ratelimit.KEY))
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Event(), spawn.Queue()
    workers = [spawn.Process(target=_take_slots, args=(uri, 4, start, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    taken = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert sum(taken) == 5  # 4 tries in each of two processes, five slots a minute (apart: 8)


@pytest.fixture()
def rate(app, monkeypatch, tmp_path):
    """Two bulk messages a minute, counted in a fresh file."""
    monkeypatch.setitem(app.config, "MAIL_RATE", "2/minute")
    monkeypatch.setitem(app.config, "MAIL_RATE_DB", str(tmp_path / "rate.db"))
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    return app


def _bulk(n: int) -> list[MailMessage]:
    return [mail.send_mail("test", f"member{i}@example.org", {"sent_at": "now"}, bulk=True) for i in range(n)]


def test_bulk_mail_over_the_rate_waits_and_is_sent_later(rate, smtp_mail):
    messages = _bulk(3)
    one_off = mail.send_test(None, "admin@example.org")  # not bulk: never waits behind a bulk run
    db.session.commit()
    db.session.expire_all()

    assert [m.status for m in messages] == ["sent", "sent", "queued"]
    assert one_off.status == "sent"
    waiting = messages[2]
    assert waiting.reason == "Waiting for the bulk mail rate (MUSTER_MAIL_RATE)."
    assert waiting.attempts == 0 and waiting.claimed_by is None
    assert utcnow() < waiting.next_attempt_at <= utcnow() + timedelta(seconds=61)
    assert len(smtp_mail.wait_for(3)) == 3

    # A minute on: the window has moved (here: the count is cleared) and the message goes.
    ratelimit.clear()
    waiting.next_attempt_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert deliver_mail.call_local(waiting.id) == "sent"
    assert len(smtp_mail.wait_for(4)) == 4


def test_a_long_bulk_run_is_spread_over_time(rate, smtp_mail):
    messages = _bulk(8)
    db.session.commit()
    db.session.expire_all()
    waiting = [m for m in messages if m.status == "queued"]
    assert len(waiting) == 6
    # Each waits its turn at two a minute, not all for the next window.
    waits = [(m.next_attempt_at - utcnow()).total_seconds() for m in waiting]
    assert max(waits[:2]) <= 61 and waits[-1] > 120 and waits[-1] == max(waits)


def test_the_count_is_kept_in_redis_when_configured(app, monkeypatch, smtp_mail):
    _redis_or_skip()
    monkeypatch.setitem(app.config, "MAIL_RATE", "1/minute")
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_URL)
    assert ratelimit.storage_uri() == REDIS_URL
    ratelimit.clear()
    messages = _bulk(2)
    db.session.commit()
    db.session.expire_all()
    assert [m.status for m in messages] == ["sent", "queued"]
    ratelimit.clear()


def test_no_rate_means_no_wait(app, smtp_mail):
    assert app.config["MAIL_RATE"] == ""
    messages = _bulk(5)
    db.session.commit()
    db.session.expire_all()
    assert {m.status for m in messages} == {"sent"}


def test_redis_is_used_for_both_rate_limits_when_configured(monkeypatch):
    for name in ("MUSTER_REDIS_URL", "MUSTER_QUEUE_URL", "RATELIMIT_STORAGE_URI"):
        monkeypatch.delenv(name, raising=False)
    assert Config().RATELIMIT_STORAGE_URI == "memory://" and Config().REDIS_URL is None
    monkeypatch.setenv("MUSTER_QUEUE_URL", "postgresql://db/muster")
    assert Config().RATELIMIT_STORAGE_URI == "memory://"
    monkeypatch.setenv("MUSTER_QUEUE_URL", "redis://cache:6379/0")
    assert Config().RATELIMIT_STORAGE_URI == "redis://cache:6379/0" == Config().REDIS_URL
    monkeypatch.setenv("MUSTER_REDIS_URL", "redis://limits:6379/4")
    assert Config().RATELIMIT_STORAGE_URI == "redis://limits:6379/4" == Config().REDIS_URL


def test_the_sqlite_store_counts_fixed_windows_too(tmp_path):
    store = ratelimit.SQLiteRateStorage(f"muster+sqlite:///{tmp_path / 'rate.db'}")
    assert [store.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert store.get("k") == 3 and store.check()
    store.clear("k")
    assert store.get("k") == 0

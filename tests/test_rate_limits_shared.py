"""With MUSTER_REDIS_URL, Flask-Limiter's counts are shared by every process (README, "Rate limits").

Two separate processes (as two gunicorn workers) each build the app on the
same Redis and ask for API tokens with a wrong password: the limit holds for
the two together. The default (memory://) counts per process.
"""

from __future__ import annotations

import multiprocessing

import pytest

REDIS_URL = "redis://127.0.0.1:6379/2"  # the mail helper's Redis db


def _attempts(database_url: str, storage: str, tries: int, start, results) -> None:
    """In a separate process: ``tries`` token requests with a wrong password; their status codes."""
    from app import create_app
    from app.config import TestConfig

    config = TestConfig(database_url)
    config.RATELIMIT_STORAGE_URI = storage
    config.LOGIN_RATE_LIMIT = "3 per minute"
    app = create_app(config)
    client = app.test_client()
    start.wait(timeout=60)
    results.put([client.post("/api/v1/auth/token", json={"email": "nobody@test.org", "password": "wrong"},
                             environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code for _ in range(tries)])


def _run(database_url: str, storage: str) -> list[int]:
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Event(), spawn.Queue()
    workers = [spawn.Process(target=_attempts, args=(database_url, storage, 2, start, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    codes = sum((results.get(timeout=120) for _ in workers), [])
    for worker in workers:
        worker.join(timeout=30)
    return sorted(codes)


@pytest.mark.parametrize("storage", ["redis", "memory"])
def test_two_processes_share_the_login_limit_only_through_redis(committing_app, database_url, storage):
    if storage == "redis":
        import redis

        try:
            client = redis.Redis.from_url(REDIS_URL)
            client.ping()
        except redis.exceptions.ConnectionError:
            pytest.skip("Redis is not running on 127.0.0.1:6379")
        for key in client.scan_iter("LIMITS:*"):
            client.delete(key)
    codes = _run(database_url, REDIS_URL if storage == "redis" else "memory://")
    if storage == "redis":
        assert codes == [401, 401, 401, 429]  # four tries, three a minute, wherever they land
    else:
        assert codes == [401, 401, 401, 401]  # each process counted its own two

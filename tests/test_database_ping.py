"""Pooled connections are pinged before use only after sitting idle (``database.ping_idle_connections``).

Pinging on every checkout (``pool_pre_ping``) cost a round trip per request;
these tests hold what it was for: a connection that died while idle in the
pool (a server restart, a firewall's idle timeout) is replaced before a
request uses it. PostgreSQL only: an SQLite file has no connection to lose.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.database import ping_idle_connections


@pytest.fixture()
def pg_url(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("connection pings concern PostgreSQL (set TEST_DATABASE_URL)")
    return database_url


def _engine(url: str, idle_seconds: float):
    engine = create_engine(url, pool_size=1, max_overflow=0)
    ping_idle_connections(engine, idle_seconds)
    return engine


def _kill(url: str, pid: int) -> None:
    """End a server process from outside, as a restart would."""
    other = create_engine(url, poolclass=NullPool)
    with other.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_that_died_while_idle_is_replaced_before_use(pg_url):
    engine = _engine(pg_url, idle_seconds=0)
    try:
        dead = _backend_pid(engine)
        _kill(pg_url, dead)
        with engine.connect() as conn:  # no error: the ping found it dead, the pool reconnected
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != dead
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(pg_url, monkeypatch):
    engine = _engine(pg_url, idle_seconds=60)
    pings = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi_connection: pings.append(1) or True)
    try:
        first = _backend_pid(engine)
        assert [_backend_pid(engine) for _ in range(5)] == [first] * 5  # the same pooled connection
        assert pings == []
    finally:
        engine.dispose()

"""How Muster talks to its database: SQLite tuning, and the one way a reading request writes.

SQLite has one writer at a time, and it cannot turn a transaction that has
read into one that writes while another connection writes: it answers
"database is locked" at once, without waiting (waiting could deadlock two
such readers). So the rule is to take the write lock up front, never halfway:

- Requests that change things (POST, PUT, PATCH, DELETE) open their
  transaction with ``BEGIN IMMEDIATE``: they queue for the lock
  (``busy_timeout``), then do their reads and writes, and commit once.
- Reading requests (GET, HEAD) open deferred transactions, so a long read such
  as an export never holds writers up. When one of them must write too (the
  audit entry of an export, an API token's last use, marking dead jobs), it
  does so through ``write_aside()``: the reading transaction ends, a short
  ``BEGIN IMMEDIATE`` transaction waits its turn, writes and commits, and
  reading goes on in a fresh transaction. Nothing else in a reading request
  writes.
- CLI commands, jobs and scripts (no request) count as reading contexts:
  they write in short transactions of their own, or through ``write_aside()``.

On PostgreSQL none of this is needed for correctness, and ``write_aside()``
does the same thing there (a short transaction of its own), so callers never
ask which database is in use.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from flask import has_request_context, request
from sqlalchemy import Engine, event

from app.extensions import db

WRITING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Execution option of a connection whose transaction must open with the write lock.
WRITE_LOCK = "muster_write_lock"


def request_writes() -> bool:
    """Is this a request that changes things (so its transaction holds the write lock from the start)?"""
    return has_request_context() and request.method in WRITING_METHODS


@contextmanager
def write_aside() -> Iterator[None]:
    """Make the writes of the ``with`` block in a short transaction that waits for the write lock.

    For reading requests, commands and jobs: the current transaction is
    committed (it has only read: whatever must be written goes through here),
    the block's writes go into a new ``BEGIN IMMEDIATE`` transaction on the
    same session, committed at the end of the block (rolled back if the block
    raises). The objects loaded before are expired, as after any commit, and
    reload on use.

    In a request that changes things the transaction already holds the lock:
    the block simply joins it (flushed here, committed by the view with the
    rest, or rolled back with it).
    """
    session = db.session
    if request_writes():
        yield
        session.flush()
        return
    session.commit()
    try:
        session.connection(execution_options={WRITE_LOCK: True})  # BEGIN IMMEDIATE: queue for the lock now
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def tune_sqlite(engine: Engine) -> None:
    """Make SQLite behave like a server database: real transactions, savepoints, foreign keys, WAL.

    pysqlite opens transactions lazily and breaks SAVEPOINT; the documented
    SQLAlchemy recipe takes over BEGIN, which is also where the locking rule
    above is applied. WAL lets the web server read while an import or a job
    writes; ``busy_timeout`` is how long a writer queues for the lock.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        writing = conn.get_execution_options().get(WRITE_LOCK) or request_writes()
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

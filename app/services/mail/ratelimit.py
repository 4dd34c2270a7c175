"""The bulk mail rate (MUSTER_MAIL_RATE, e.g. ``30/minute``), one count for every worker.

The ``limits`` library counts with its moving-window strategy: never more than
the limit in any window-long stretch of time, whichever workers send. The
count lives where every worker sees it:

- Redis (``REDIS_URL``: MUSTER_REDIS_URL or a redis:// MUSTER_QUEUE_URL), the
  choice once workers run on more than one machine;
- otherwise ``SQLiteRateStorage``: a small SQLite file (MAIL_RATE_DB, under
  the instance directory) that every process of this machine opens, each
  check one ``BEGIN IMMEDIATE`` transaction so two workers cannot both take
  the last slot. Not the app's database: the count's writes must not wait on
  the app's (nor the other way round), and a test's rolled-back transaction
  must not undo it.

``acquire()`` answers how long a message must wait (0: send now). A message
over the limit is deferred, never dropped (app/tasks/mail.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from flask import current_app
from limits import RateLimitItem, parse
from limits.storage import MovingWindowSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

KEY = "muster-mail-bulk"
_storages: dict[str, Storage] = {}


class SQLiteRateStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage in one SQLite file, shared by the processes of one machine.

    ``muster+sqlite:////abs/path.db``. Moving windows keep one row per hit
    (the rows older than the window are deleted as it moves); fixed windows
    one counter row per key.
    """

    STORAGE_SCHEME = ["muster+sqlite"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = uri.split("://", 1)[1][1:] if "://" in uri else uri
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # readers never wait on the writer
            conn.execute("CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS ix_hits_key_at ON hits (key, at)")
            conn.execute("CREATE TABLE IF NOT EXISTS counters "
                         "(key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL NOT NULL)")
            conn.commit()

    @property
    def base_exceptions(self):
        return sqlite3.Error

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the file's write lock from its start (BEGIN IMMEDIATE)."""
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # --- moving window (what the mail rate uses)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._write() as conn:
            now = time.time()
            conn.execute("DELETE FROM hits WHERE key = ? AND at <= ?", (key, now - expiry))
            (count,) = conn.execute("SELECT count(*) FROM hits WHERE key = ?", (key,)).fetchone()
            if count + amount > limit:
                return False
            conn.executemany("INSERT INTO hits (key, at) VALUES (?, ?)", [(key, now)] * amount)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            oldest, count = conn.execute("SELECT min(at), count(*) FROM hits WHERE key = ? AND at > ?",
                                         (key, now - expiry)).fetchone()
        return (oldest if oldest is not None else now), count

    # --- fixed window (for completeness: any ``limits`` strategy works on it)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        with self._write() as conn:
            now = time.time()
            row = conn.execute("SELECT value, expires_at FROM counters WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] <= now:
                value, expires_at = amount, now + expiry
            else:
                value, expires_at = row[0] + amount, row[1]
            conn.execute("INSERT INTO counters (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                         (key, value, expires_at))
            return value

    def get(self, key: str) -> int:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            row = conn.execute("SELECT value FROM counters WHERE key = ? AND expires_at > ?",
                               (key, time.time())).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            row = conn.execute("SELECT expires_at FROM counters WHERE key = ?", (key,)).fetchone()
        return row[0] if row else time.time()

    def check(self) -> bool:
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as conn:
                conn.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int | None:
        with self._write() as conn:
            removed = conn.execute("DELETE FROM hits").rowcount + conn.execute("DELETE FROM counters").rowcount
        return removed

    def clear(self, key: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM hits WHERE key = ?", (key,))
            conn.execute("DELETE FROM counters WHERE key = ?", (key,))


def storage_uri() -> str:
    """Where the count lives: Redis when configured, else this machine's SQLite file."""
    config = current_app.config
    return config.get("REDIS_URL") or f"muster+sqlite:///{Path(config['MAIL_RATE_DB']).resolve()}"


def storage() -> Storage:
    """The storage for ``storage_uri()``, built once per process (a Redis pool, a file path)."""
    uri = storage_uri()
    if uri not in _storages:
        _storages[uri] = SQLiteRateStorage(uri) if uri.startswith("muster+sqlite:") else storage_from_string(uri)
    return _storages[uri]


def rate() -> RateLimitItem | None:
    """MUSTER_MAIL_RATE parsed ("30/minute", "100 per hour"); None when no limit is set."""
    text = current_app.config.get("MAIL_RATE") or ""
    return parse(text) if text.strip() else None


def acquire(cost: int = 1) -> float:
    """Take a slot for one bulk message: 0 when it may go now, else the seconds until one frees up."""
    item = rate()
    if item is None:
        return 0.0
    limiter = MovingWindowRateLimiter(storage())
    if limiter.hit(item, KEY, cost=cost):
        return 0.0
    reset_at, _remaining = limiter.get_window_stats(item, KEY)
    return max(reset_at - time.time(), 0.05)


def clear() -> None:
    """Forget the count of the configured rate (tests; an operator after a burst was refused)."""
    item = rate()
    if item is not None:
        storage().clear(item.key_for(KEY))

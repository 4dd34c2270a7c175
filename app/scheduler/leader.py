"""Leader election: of several ``flask scheduler run`` processes, exactly one schedules.

The others are standbys: they keep asking, and the first to ask after the
leader died takes over. Two ways, one interface (``acquire``, ``confirm``,
``release``, ``owner``):

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) held on a
  connection of its own, opened with psycopg directly (never one from the
  app's pool, which would hand it to other work and could close it, taking
  the lock along). The server frees the lock the moment that session ends, so
  a killed leader's lock goes with its connection. ``confirm`` asks
  ``pg_locks`` whether this session still holds it; any error (the
  connection lost, the server restarted) counts as "not the leader": the
  process stops scheduling and tries again to reconnect and acquire.
- SQLite (one machine): a row in ``scheduler_leases`` with an owner and an
  expiry. The leader renews it (``confirm``) well before it runs out; a
  standby takes it over only once it has run out (the leader died or hung).
  Each statement is one short ``BEGIN IMMEDIATE`` transaction of its own on
  a NullPool engine, so it never waits behind, or holds up, the app's work.

On PostgreSQL the leader also writes the lease row, for people (who leads,
since when); only the advisory lock decides there.

Clocks: lease times are this machine's UTC clock. The SQLite lease is only
ever shared by processes of one machine, so they agree.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, create_engine, delete, insert, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.database import WRITE_LOCK, tune_sqlite
from app.models.base import utcnow
from app.models.scheduler import SchedulerLease

log = logging.getLogger(__name__)

LOCK_NAME = "scheduler"
# The advisory lock's key: any fixed 64-bit number nobody else uses ("muster-s" in ASCII).
ADVISORY_KEY = int.from_bytes(b"muster-s", "big") & 0x7FFF_FFFF_FFFF_FFFF
LEASES = SchedulerLease.__table__


class Leader(ABC):
    """The election's interface; ``for_url`` picks the implementation for a database URL."""

    def __init__(self, url: str, lease_seconds: float, owner: str) -> None:
        self.url = url
        self.lease = timedelta(seconds=lease_seconds)
        # Unique per process start: a restarted process with a reused pid is not its predecessor.
        self.owner = f"{owner}:{uuid.uuid4().hex[:6]}"
        self._engine: Engine | None = None

    @staticmethod
    def for_url(url: str, lease_seconds: float, owner: str) -> Leader:
        backend = make_url(url).get_backend_name()
        cls = AdvisoryLockLeader if backend == "postgresql" else LeaseLeader
        return cls(url, lease_seconds, owner)

    @property
    @abstractmethod
    def kind(self) -> str:
        """How the lead is held, for logs: "lease" or "advisory lock"."""

    @abstractmethod
    def acquire(self) -> bool:
        """Try once to become the leader; True if this process now leads."""

    @abstractmethod
    def confirm(self) -> bool:
        """Still the leader? (and renew); False once the lock or lease is lost."""

    @abstractmethod
    def release(self) -> None:
        """Give the lead up (a clean stop), so a standby need not wait for the lease to run out."""

    # -- the lease row (SQLite: the election; PostgreSQL: who leads, for people) --

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.url, poolclass=NullPool)
            tune_sqlite(self._engine)
        return self._engine

    def _take_row(self, now: datetime, *, only_if_free: bool) -> bool:
        """Write the lease row as ours until now + lease: ours already, free, or (unless only_if_free) anyone's."""
        row = LEASES.c
        values = {"owner": self.owner, "expires_at": now + self.lease,
                  "acquired_at": case((row.owner == self.owner, row.acquired_at), else_=now)}
        with self.engine().connect().execution_options(**{WRITE_LOCK: True}) as conn, conn.begin():
            stmt = update(LEASES).where(row.name == LOCK_NAME)
            if only_if_free:
                stmt = stmt.where((row.owner == self.owner) | (row.expires_at < now))
            current = conn.execute(stmt.values(**values)).rowcount
            if current:
                return True
            exists = conn.execute(LEASES.select().where(row.name == LOCK_NAME)).first()
            if exists is not None:
                return False
            conn.execute(insert(LEASES).values(name=LOCK_NAME, owner=self.owner, acquired_at=now,
                                               expires_at=now + self.lease))
            return True

    def _renew_row(self, now: datetime) -> bool:
        row = LEASES.c
        with self.engine().connect().execution_options(**{WRITE_LOCK: True}) as conn, conn.begin():
            return bool(conn.execute(update(LEASES).where(row.name == LOCK_NAME, row.owner == self.owner,
                                                          row.expires_at >= now)
                                     .values(expires_at=now + self.lease)).rowcount)

    def _drop_row(self) -> None:
        with self.engine().connect().execution_options(**{WRITE_LOCK: True}) as conn, conn.begin():
            conn.execute(delete(LEASES).where(LEASES.c.name == LOCK_NAME, LEASES.c.owner == self.owner))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class LeaseLeader(Leader):
    """SQLite: the lease row decides."""

    kind = "lease"

    def acquire(self) -> bool:
        try:
            return self._take_row(utcnow(), only_if_free=True)
        except Exception as exc:  # noqa: BLE001 - the database busy or gone: not the leader, ask again later
            log.warning("scheduler: could not take the lease: %s", exc)
            return False

    def confirm(self) -> bool:
        try:
            return self._renew_row(utcnow())
        except Exception as exc:  # noqa: BLE001 - not renewed: stop scheduling before it may run out
            log.warning("scheduler: could not renew the lease: %s", exc)
            return False

    def release(self) -> None:
        try:
            self._drop_row()
        except Exception as exc:  # noqa: BLE001 - it runs out by itself
            log.warning("scheduler: could not give the lease up: %s", exc)


class AdvisoryLockLeader(Leader):
    """PostgreSQL: a session advisory lock on a dedicated psycopg connection decides."""

    kind = "advisory lock"

    def __init__(self, url: str, lease_seconds: float, owner: str) -> None:
        super().__init__(url, lease_seconds, owner)
        self._conn = None

    def _dsn(self) -> str:
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    def _connect(self):
        import psycopg

        # Keepalives: a server or network gone quiet is noticed by the next confirm, not hours later.
        return psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5, application_name="muster-scheduler",
                               keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def acquire(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            got = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)).fetchone()[0]
        except Exception as exc:
            log.warning("scheduler: cannot reach PostgreSQL for the advisory lock: %s", exc)
            self._drop_connection()
            return False
        if got:
            self._note_row()
        return bool(got)

    def confirm(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()"
                " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
                ((ADVISORY_KEY >> 32) & 0xFFFF_FFFF, ADVISORY_KEY & 0xFFFF_FFFF),
            ).fetchone()[0]
        except Exception as exc:
            log.warning("scheduler: lost the connection holding the advisory lock: %s", exc)
            self._drop_connection()
            return False
        if held:
            self._note_row()
        else:
            self._drop_connection()
        return bool(held)

    def _note_row(self) -> None:
        """Say who leads in the lease row, on the lock's own connection (no other connection is opened)."""
        now = utcnow()
        try:
            self._conn.execute(
                "INSERT INTO scheduler_leases (name, owner, acquired_at, expires_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at, "
                "acquired_at = CASE WHEN scheduler_leases.owner = EXCLUDED.owner "
                "THEN scheduler_leases.acquired_at ELSE EXCLUDED.acquired_at END",
                (LOCK_NAME, self.owner, now, now + self.lease))
        except Exception as exc:
            log.warning("scheduler: could not write the lease row: %s", exc)

    def release(self) -> None:
        try:
            if self._conn is not None:
                self._conn.execute("DELETE FROM scheduler_leases WHERE name = %s AND owner = %s",
                                   (LOCK_NAME, self.owner))
        except Exception:
            pass
        self._drop_connection()  # ending the session frees the lock

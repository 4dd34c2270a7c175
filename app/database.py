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

The other differences live here too, behind plain names that business code
calls: ``lock_row`` (a row lock, or SQLite's write lock), ``insert_ignore``,
``update_then_insert_ignore`` and ``insert_on_conflict`` (each dialect's ON CONFLICT), ``in_values`` (an array
parameter on PostgreSQL), ``json_rows`` (rows aggregated into one JSON value), ``add_days`` (date
arithmetic), ``utc_date`` (a timestamp's UTC day), ``take_write_lock`` (SQLite's lock for a job's next
transaction) and ``newest_ids_page`` (the paging plan each database runs best,
with SQLite's INDEXED BY).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from flask import has_request_context, request
from sqlalchemy import ARRAY, JSON, Date, Engine, any_, bindparam, event, literal_column, select, text, union_all, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

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


# A pooled connection idle for longer than this is pinged before use (a server restart, or a
# firewall's idle timeout, may have closed it); one in steady use is not.
PING_AFTER_IDLE_SECONDS = 10.0


def ping_idle_connections(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """SQLAlchemy's pre-ping, only for connections that sat idle in the pool.

    ``pool_pre_ping`` costs a round trip on every checkout, that is on every
    request: a tenth of the door's check-in. A connection handed back moments
    ago is as alive as the server; one idle for longer is pinged first, and a
    dead one is replaced before the request sees it (``DisconnectionError``
    in a checkout makes the pool retry with a new connection). A restart while
    connections are in steady use fails the first request on each of them,
    after which SQLAlchemy invalidates the whole pool. SQLite files need no ping.
    """
    if engine.dialect.name == "sqlite":
        return

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection, record):
        record.info["muster_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection, record, _proxy):
        since = record.info.get("muster_idle_since")  # None for a new connection: alive
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError() from exc


# --- what SQLite and PostgreSQL do differently, behind plain names ----------------------
#
# Business code calls these and never asks which database is in use.


def _dialect() -> str:
    return db.session.get_bind().dialect.name


_LOCK_ROW: dict[tuple[str, str], Any] = {}


def lock_row(model: type, pk: Any) -> None:
    """Hold the row of ``model`` with primary key ``pk`` until the transaction ends.

    Changes that depend on that row (an event's capacity and waiting list) are
    so serialised. PostgreSQL: SELECT ... FOR UPDATE. SQLite has no row locks:
    a write at the start of the transaction takes the database's write lock, so
    what is read next cannot go stale. That write sets the row's ``onupdate``
    columns (``updated_at``) to themselves, which also keeps their onupdate
    defaults from firing (the row does not change).
    """
    dialect = _dialect()
    stmt = _LOCK_ROW.get((dialect, model.__name__))
    if stmt is None:
        mapper = sa_inspect(model)
        key = mapper.primary_key[0]
        if dialect == "sqlite":
            same = {attr.key: attr.class_attribute for attr in mapper.column_attrs
                    if attr.columns[0].onupdate is not None} or {key.key: key}
            stmt = (update(model).where(key == bindparam("pk")).values(**same)
                    .execution_options(synchronize_session=False))
        else:
            stmt = select(key).where(key == bindparam("pk")).with_for_update()
        _LOCK_ROW[(dialect, model.__name__)] = stmt
    db.session.execute(stmt, {"pk": pk})


def insert_on_conflict(target: Any):
    """An INSERT into ``target`` (a model or a table) that takes ``on_conflict_do_nothing`` / ``_do_update``."""
    if _dialect() == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(target)


_INSERT_IGNORE: dict[tuple[str, str], Any] = {}


def insert_ignore(model: type, values: dict[str, Any]) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id; the new id, or None when the row already existed.

    On PostgreSQL a conflicting row still being inserted by another
    transaction makes this wait for that transaction to finish, so the loser
    of a race sees the winner's committed row right after.
    """
    table = model.__table__
    dialect = _dialect()
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - other databases: a savepoint instead
        try:
            with db.session.begin_nested():
                return db.session.scalar(table.insert().values(**values).returning(table.c.id))
        except IntegrityError:
            return None
    stmt = _INSERT_IGNORE.get((dialect, table.name))
    if stmt is None:
        stmt = _INSERT_IGNORE[(dialect, table.name)] = (
            insert_on_conflict(table).on_conflict_do_nothing().returning(table.c.id)
        )
    # Core execution of a statement built once: on a hot path (the door's check-in) the ORM's
    # bulk-insert machinery and statement construction cost more than the round trip itself.
    db.session.flush()
    return db.session.connection().execute(stmt, values).scalar()


_UPDATE_THEN_INSERT: dict[tuple[int, str], Any] = {}


def update_then_insert_ignore(update_stmt: Any, params: dict[str, Any], model: type,
                              values: dict[str, Any]) -> tuple[Any, int | None]:
    """``update_stmt`` (an UPDATE ... RETURNING), then, if it matched a row, ``insert_ignore(model, values)``.

    Returns the UPDATE's row (None: it matched nothing, and nothing was
    inserted) and the new row's id (None when it already existed). On
    PostgreSQL both run as one statement, a data-modifying WITH: the UPDATE
    (and its row lock) first, then INSERT ... ON CONFLICT DO NOTHING, the same
    guarantees as two statements in one round trip (the door's check-in).
    SQLite runs the two statements. ``update_stmt`` must be built once (the
    combined statement is kept per UPDATE).
    """
    db.session.flush()
    connection = db.session.connection()
    if _dialect() != "postgresql":
        row = connection.execute(update_stmt, params).first()
        return (row, insert_ignore(model, values)) if row is not None else (None, None)
    table = model.__table__
    key = (id(update_stmt), table.name)
    stmt = _UPDATE_THEN_INSERT.get(key)
    if stmt is None:
        from sqlalchemy.dialects.postgresql import insert

        matched = update_stmt.cte("matched")
        names = sorted(values)
        rows = select(*[bindparam(f"new_{name}", type_=table.c[name].type) for name in names]).select_from(matched)
        inserted = (insert(table).from_select(names, rows).on_conflict_do_nothing()
                    .returning(table.c.id).cte("inserted"))
        stmt = _UPDATE_THEN_INSERT[key] = select(
            *matched.c, select(inserted.c.id).scalar_subquery().label("inserted_id"))
    found = connection.execute(stmt, {**params, **{f"new_{name}": value for name, value in values.items()}}).first()
    if found is None:
        return None, None
    return found, found.inserted_id


def in_values(column, values: list) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``= ANY(array)``: one parameter instead of a thousand."""
    if _dialect() != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, value=list(values), type_=ARRAY(column.type)))


class add_days(FunctionElement):  # noqa: N801 (used like func.x)
    """A date column plus a fixed number of days (``add_days(col, -30)``), as a date: the reminders' schedule.

    PostgreSQL adds an integer to a date; SQLite's ``date(col, '-30 days')``.
    The number is part of the SQL text (an int, so safe), hence of the cache key.
    """

    type = Date()
    inherit_cache = True

    def __init__(self, column, days: int) -> None:
        super().__init__(column, literal_column(f"{int(days):d}"))


@compiles(add_days, "postgresql")
def _add_days_postgresql(element, compiler, **kw):
    column, days = element.clauses.clauses
    return f"({compiler.process(column, **kw)} + {compiler.process(days, **kw)})"


@compiles(add_days)
def _add_days_sqlite(element, compiler, **kw):
    column, days = element.clauses.clauses
    return f"date({compiler.process(column, **kw)}, '{int(days.name):+d} days')"


class utc_date(FunctionElement):  # noqa: N801 (used like func.x)
    """The UTC calendar day of a timestamp column (``utc_date(col)``), whatever the session's time zone.

    PostgreSQL's ``date()`` of a ``timestamptz`` is taken in the session's
    TimeZone (often the server's local time), which would move something
    recorded on Sunday 23:30 UTC into the next week; SQLite stores UTC text already.
    """

    type = Date()
    inherit_cache = True


@compiles(utc_date, "postgresql")
def _utc_date_postgresql(element, compiler, **kw):
    return f"date(timezone('UTC', {compiler.process(element.clauses, **kw)}))"


@compiles(utc_date)
def _utc_date_sqlite(element, compiler, **kw):
    return f"date({compiler.process(element.clauses, **kw)})"


class json_rows(FunctionElement):  # noqa: N801 (used like func.x)
    """An aggregate: the group's rows as one JSON array of arrays (``[[a, b], ...]``; NULL for none).

    Many rows become one: a lookup that needs a row and its list of children
    (a token's user and their grants) reads one row instead of one per child,
    so the ORM builds its objects once. PostgreSQL's ``json_agg`` and SQLite's
    ``json_group_array``.
    """

    type = JSON()
    inherit_cache = True


@compiles(json_rows, "postgresql")
def _json_rows_postgresql(element, compiler, **kw):
    return f"json_agg(json_build_array({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows)
def _json_rows_sqlite(element, compiler, **kw):
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


def take_write_lock() -> None:
    """On SQLite, open the coming transaction with the write lock (a no-op UPDATE); elsewhere nothing.

    SQLite (WAL) cannot turn a transaction that has already read into a writing
    one while another connection writes: it fails at once with "database is
    locked" instead of waiting. So a writing transaction of an import starts
    with this statement, which waits (busy_timeout) for the lock. Call it right
    after a commit; if the transaction had read anyway, it is rolled back (only
    that read) and started again.
    """
    if _dialect() != "sqlite":
        return
    from app.models import Counter

    counters = Counter.__table__
    lock = update(counters).where(counters.c.name == "membership_number").values(value=counters.c.value)
    for attempt in range(3):
        try:
            db.session.execute(lock)
            return
        except OperationalError:
            if attempt == 2:
                raise
            db.session.rollback()


def newest_ids_page(group_column, groups: list[int], offset: int, limit: int, *, where: ColumnElement[bool],
                    sqlite_index: str, merge_max: int) -> list[int] | None:
    """Ids of one page of rows whose ``group_column`` is in ``groups`` (and ``where``), highest id first.

    The plan each database runs best, or None where the plain query
    (``... IN (...) ORDER BY id DESC OFFSET n``) is as good. That query walks
    the primary key backwards and reads every row it skips. PostgreSQL: each
    group is read from a (group, id) index, already in id order, and merged
    (Merge Append over index-only scans), so a deep page skips index entries
    instead of table rows; one group or more than ``merge_max`` gain nothing
    there. SQLite merges row by row, and its own plan walks the table: there
    the narrow index ``sqlite_index`` ((id, group), partial on ``where``) is
    walked newest first, forced with INDEXED BY (which SQLAlchemy does not
    render for SQLite, hence the text).
    """
    table = group_column.table
    dialect = _dialect()
    if dialect == "sqlite":
        condition = where.compile(dialect=db.session.get_bind().dialect, compile_kwargs={"literal_binds": True})
        stmt = text(
            f"SELECT id FROM {table.name} INDEXED BY {sqlite_index} "
            f"WHERE {condition} AND {group_column.name} IN :groups ORDER BY id DESC LIMIT :limit OFFSET :offset"
        ).bindparams(bindparam("groups", expanding=True))
        return list(db.session.scalars(stmt, {"groups": list(groups), "limit": limit, "offset": offset}))
    if dialect != "postgresql" or not 1 < len(groups) <= merge_max:
        return None
    depth = offset + limit
    parts = [
        select(table.c.id).where(group_column == group, where).order_by(table.c.id.desc()).limit(depth)
        for group in sorted(set(groups))
    ]
    merged = union_all(*parts).subquery()
    return list(db.session.scalars(select(merged.c.id).order_by(merged.c.id.desc()).limit(limit).offset(offset)))

"""The task queue (Huey): the one module that knows which store holds it.

Tasks decorate the module-level ``huey`` object at import time::

    from app.queue import huey

    @huey.task()
    def deliver(message_id: int) -> None:
        ...

Which store is used comes from configuration, read by ``init_queue(app)``
(create_app calls it), so nothing else in Muster knows or cares:

- no ``MUSTER_QUEUE_URL`` (the embedded default): SQLite in its own file,
  ``<instance>/queue.db`` (never the app's database: the queue's writes must
  not wait on the app's, nor the other way round);
- ``sqlite:////abs/path/queue.db``: SQLite in that file (tests, odd layouts);
- ``redis://host:6379/0`` (or ``rediss://``): Redis;
- ``postgresql://user@host/db`` (``postgres://`` and ``postgresql+psycopg://``
  spellings too): PostgreSQL, huey's own ``huey_*`` tables in that database.

Why one ``Huey`` object whose store is swapped, instead of building a
``SqliteHuey`` or ``RedisHuey`` from the configuration: the tasks must exist
(be decorated) before any app, and so any configuration, exists. ``SqliteHuey``
and friends are nothing but ``Huey`` with a ``storage_class``; ``configure``
sets the same class and keyword arguments those would and rebuilds the
storage, so the instance behaves exactly like the matching ``*Huey`` class.

Immediate mode (``MUSTER_QUEUE_IMMEDIATE``, on in TestConfig) runs a task in
the caller's thread the moment it is enqueued, through the same task function
a consumer would call. ``running_consumer()`` runs a real consumer on threads
(for tests that prove the real path); ``flask worker`` runs one in the
foreground (app/cli_worker.py).

Results are off (``results=False``): the ``jobs`` and mail outbox tables are
the record people see; nobody waits on a Huey result. ``store_intermediate_errors``
is off so a retried task does not leave an error behind per attempt.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from flask import Flask
from huey import Huey
from huey.storage import PostgresStorage, RedisStorage, SqliteStorage

log = logging.getLogger(__name__)

QUEUE_NAME = "muster"
SCHEMES = ("sqlite", "redis", "rediss", "postgresql", "postgres")

# Until init_queue() runs, enqueued tasks run at once in memory, so importing a
# task module (or a script that never builds an app) never creates a store.
huey = Huey(QUEUE_NAME, results=False, store_none=False, utc=True, immediate=True,
            store_intermediate_errors=False, storage_class=SqliteStorage)

_bound: dict[str, Flask | None] = {"app": None}


class QueueConfigError(ValueError):
    """MUSTER_QUEUE_URL names a store Muster cannot use; the message says which ones it can."""


def storage_for(url: str | None, instance_path: str | Path) -> tuple[type, dict]:
    """The storage class and its keyword arguments for a queue URL (None: the embedded default)."""
    if not url:
        path = Path(instance_path) / "queue.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteStorage, {"filename": str(path)}
    scheme = urlsplit(url).scheme.lower()
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        # sqlite:////abs/path.db (four slashes: an absolute path), as in SQLAlchemy URLs.
        filename = url.split("://", 1)[1][1:] if "://" in url else ""
        if not filename:
            raise QueueConfigError("MUSTER_QUEUE_URL sqlite:// needs a file: sqlite:////path/to/queue.db")
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        return SqliteStorage, {"filename": filename}
    if base in ("redis", "rediss"):
        return RedisStorage, {"url": url}
    if base in ("postgresql", "postgres"):
        # psycopg wants a libpq URL: drop SQLAlchemy's "+driver" part.
        dsn = "postgresql://" + url.split("://", 1)[1]
        return PostgresStorage, {"dsn": dsn}
    raise QueueConfigError(
        f"MUSTER_QUEUE_URL has an unknown scheme {scheme!r}: use redis://host:6379/0, "
        "postgresql://user@host/db or sqlite:////path/queue.db (or leave it unset for "
        "instance/queue.db)."
    )


def configure(url: str | None, instance_path: str | Path, *, immediate: bool = False) -> Huey:
    """Point the module-level ``huey`` at the store ``url`` names (see the module docstring)."""
    storage_class, kwargs = storage_for(url, instance_path)
    huey.storage_class = storage_class
    huey.storage_kwargs = kwargs
    # Immediate mode keeps to memory (huey's immediate_use_memory): tests never touch a store.
    huey._immediate = immediate
    huey.storage = huey.create_storage()
    return huey


def init_queue(app: Flask) -> None:
    """Build the queue from the app's configuration and bind the app tasks run in."""
    configure(app.config.get("QUEUE_URL"), app.instance_path,
              immediate=bool(app.config.get("QUEUE_IMMEDIATE")))
    bind_app(app)
    from app.tasks import load_tasks

    load_tasks()  # every module of app/tasks registers its tasks with huey


def bind_app(app: Flask) -> None:
    """The app a consumer's tasks push a context of (one app per consumer process)."""
    _bound["app"] = app


def task_app() -> Flask:
    """The bound app; a task outside any app context runs inside one of it."""
    app = _bound["app"]
    if app is None:
        raise RuntimeError("No app bound to the queue: create_app() first (flask worker does).")
    return app


def describe() -> str:
    """Where the queue lives, for logs and `flask worker`'s banner (no password shown)."""
    storage = huey.storage
    if huey.immediate:
        return "immediate (in the caller's thread)"
    if isinstance(storage, SqliteStorage):
        return f"SQLite {storage.filename}"
    if isinstance(storage, RedisStorage):
        kw = storage.pool.connection_kwargs
        return f"Redis {kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"
    if isinstance(storage, PostgresStorage):
        parts = urlsplit(storage.dsn or "")
        return f"PostgreSQL {parts.hostname or 'localhost'}{parts.path}"
    return type(storage).__name__


def create_consumer(workers: int = 2, *, periodic: bool = True, **options):
    """A Huey consumer on threads (tasks are I/O and PDF work that release the GIL often)."""
    options.setdefault("worker_type", "thread")
    options.setdefault("check_worker_health", True)
    options.setdefault("initial_delay", 0.05)
    options.setdefault("max_delay", 1.0)  # a new task waits at most ~1 s on a polling store
    return huey.create_consumer(workers=workers, periodic=periodic, **options)


@contextlib.contextmanager
def running_consumer(workers: int = 2, *, periodic: bool = False) -> Iterator[object]:
    """A real consumer on threads of this process until the block ends (for tests).

    Signal handlers can only be set from the main thread and belong to
    ``flask worker``; here the caller stops the consumer by leaving the block.
    """
    if huey.immediate:
        raise RuntimeError("The queue is in immediate mode: configure a real store first.")
    consumer = create_consumer(workers, periodic=periodic)
    consumer._set_signal_handlers = lambda: None
    consumer.start()
    try:
        yield consumer
    finally:
        consumer.stop(graceful=True)


@contextlib.contextmanager
def using(url: str | None, instance_path: str | Path, *, immediate: bool = False,
          app: Flask | None = None) -> Iterator[Huey]:
    """Use another store (and bind ``app``) for the length of a block, then put the previous back (tests)."""
    before = (huey.storage_class, huey.storage_kwargs, huey._immediate, huey.storage, _bound["app"])
    configure(url, instance_path, immediate=immediate)
    if app is not None:
        bind_app(app)
    try:
        yield huey
    finally:
        current = huey.storage
        huey.storage_class, huey.storage_kwargs, huey._immediate, huey.storage, _bound["app"] = before
        with contextlib.suppress(Exception):
            current.close()

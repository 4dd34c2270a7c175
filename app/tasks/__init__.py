"""Queue tasks (Huey, see app/queue.py): take ids, run in an app context, commit.

Every module in this package registers its tasks with ``app.queue.huey`` when
imported; ``load_tasks()`` (called by ``init_queue``) imports them all, so a
consumer knows every task name a web process may enqueue.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_tasks() -> None:
    """Import every task module of this package (idempotent)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")

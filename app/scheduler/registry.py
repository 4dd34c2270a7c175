"""The sweeps as the running app sees them: their triggers, next firings and functions.

``sweeps()`` is ``app.scheduler.sweeps.SWEEPS`` unless the app was given
another list in ``app.extensions["muster_sweeps"]``: the hook tests use to
schedule sweeps of their own (every second, say) in real processes, without
an environment variable that production could set by mistake.

A sweep's function is imported by name only when it runs (``resolve``): the
scheduler must keep running, and record a failed run with the reason, when a
module is missing or broken, rather than fail to start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from apscheduler.triggers.cron import CronTrigger
from flask import current_app

from app.scheduler.sweeps import SWEEPS, Sweep

EXTENSION = "muster_sweeps"
CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")


class UnknownSweep(LookupError):
    """No sweep of that name; the message lists the names there are."""

    def __init__(self, name: str, names: list[str]) -> None:
        super().__init__(f"No sweep named {name!r}. The sweeps are: {', '.join(names)}.")
        self.name = name
        self.names = names


def sweeps() -> tuple[Sweep, ...]:
    return tuple(current_app.extensions.get(EXTENSION, SWEEPS))


def names() -> list[str]:
    return [s.name for s in sweeps()]


def get(name: str) -> Sweep:
    for sweep in sweeps():
        if sweep.name == name:
            return sweep
    raise UnknownSweep(name, names())


def trigger_of(sweep: Sweep) -> CronTrigger:
    """The sweep's cron trigger, in UTC. Cron fields it does not name take APScheduler's defaults
    (the fields finer than the finest one named are 0, coarser ones "*")."""
    return CronTrigger(timezone=timezone.utc, **sweep.trigger)


def schedule_text(sweep: Sweep) -> str:
    """The trigger for people: ``minute=*/15`` style, in UTC."""
    fields = " ".join(f"{k}={sweep.trigger[k]}" for k in CRON_FIELDS if k in sweep.trigger)
    return f"cron {fields or '(every minute)'} UTC"


def next_run(sweep: Sweep, after: datetime) -> datetime | None:
    """The first firing strictly after ``after`` (APScheduler's own answer may be ``after`` itself)."""
    return trigger_of(sweep).get_next_fire_time(None, after + timedelta(microseconds=1))


def resolve(sweep: Sweep) -> Callable[[datetime], dict[str, int]]:
    """The sweep's function, imported now; ImportError/AttributeError say what is missing."""
    module_name, _, attr = sweep.target.partition(":")
    if not module_name or not attr:
        raise ImportError(f"Sweep {sweep.name!r} has a malformed target {sweep.target!r} (want module:function).")
    module = importlib.import_module(module_name)
    function = getattr(module, attr, None)
    if not callable(function):
        raise AttributeError(f"{module_name} has no function {attr!r} (the target of sweep {sweep.name!r}).")
    return function

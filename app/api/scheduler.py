"""The scheduler's record through the API: ``GET /scheduler/runs``, every sweep run, newest first.

The scheduler belongs to no unit, so reading it takes reports.read
everywhere (a unit's report reader gets 403). The runs are those of
``scheduler_runs`` (app/models/scheduler.py): queued by the scheduler, run by
a worker, or run by hand with ``flask jobs run``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.api.context import actor, bp
from app.api.schema import (
    Count,
    Out,
    OutId,
    Page,
    PageQuery,
    QueryChoice,
    QueryText,
    Timestamp,
)
from app.api.serialize import page_of
from app.api.spec import operation
from app.extensions import db
from app.models.scheduler import RUN_STATUSES, RUN_TRIGGERS
from app.scheduler import runs


class SchedulerRunOut(Out):
    """One run of a sweep."""

    id: OutId
    sweep: str = Field(description="The sweep's name (see `flask jobs list`), e.g. cards.expire.")
    triggered_by: str = Field(description=f"One of {', '.join(RUN_TRIGGERS)}: the schedule, a catch-up at start "
                                          "for firings missed while no scheduler ran, or an operator.")
    status: str = Field(description=f"One of {', '.join(RUN_STATUSES)}: queued (waiting for a worker), ok, failed.")
    due_at: Timestamp = Field(description="The firing it stands for.")
    queued_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    counts: dict[str, Count] | None = Field(description="What the sweep did (its own counts), once ok.")
    error: str | None = Field(description="Why it failed.")
    scheduled_by: str = Field(description="host:pid of the scheduler (or command) that queued it.")
    ran_by: str | None = Field(description="host:pid of the process that ran it.")


class SchedulerRunPage(Page):
    items: list[SchedulerRunOut]


class SchedulerRunQuery(PageQuery):
    sweep: QueryText(60) = Field("", description="Only the runs of this sweep.")
    status: QueryChoice(RUN_STATUSES) | None = Field(None, description="Only runs with this status.")


@bp.get("/scheduler/runs")
@operation("scheduler", permission=runs.READ, everywhere=True,
           responses={200: (SchedulerRunPage, "A page of sweep runs, newest first.")})
def list_scheduler_runs(query: SchedulerRunQuery):
    """List the sweep runs

    Every run of the scheduled sweeps (expiry, no-shows, clean-up, reminders), newest first, with its
    outcome: counts, or the error. Needs reports.read everywhere.
    """
    filters: dict[str, Any] = {"sweep": query.sweep or None, "status": query.status}
    stmt = runs.runs_query(actor(), **filters)
    total = runs.count(stmt)
    items = []
    if query.offset < total:
        items = [SchedulerRunOut.model_validate(r)
                 for r in db.session.scalars(stmt.offset(query.offset).limit(query.per_page))]
    return page_of(items, query.page, query.per_page, total, "api.list_scheduler_runs", **filters)

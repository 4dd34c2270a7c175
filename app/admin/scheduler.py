"""Console "Scheduler": the sweeps (schedule, last run, next run) and the log of every run.

Read-only: the scheduler process (``flask scheduler run``) fires the sweeps
and ``flask jobs run NAME`` runs one by hand. The scheduler belongs to no
unit, so the page takes reports.read everywhere (app/scheduler/runs.py asks).
"""

from __future__ import annotations

from math import ceil

from flask import request
from flask_admin import expose

from app.admin.base import SecureView, current_actor, page_arg
from app.extensions import db
from app.models.base import utcnow
from app.models.scheduler import RUN_STATUSES
from app.scheduler import registry, runs

PAGE_SIZE = 25


class SchedulerView(SecureView):
    permission = runs.READ

    @expose("/")
    def index(self):
        actor = current_actor()
        page = page_arg()
        sweep = request.args.get("sweep", "").strip()[:60]
        status = request.args.get("status", "")
        status = status if status in RUN_STATUSES else ""
        stmt = runs.runs_query(actor, sweep=sweep or None, status=status or None)
        total = runs.count(stmt)
        rows = db.session.scalars(stmt.limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
        return self.render(
            "admin/scheduler/index.html", sweeps=runs.overview(utcnow()), rows=rows, total=total, page=page,
            page_size=PAGE_SIZE, pages=ceil(total / PAGE_SIZE), statuses=RUN_STATUSES, names=registry.names(),
            sweep=sweep, status=status, lease=runs.leader_lease(), now=utcnow(),
        )


def register(admin) -> None:
    admin.add_view(SchedulerView(name="Scheduler", endpoint="scheduler", url="/admin/scheduler"))

"""Console queues of what members asked for in the portal: profile change requests and erasure requests.

- "Change requests" (``/admin/change-requests/``): the pending queue (or any
  status), oldest first; a request's page shows each field on record against
  the value asked for, with Approve (an optional note) and Reject (a reason,
  required). Approving makes the change through the member registry, so its
  duplicate and scope rules apply (a national ID held by someone else is
  refused with the registry's message); the member is mailed either way.
- "Erasure requests" (``/admin/erasure-requests/``): the wish to have an
  account deleted; staff decide and delete through the member pages, then
  mark the request handled with a note (``members.delete``).

Both are scoped like members (``members.read`` over the member's unit,
through app/security.py): out of scope answers 404, in scope without the
right to act 403. The rules are in ``app.services.change_requests``.
"""

from __future__ import annotations

from math import ceil

from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import TextAreaField

from app.admin.base import SecureView, committing, current_actor, page_arg
from app.extensions import db
from app.models import CHANGE_REQUEST_STATUSES, ERASURE_STATUSES
from app.security import permits
from app.services import change_requests as service

PAGE_SIZE = 25


class DecisionForm(FlaskForm):
    note = TextAreaField("Note to the member (optional)")


class RejectForm(FlaskForm):
    reason = TextAreaField("Reason (the member is told)")


class HandleForm(FlaskForm):
    note = TextAreaField("What was done")


def _status_arg(statuses: tuple[str, ...]) -> str:
    """``?status=``: one of ``statuses``, "all", or pending (the default and anything unknown)."""
    status = request.args.get("status", "pending")
    return status if status in (*statuses, "all") else "pending"


def _page_of(stmt, page: int) -> tuple[list, int]:
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    return list(db.session.scalars(stmt.limit(PAGE_SIZE).offset(page * PAGE_SIZE))), total


class ChangeRequestsView(SecureView):
    permission = service.READ

    @expose("/")
    def index(self):
        status = _status_arg(CHANGE_REQUEST_STATUSES)
        page = page_arg()
        rows, total = _page_of(service.visible_changes(current_actor(), None if status == "all" else status), page)
        return self.render("admin/change_requests/list.html", rows=rows, total=total, page=page,
                           page_size=PAGE_SIZE, pages=ceil(total / PAGE_SIZE), status=status,
                           statuses=CHANGE_REQUEST_STATUSES, labels=service.FIELD_LABELS)

    def _details(self, req, *, decision=None, rejection=None, status: int = 200):
        actor = current_actor()
        rows = [(service.FIELD_LABELS[k], service.display(k, req.old_values.get(k)), service.display(k, v))
                for k, v in req.fields.items()]
        return self.render("admin/change_requests/details.html", req=req, rows=rows,
                           decision=decision or DecisionForm(formdata=None),
                           rejection=rejection or RejectForm(formdata=None),
                           can_decide=req.status == "pending" and permits(actor, service.DECIDE, req)), status

    @expose("/<pk:change_id>")
    def details(self, change_id: int):
        return self._details(service.load_change(current_actor(), change_id))

    @expose("/<pk:change_id>/approve", methods=("POST",))
    def approve(self, change_id: int):
        actor = current_actor()
        req = service.load_change(actor, change_id)
        form = DecisionForm()
        with committing(form) as outcome:
            service.approve(actor, req, form.note.data)
        if outcome.ok:
            flash(f"Approved: {req.member.full_name}'s record is changed and they have been told.", "success")
            return redirect(url_for(".index"))
        return redirect(url_for(".details", change_id=change_id))

    @expose("/<pk:change_id>/reject", methods=("POST",))
    def reject(self, change_id: int):
        actor = current_actor()
        req = service.load_change(actor, change_id)
        form = RejectForm()
        with committing(form) as outcome:
            service.reject(actor, req, form.reason.data)
        if outcome.ok:
            flash(f"Rejected: {req.member.full_name} has been told why.", "success")
            return redirect(url_for(".index"))
        return self._details(service.load_change(actor, change_id), rejection=form, status=outcome.status)


class ErasureRequestsView(SecureView):
    permission = service.READ

    @expose("/")
    def index(self):
        status = _status_arg(ERASURE_STATUSES)
        page = page_arg()
        rows, total = _page_of(service.visible_erasures(current_actor(), None if status == "all" else status), page)
        return self.render("admin/change_requests/erasures.html", rows=rows, total=total, page=page,
                           page_size=PAGE_SIZE, pages=ceil(total / PAGE_SIZE), status=status,
                           statuses=ERASURE_STATUSES)

    def _details(self, req, form=None, status: int = 200):
        can_handle = req.status == "pending" and permits(current_actor(), service.HANDLE_ERASURE, req)
        return self.render("admin/change_requests/erasure.html", req=req, form=form or HandleForm(formdata=None),
                           can_handle=can_handle), status

    @expose("/<pk:erasure_id>")
    def details(self, erasure_id: int):
        return self._details(service.load_erasure(current_actor(), erasure_id))

    @expose("/<pk:erasure_id>/handle", methods=("POST",))
    def handle(self, erasure_id: int):
        actor = current_actor()
        req = service.load_erasure(actor, erasure_id)
        form = HandleForm()
        with committing(form) as outcome:
            service.handle_erasure(actor, req, form.note.data)
        if outcome.ok:
            flash(f"Marked handled: the erasure request of {req.member.full_name}.", "success")
            return redirect(url_for(".index"))
        return self._details(service.load_erasure(actor, erasure_id), form, outcome.status)


def register(admin) -> None:
    admin.add_view(ChangeRequestsView(name="Change requests", endpoint="change_requests",
                                      url="/admin/change-requests", category="Requests"))
    admin.add_view(ErasureRequestsView(name="Erasure requests", endpoint="erasure_requests",
                                       url="/admin/erasure-requests", category="Requests"))

"""Console "Pending approvals": members waiting to be let in, scoped to the staff user's units.

The queue lists live pending members (joined through the portal, or added
as pending by staff) that the user may approve: ``members.update`` over the
member's unit, through ``app.security.scoped`` (``joining.pending_members``),
so a ward coordinator sees and decides only their wards; an id outside
answers 404. It shows whether the member confirmed their email, search and
pages. Approve one (a button per row), approve several (checkboxes, one
POST), or turn one down with a reason on a page of its own (the reason is
required and mailed to the person). The rules and mails are
``app.services.joining``'s; each POST commits once (``committing``).
"""

from __future__ import annotations

from math import ceil

from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_wtf import FlaskForm
from wtforms import TextAreaField

from app.admin.base import SecureView, committing, current_actor, page_arg
from app.models import Member
from app.security import load_for
from app.services import joining
from app.services.errors import ServiceError

PAGE_SIZE = 25


class RejectForm(FlaskForm):
    reason = TextAreaField("Reason (sent to the person who applied)")


def _pending(member_id: int) -> Member:
    """A live member the user may approve (404 out of scope, 403 without the right)."""
    return load_for(current_actor(), Member, member_id, joining.PERMISSION,
                    message="You may not approve or turn down members here.")


class ApprovalsView(SecureView):
    permission = joining.PERMISSION

    def _back(self):
        """Back to the list as the user left it (search and page kept)."""
        args = {k: v for k, v in (("q", request.args.get("q", "").strip()), ("page", request.args.get("page")))
                if v}
        return redirect(url_for(".index", **args))

    @expose("/")
    def index(self):
        actor = current_actor()
        q = request.args.get("q", "").strip()
        page = page_arg()
        try:
            rows, total = joining.pending_page(actor, q, page, PAGE_SIZE)
        except ServiceError as exc:  # a search that cannot be run is a message, not a 500
            flash(exc.message, "error")
            rows, total = [], 0
        return self.render("admin/approvals/list.html", rows=rows, total=total, page=page, page_size=PAGE_SIZE,
                           pages=ceil(total / PAGE_SIZE), q=q, logins=joining.logins_of(rows), form=FlaskForm())

    @expose("/<pk:member_id>/approve", methods=("POST",))
    def approve(self, member_id: int):  # CSRFProtect has checked the token before this runs
        member = _pending(member_id)
        with committing() as outcome:
            joining.approve(current_actor(), member)
        if outcome.ok:
            flash(f"Approved {member.full_name} ({member.membership_number}); a welcome mail is on its way.",
                  "success")
        return self._back()

    @expose("/approve", methods=("POST",))
    def bulk_approve(self):
        ids = request.form.getlist("ids")
        with committing() as outcome:
            approved, skipped = joining.approve_many(current_actor(), ids)
        if outcome.ok:
            if approved:
                flash(f"Approved {len(approved)} member(s); welcome mails are on their way.", "success")
            if skipped or not ids:
                flash("Nothing to approve was selected." if not ids and not approved else
                      f"{skipped} selected row(s) were not waiting for your approval and were left alone.",
                      "warning")
        return self._back()

    @expose("/<pk:member_id>/reject", methods=("GET", "POST"))
    def reject(self, member_id: int):
        member = _pending(member_id)
        form = RejectForm()
        if request.method == "POST":
            with committing(form, show="form") as outcome:
                joining.reject(current_actor(), member, form.reason.data)
            if outcome.ok:
                flash(f"Turned down {member.full_name}; the reason was mailed to them.", "success")
                return redirect(url_for(".index"))
            return self.render("admin/approvals/reject.html", member=member, form=form), outcome.status
        return self.render("admin/approvals/reject.html", member=member, form=form)


def register(admin) -> None:
    admin.add_view(ApprovalsView(name="Pending approvals", endpoint="approvals", url="/admin/approvals"))

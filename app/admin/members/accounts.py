"""Activation links from the member registry: for one member, the ticked rows, or a whole filtered list.

"Send activation link" mails a member a link to set their first password
(``app.services.accounts``: a login is made for a member who has none;
members without an email are skipped and counted). It needs
``members.update`` over each member, so a coordinator reaches only their own
wards; ids outside the actor's scope are ignored (the ticked rows) or answer
404 (one member). A whole list of more than ``INLINE_ACTIVATIONS`` members
goes to a background job, whose page shows the progress and the counts.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from app.admin.base import committing, current_actor, staff_can
from app.extensions import db
from app.models import Member, User
from app.security import permits, scoped
from app.services import accounts, jobs
from app.services.inputs import parse_id


class MemberAccountsMixin:
    """Activation links for ``MemberView``."""

    def can_send_activation(self) -> bool:
        return staff_can("members.update")

    def account_panel(self, member: Member) -> dict:
        """What the member's page shows about their portal login (``admin/members/_account_panel.html``)."""
        from flask_login import current_user

        user = db.session.scalar(select(User).where(User.member_id == member.id))
        return {"user": user, "has_password": bool(user is not None and user.password_hash),
                "can_send": permits(current_user, "members.update", member), "form": FlaskForm()}

    @expose("/activation/<pk:member_id>", methods=("POST",))
    def activation_view(self, member_id: int):
        """One member (their page's button): 404 out of reach, 403 without members.update there."""
        member = self.member_or_404(member_id, "update")
        if not FlaskForm().validate_on_submit():
            flash("The form has expired: reload the page and try again.", "error")
            return redirect(self.get_url(".details_view", id=member.id))
        with committing() as outcome:
            result = accounts.send_member_activation(current_actor(), member)
        if outcome.ok:
            if result.sent:
                flash(f"Activation link sent to {member.full_name}"
                      f"{' (a portal login was created)' if result.logins_created else ''}.", "success")
            else:
                flash(result.summary(), "warning")
        return redirect(self.get_url(".details_view", id=member.id))

    @action("activation", "Send activation links",
            "Email the selected members a link to set their password? Members without an email are skipped.")
    def action_activation(self, ids):
        if not self.can_send_activation():
            abort(403)
        picked = sorted({parse_id(i) for i in ids} - {None})
        with committing() as outcome:
            result = accounts.send_many_activations(current_actor(), picked)
        if outcome.ok:
            flash(result.summary(), "success" if result.sent else "warning")

    @expose("/activation/list", methods=("POST",))
    def activation_list_view(self):
        """Every member of the list as it stands (search, filters, ``?unit=``): inline, or a job when many."""
        if not self.can_send_activation():
            abort(403)
        query_string = request.query_string.decode()
        back = self.get_url(".index_view") + (f"?{query_string}" if query_string else "")
        if not FlaskForm().validate_on_submit():
            flash("The form has expired: reload the page and try again.", "error")
            return redirect(back)
        actor = current_actor()
        view_args = self._get_list_extra_args()
        query, _count, _joins = self.list_queries(view_args.search, view_args.filters, with_count=False)
        stmt = scoped(select(Member.id).where(query.whereclause), actor, "members.update", Member)
        count = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        if count <= accounts.INLINE_ACTIVATIONS:
            with committing() as outcome:
                result = accounts.send_many_activations(actor, db.session.scalars(stmt))
            if outcome.ok:
                flash(result.summary(), "success" if result.sent else "warning")
            return redirect(back)
        with committing() as outcome:
            job = accounts.start_activation_job(actor, db.session.scalars(stmt), what=f"{count:,} members")
        if not outcome.ok:
            return redirect(back)
        jobs.submit(job)  # committed: the worker can see it
        flash(f"Sending activation links to {count:,} members in the background.", "info")
        return redirect(url_for("jobs.details", job_id=job.id))

    def is_action_allowed(self, name):
        if name == "activation":
            return self.can_send_activation()
        return super().is_action_allowed(name)

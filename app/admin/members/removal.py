"""Soft delete and restore in the member console, one at a time or for the rows ticked on the list.

A deleted member leaves lists, counts and the API but stays on record;
"Deleted members" lists them (within the user's members.delete scope) with a
Restore button each. The list's "Cards" action hands the ticked members to
the card batch page, by URL only (the two console areas never import each other).
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.helpers import flash_errors, get_redirect_target
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.admin.base import committing, current_actor, page_arg, staff_can
from app.admin.members.forms import RestoreForm
from app.extensions import db
from app.models import Member
from app.security import scoped
from app.services import member_search
from app.services import members as member_service
from app.services.inputs import parse_id


class MemberRemovalMixin:
    """Delete, bulk actions, the deleted members' page and restore, for ``MemberView``."""

    def delete_model(self, model):
        with committing() as outcome:
            member_service.delete_member(current_actor(), model)
        return outcome.ok

    @expose("/delete/", methods=("POST",))
    def delete_view(self):
        """Soft delete. Unknown or unseen ids answer 404; seen but not deletable, 403."""
        return_url = get_redirect_target() or self.get_url(".index_view")
        form = self.delete_form()
        if not self.validate_form(form):
            flash_errors(form, message="Failed to delete record. %(error)s")
            return redirect(return_url)
        member = self.member_or_404(form.id.data, "delete")
        if self.delete_model(member):
            flash(f"{member.full_name} ({member.membership_number}) was deleted. It can be restored "
                  "from Deleted members.", "success")
            if return_url.startswith(self.get_url(".details_view")):
                return_url = self.get_url(".index_view")
        return redirect(return_url)

    @action("delete", "Delete", "Delete the selected members? They can be restored later.")
    def action_delete(self, ids):
        if not self.can_delete:
            abort(403)
        actor = current_actor()
        wanted = [int(i) for i in ids if str(i).isdigit()]
        stmt = scoped(
            select(Member).where(Member.id.in_(wanted), Member.deleted_at.is_(None)),
            actor, "members.delete", Member,
        )
        count = 0
        with committing() as outcome:
            for member in db.session.scalars(stmt).all():
                member_service.delete_member(actor, member)
                count += 1
        if outcome.ok:
            flash(f"{count} member(s) deleted.", "success")

    @action("cards", "Cards: issue, renew or print")
    def action_cards(self, ids):
        """On to the card batch page (``cards.batch_view``) with the ticked members; it scopes them again."""
        picked = sorted({parse_id(i) for i in ids} - {None})
        return redirect(url_for("cards.batch_view", ids=",".join(map(str, picked))))

    def is_action_allowed(self, name):
        if name == "cards":
            return staff_can("cards.create")
        return super().is_action_allowed(name)

    @expose("/deleted/")
    def deleted_view(self):
        """Soft-deleted members in the user's delete scope, with a Restore button each."""
        if not self.can_delete:
            abort(403)
        page = page_arg()
        search = request.args.get("search", "").strip()
        where = [Member.deleted_at.is_not(None)]
        clause = member_search.search_clause(search)
        if clause is not None:
            where.append(clause)
        count = db.session.scalar(
            scoped(select(func.count()).select_from(Member).where(*where), current_user, "members.delete", Member)
        )
        rows = db.session.scalars(
            scoped(select(Member).where(*where), current_user, "members.delete", Member)
            .options(selectinload(Member.unit))
            .order_by(Member.deleted_at.desc(), Member.id.desc())
            .limit(self.page_size)
            .offset(page * self.page_size)
        ).all()
        num_pages = max((count + self.page_size - 1) // self.page_size, 1)

        def pager_url(p):
            return self.get_url(".deleted_view", page=p or None, search=search or None)

        return self.render(
            "admin/members/deleted.html",
            rows=rows,
            count=count,
            page=page,
            num_pages=num_pages,
            pager_url=pager_url,
            search=search,
            restore_form=RestoreForm(formdata=None),
        )

    @expose("/restore/", methods=("POST",))
    def restore_view(self):
        if not self.can_delete:
            abort(403)
        form = RestoreForm()
        if not form.validate():
            flash_errors(form, message="Could not restore. %(error)s")
            return redirect(self.get_url(".deleted_view"))
        member = self.deleted_member_or_404(form.id.data)
        with committing() as outcome:
            member_service.restore_member(current_actor(), member)
        if not outcome.ok:
            return redirect(self.get_url(".deleted_view"))
        flash(f"{member.full_name} ({member.membership_number}) was restored.", "success")
        return redirect(get_redirect_target() or self.get_url(".details_view", id=member.id))

"""A member's page in the console: details, status history and audit trail, status changes, the photo.

The card panel on the page comes from the cards area (the ``member_card_panel``
template global it registers), so this module needs nothing from it.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import expose
from flask_admin.helpers import get_redirect_target
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice

from app.admin.base import committing, current_actor
from app.admin.members.forms import STATUS_BADGES, STATUS_LABELS, StatusForm
from app.admin.widgets import unit_label
from app.downloads import send_stream
from app.extensions import db
from app.models import MEMBER_STATUSES, AuditEntry, Member, MemberPhoto, MemberStatusChange
from app.security import permits
from app.services import member_photos
from app.services import members as member_service


class MemberDetailsMixin:
    """The details page, the status form and the photo, for ``MemberView``."""

    def _status_form(self, member: Member, formdata=None) -> StatusForm:
        form = StatusForm(formdata=formdata)
        allowed = member_service.TRANSITIONS.get(member.status, frozenset())
        form.status.choices = [SelectChoice(s, STATUS_LABELS[s]) for s in MEMBER_STATUSES if s in allowed]
        return form

    def _render_details(self, member: Member, status_form: StatusForm | None = None):
        history = db.session.scalars(
            select(MemberStatusChange)
            .where(MemberStatusChange.member_id == member.id)
            .options(selectinload(MemberStatusChange.actor))
            .order_by(MemberStatusChange.id.desc())
        ).all()
        audit_entries = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == "Member", AuditEntry.object_id == str(member.id))
            .options(selectinload(AuditEntry.actor))
            .order_by(AuditEntry.id.desc())
            .limit(50)
        ).all()
        photo_at = db.session.scalar(select(MemberPhoto.updated_at).where(MemberPhoto.member_id == member.id))
        can_update = permits(current_user, "members.update", member)
        return self.render(
            self.details_template,
            model=member,
            unit_full_name=unit_label(member.unit),
            history=history,
            audit_entries=audit_entries,
            photo_version=int(photo_at.timestamp()) if photo_at else None,
            can_update=can_update,
            can_delete_member=permits(current_user, "members.delete", member),
            status_form=status_form or (self._status_form(member) if can_update else None),
            delete_form=self.delete_form(),
            status_labels=STATUS_LABELS,
            status_badges=STATUS_BADGES,
            return_url=get_redirect_target() or self.get_url(".index_view"),
        )

    @expose("/details/")
    def details_view(self):
        return self._render_details(self.member_or_404(request.args.get("id"), "read"))

    @expose("/status/<pk:member_id>", methods=("GET", "POST"))
    def status_view(self, member_id: int):
        """Change a member's status (allowed transitions only, with a reason)."""
        member = self.member_or_404(member_id, "update")
        if request.method == "GET":
            return redirect(self.get_url(".details_view", id=member.id))
        form = self._status_form(member, request.form)
        if form.validate():
            with committing(form) as outcome:
                change = member_service.change_status(current_actor(), member, form.status.data, form.reason.data)
            if outcome.ok:
                flash(f"{member.full_name} is now {STATUS_LABELS[change.to_status].lower()}.", "success")
                return redirect(self.get_url(".details_view", id=member.id))
        flash("The status was not changed: please correct the marked field.", "error")
        member = self.member_or_404(member_id, "read")  # reloaded after a rollback
        return self._render_details(member, status_form=form)

    @expose("/photo/<pk:member_id>")
    def photo_view(self, member_id: int):
        """The member's photo, for logged-in staff who can see the member (never a public URL)."""
        member = self.member_or_404(member_id, "read")  # before anything is read from storage
        found = member_photos.open_photo(member.id)
        if found is None:
            abort(404)
        stream, content_type = found
        return send_stream(stream, filename=f"photo-{member.membership_number}.jpg", content_type=content_type,
                           inline=True, cache="private, max-age=300")

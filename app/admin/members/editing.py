"""Registering and editing members in the console: Flask-Admin's create and edit views over the member service.

One submit shows every problem: when the form's own checks fail, the
registry's rules run too (``validate_form``), and the service's refusals land
under the fields they name. A photo sent with the form is stored in the same
transaction, so a refused photo saves nothing.
"""

from __future__ import annotations

from flask import flash
from flask_admin.helpers import get_form_data, is_form_submitted

from app.admin.base import committing, current_actor, show_service_error
from app.admin.members.forms import FORM_FIELD_FOR, FORM_FIELDS, MemberEditForm, MemberForm, form_values, \
    uploaded_photo
from app.admin.widgets import units_in_scope
from app.services import members as member_service
from app.services.errors import ServiceError


class MemberEditingMixin:
    """Create and edit for ``MemberView``: forms, validation, saving through the service, commit once."""

    def get_create_form(self):
        return MemberForm

    def get_edit_form(self):
        return MemberEditForm

    def create_form(self, obj=None):
        form = self._create_form_class(get_form_data())
        if not is_form_submitted():
            units = units_in_scope("members.create")
            if len(units) == 1:
                form.unit.data = units[0]
        return form

    def edit_form(self, obj=None):
        if is_form_submitted():
            form = self._edit_form_class(get_form_data())
        else:
            data = {name: getattr(obj, name) for name in FORM_FIELDS if name != "tags"}
            data["unit"] = obj.unit
            data["tags"] = ", ".join(tag.name for tag in obj.tags)
            data["gender"] = obj.gender or ""
            form = self._edit_form_class(None, data=data)
        # Moving a member needs members.update over the new unit.
        form.unit.query_factory = lambda: units_in_scope("members.update")
        return form

    def validate_form(self, form) -> bool:
        """The form's own checks (dates, the unit, CSRF) and, when they fail, the registry's rules too.

        Without the second step a form with a missing name and a bad phone
        number would need two submits to show both. Nothing is written here.
        """
        valid = super().validate_form(form)
        if not valid and isinstance(form, MemberForm) and is_form_submitted():
            try:
                member_service.clean(form_values(form))
            except ServiceError as exc:
                for message in show_service_error(form, exc, FORM_FIELD_FOR):
                    flash(message, "error")
        return valid

    def create_model(self, form):
        actor = current_actor()
        with committing(form, FORM_FIELD_FOR) as outcome:
            member = member_service.create_member(actor, form_values(form))
            raw = uploaded_photo(form)
            if raw is not None:
                member_service.set_photo(actor, member, raw)
        return member if outcome.ok else self._not_saved(form)

    def update_model(self, form, model):
        actor = current_actor()
        with committing(form, FORM_FIELD_FOR) as outcome:
            member_service.update_member(actor, model, form_values(form))
            raw = uploaded_photo(form)
            if raw is not None:
                member_service.set_photo(actor, model, raw)
        return outcome.ok or self._not_saved(form)

    @staticmethod
    def _not_saved(form) -> bool:
        """Flask-Admin's answer for a refused save (False: render the form again), with a word on top."""
        if form.errors:
            flash("Nothing was saved: please correct the marked fields.", "error")
        return False

    def get_save_return_url(self, model, is_created=False):
        return self.get_url(".details_view", id=model.id)

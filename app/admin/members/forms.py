"""The member console's forms: registration, edit, status change, restore.

The forms check shapes (dates, lengths, the unit among those in scope, CSRF);
the member service checks every rule and its messages land under the same
fields (``FORM_FIELD_FOR`` maps the service's names to the form's).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_wtf.file import FileField
from wtforms import DateField, HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from app.admin.widgets import ConsoleForm, UnitField
from app.models import GENDERS, MEMBER_STATUSES

STATUS_LABELS = {status: status.capitalize() for status in MEMBER_STATUSES}
STATUS_BADGES = {
    "pending": "warning",
    "active": "success",
    "suspended": "danger",
    "lapsed": "secondary",
    "resigned": "secondary",
    "deceased": "dark",
    "expelled": "danger",
}


class MemberForm(ConsoleForm):
    """Registration form (the edit form drops the initial status)."""

    first_name = StringField("First name", validators=[InputRequired("First name is required."), Length(max=80)])
    last_name = StringField("Last name", validators=[InputRequired("Last name is required."), Length(max=80)])
    other_names = StringField("Other names", validators=[Optional(), Length(max=120)])
    gender = SelectField(
        "Gender",
        choices=[SelectChoice("", "—")] + [SelectChoice(g, g.capitalize()) for g in GENDERS],
        validators=[Optional()],
    )
    date_of_birth = DateField("Date of birth", validators=[Optional()])
    national_id = StringField("National ID", validators=[Optional(), Length(max=40)])
    phone = StringField("Phone", validators=[Optional(), Length(max=40)], description="e.g. 0977 123456 or +260977123456")
    email = StringField("Email", validators=[Optional(), Length(max=254)])
    address = TextAreaField("Address", validators=[Optional(), Length(max=500)])
    unit = UnitField("Unit", "members.create", validators=[InputRequired("Choose the member's unit.")])
    joined_on = DateField("Joined on", validators=[Optional()], default=date.today)
    status = SelectField(
        "Initial status", choices=[SelectChoice("pending", "Pending"), SelectChoice("active", "Active")],
        default="pending",
    )
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=5000)])
    tags = StringField("Tags", validators=[Optional(), Length(max=1000)], description="Comma separated, e.g. youth, volunteer")
    photo = FileField("Photo", description="A JPEG or PNG picture; it is resized and stored as JPEG.")


class MemberEditForm(MemberForm):
    status = None  # changed through the status form, with a reason


class StatusForm(ConsoleForm):
    # Choices are the allowed transitions; any other value reaches the service,
    # which explains what is allowed instead of a bare "Not a valid choice".
    status = SelectField("New status", validate_choice=False)
    reason = TextAreaField(
        "Reason", validators=[InputRequired("Give a reason for the status change."), Length(max=1000)]
    )


class RestoreForm(ConsoleForm):
    id = HiddenField(validators=[InputRequired()])


# Form fields passed to the service as they are (the unit goes as ``unit_id``).
FORM_FIELDS = (
    "first_name", "last_name", "other_names", "gender", "date_of_birth", "national_id",
    "phone", "email", "address", "joined_on", "notes", "tags",
)
# Service error fields named differently in the form.
FORM_FIELD_FOR = {"unit_id": "unit"}


def form_values(form) -> dict[str, Any]:
    """What the member service takes from a member form: plain values, the unit as ``unit_id``."""
    values = {name: form[name].data for name in FORM_FIELDS}
    values["unit_id"] = form.unit.data
    if "status" in form:
        values["status"] = form.status.data
    return values


def uploaded_photo(form) -> bytes | None:
    """The photo's bytes when one was sent (the service checks and resizes it)."""
    upload = form.photo.data
    return upload.read() if upload else None

"""Console: events (list and calendar), the event page with registrations, and the door check-in page.

Views stay thin: every rule is in ``app.services.events`` and every query
goes through its visibility rule (the scoping helper for staff). An event
outside the user's events.read scope answers 404; one they may see but not
change answers 403 on the changing routes.

URLs (endpoint ``events``, under /admin/events/):

- ``/`` list (``?when=upcoming|past|all&status=&q=&page=``), ``/?view=calendar``
  calendar (FullCalendar, fed by ``/feed?start=&end=``);
- ``/new``, ``/<id>/edit``, ``/<id>/delete`` (POST), ``/<id>/status`` (POST);
- ``/<id>/`` the event page (``?status=`` filters registrations),
  ``/<id>/counts`` live figures (HTMX polling), ``/<id>/search?q=`` members
  to register (HTMX), ``/<id>/register`` (POST),
  ``/<id>/members/<member_id>/attendance`` and ``/cancel`` (POST),
  ``/<id>/no-shows`` (POST), ``/<id>/export/csv|xlsx``,
  ``/<id>/attachments`` (POST), ``/<id>/attachments/<att_id>`` and ``/delete``;
- ``/<id>/checkin`` the mobile scanner page; POST there checks in (JSON
  in/out, session + CSRF header; it calls the same service as the API);
  ``/<id>/checkin/lookup?q=`` finds members by name, phone or number.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Response, abort, current_app, flash, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import (
    BooleanField, DateTimeLocalField, SelectChoice, SelectField, StringField, TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from app.admin.base import SecureView, WholeNumberField, committing, page_arg, show_service_error, staff_can
from app.admin.geo import unit_choices
from app.downloads import send_stream
from app.extensions import db
from app.models import (
    CHECKIN_RULES, EVENT_STATUSES, EVENT_TYPES, REGISTRATION_STATUSES, Event, EventAttachment, EventRegistration,
    Member, MemberPhoto,
)
from app.models.base import utcnow
from app.models.events import ATTACHMENT_KINDS
from app.security import load_for, permits
from app.services import event_exports
from app.services import events as event_service
from app.services.checkin_input import parse_checkin
from app.services.errors import ServiceError

PAGE_SIZE = 25
REGISTRATION_PAGE_SIZE = 100
STATUS_BADGES = {"draft": "secondary", "upcoming": "primary", "ongoing": "success", "completed": "dark",
                 "cancelled": "danger"}
REGISTRATION_BADGES = {"registered": "primary", "waitlisted": "warning", "attended": "success",
                       "cancelled": "secondary", "no_show": "danger"}
TYPE_COLOURS = {"meeting": "#1d4f91", "rally": "#b02a37", "training": "#198754", "social": "#6f42c1",
                "other": "#6c757d"}
RULE_LABELS = {"once": "Once", "once_per_day": "Once per day", "multiple": "Multiple entries"}


def _actor():
    return current_user._get_current_object()


# --- forms ------------------------------------------------------------------------------


class EventForm(FlaskForm):
    title = StringField("Title", validators=[InputRequired("Give the event a title."), Length(max=200)])
    event_type = SelectField("Type", choices=[SelectChoice(t, t.capitalize()) for t in EVENT_TYPES],
                             default="meeting")
    unit = SelectField("Unit", choices=[], validate_choice=False)
    start_at = DateTimeLocalField("Starts", format="%Y-%m-%dT%H:%M",
                                  validators=[InputRequired("Give the start date and time.")])
    end_at = DateTimeLocalField("Ends", format="%Y-%m-%dT%H:%M",
                                validators=[InputRequired("Give the end date and time.")])
    location = StringField("Location", validators=[Optional(), Length(max=200)],
                           description="Town or area, e.g. Kasama")
    venue = StringField("Venue", validators=[Optional(), Length(max=200)],
                        description="Building or place, e.g. Community hall")
    description = TextAreaField("Description", validators=[Optional(), Length(max=10000)])
    capacity = WholeNumberField("Capacity", validators=[Optional(), NumberRange(min=1, max=event_service.MAX_CAPACITY)],
                            description="Leave empty for no limit; when full, registrations go on a waiting list.")
    registration_required = BooleanField("Registration required", default=True,
                                         description="Unticked: an open event, any member of the area is let in.")
    registration_deadline = DateTimeLocalField("Registration deadline", format="%Y-%m-%dT%H:%M",
                                               validators=[Optional()],
                                               description="For members registering themselves; before the start.")
    walk_ins_allowed = BooleanField("Admit walk-ins", description="Unregistered members of the area are "
                                    "registered and let in at the door.")
    checkin_rule = SelectField("Check-in", choices=[SelectChoice(r, RULE_LABELS[r]) for r in CHECKIN_RULES],
                               default="once")
    status = SelectField("Status", default="draft", choices=[
        SelectChoice("draft", "Draft (not visible to members)"), SelectChoice("upcoming", "Published"),
        SelectChoice("cancelled", "Cancelled"),
    ])


class ConfirmForm(FlaskForm):
    """Only the CSRF token."""


class AttachmentForm(FlaskForm):
    kind = SelectField("Kind", choices=[SelectChoice(k, k.capitalize()) for k in ATTACHMENT_KINDS],
                       default="agenda")
    file = FileField("File")


FORM_FIELDS = ("title", "event_type", "location", "venue", "description", "capacity", "registration_required",
               "walk_ins_allowed", "checkin_rule", "status")
TIME_FIELDS = ("start_at", "end_at", "registration_deadline")
UNIT_FIELD = {"unit_id": "unit"}  # the service's field name -> the form's


def _unit_options(permission: str, blank: str | None = None) -> list[SelectChoice]:
    """Units where the user holds ``permission``, in tree order (the geography pages' helper)."""
    options = [SelectChoice("", blank)] if blank else []
    return options + [SelectChoice(value, label) for value, label in unit_choices(permission)]


def _to_utc(value: datetime | None) -> datetime | None:
    """A form's local (naive) date-time in the organisation's time zone, as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=event_service.org_timezone()).astimezone(timezone.utc)


def _to_local_naive(value: datetime | None) -> datetime | None:
    return event_service.local(value).replace(tzinfo=None) if value is not None else None


def event_time(value: datetime | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
    """A stored time in the organisation's time zone (template filter ``event_time``)."""
    return event_service.local(value).strftime(fmt) if value is not None else ""


# --- the view ---------------------------------------------------------------------------


class EventsView(SecureView):
    permission = "events.read"

    # -- access ------------------------------------------------------------------------

    def _event(self, event_id: int, permission: str = "events.read") -> Event:
        """The event, if the user may use ``permission`` on it (the service answers 404 or 403)."""
        return event_service.load_event(current_user, event_id, permission)

    def _member_for(self, event: Event, member_id: Any) -> Member:
        """A live member within the user's members.read scope (404 otherwise)."""
        return load_for(current_user, Member, member_id, "members.read")

    def _back(self, event: Event, **args):
        return redirect(url_for(".details", event_id=event.id, **args))

    # -- list and calendar -------------------------------------------------------------

    @expose("/")
    def index(self):
        view = request.args.get("view", "list")
        if view == "calendar":
            return self.render("admin/events/calendar.html", can_create=staff_can("events.create"),
                               type_colours=TYPE_COLOURS)
        when = request.args.get("when", "upcoming")
        status = request.args.get("status", "")
        q = request.args.get("q", "").strip()[:200]
        page = page_arg()
        now = utcnow()
        stmt = event_service.visible_events(current_user)
        if when == "upcoming":
            stmt = stmt.where(Event.end_at > now)
            order = (Event.start_at.asc(), Event.id.asc())
        elif when == "past":
            stmt = stmt.where(Event.end_at <= now)
            order = (Event.start_at.desc(), Event.id.desc())
        else:
            when = "all"
            order = (Event.start_at.desc(), Event.id.desc())
        if status in EVENT_STATUSES:
            stmt = stmt.where(event_service.status_clause(status, now))
        else:
            status = ""
        if q:
            stmt = stmt.where(func.lower(Event.title).contains(q.lower(), autoescape=True))
        total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = list(db.session.scalars(stmt.options(selectinload(Event.unit)).order_by(*order)
                                       .limit(PAGE_SIZE).offset(page * PAGE_SIZE)))
        return self.render(
            "admin/events/list.html", rows=rows, figures=event_service.counts_for(rows), total=total, page=page,
            page_size=PAGE_SIZE, when=when, status=status, q=q, now=now, statuses=EVENT_STATUSES,
            status_badges=STATUS_BADGES, can_create=staff_can("events.create"),
        )

    @expose("/feed")
    def feed(self):
        """Events overlapping the calendar's visible range, as FullCalendar event objects."""

        # The calendar runs in "UTC" mode on the organisation's wall-clock times: events are sent
        # as naive local times and the range comes back the same way (no time zone plugin needed).
        def parse(name: str) -> datetime | None:
            raw = request.args.get(name, "")
            try:
                value = datetime.fromisoformat(raw.replace(" ", "+")) if raw else None
            except ValueError:
                abort(400)
            if value is not None:
                value = value.replace(tzinfo=event_service.org_timezone())
            return value

        def wall_clock(value: datetime) -> str:
            return event_service.local(value).replace(tzinfo=None).isoformat()

        start, end = parse("start"), parse("end")
        if start is not None and end is not None and end - start > timedelta(days=400):
            abort(400)
        now = utcnow()
        items = []
        for event in event_service.events_between(current_user, start, end):
            state = event.status_at(now)
            items.append({
                "id": event.id,
                "title": event.title,
                "start": wall_clock(event.start_at),
                "end": wall_clock(event.end_at),
                "url": url_for(".details", event_id=event.id),
                "color": "#adb5bd" if state in ("draft", "cancelled") else TYPE_COLOURS.get(event.event_type),
                "classNames": [f"event-{state}"],
                "extendedProps": {"status": state, "type": event.event_type},
            })
        return jsonify(items)

    # -- create, edit, delete, status --------------------------------------------------

    def _form_values(self, form: EventForm) -> dict[str, Any]:
        values = {name: form[name].data for name in FORM_FIELDS}
        for name in TIME_FIELDS:
            values[name] = _to_utc(form[name].data)
        values["unit_id"] = form.unit.data or None
        return values

    def _check_rest(self, form: EventForm, event: Event | None = None) -> None:
        """The form's own checks failed: still mark what the service would refuse, so one submit shows all."""
        try:
            event_service.clean_event(self._form_values(form), partial=event is not None, current=event)
        except ServiceError as exc:  # only checked, nothing written
            form.form_errors.extend(show_service_error(form, exc, UNIT_FIELD))

    @expose("/new", methods=("GET", "POST"))
    def create(self):
        if not staff_can("events.create"):
            abort(403)
        form = EventForm()
        form.unit.choices = _unit_options("events.create", blank="Choose a unit…")
        if request.method == "GET":
            if len(form.unit.choices) == 2:
                form.unit.data = form.unit.choices[1].value
            start = (event_service.local(utcnow()) + timedelta(days=7)).replace(hour=10, minute=0, second=0,
                                                                                microsecond=0)
            form.start_at.data = start.replace(tzinfo=None)
            form.end_at.data = (start + timedelta(hours=2)).replace(tzinfo=None)
        elif form.validate_on_submit():
            with committing(form, UNIT_FIELD, show="form") as outcome:
                event = event_service.create_event(_actor(), self._form_values(form))
            if outcome.ok:
                flash(f"Event “{event.title}” created.", "success")
                return redirect(url_for(".details", event_id=event.id))
        else:
            self._check_rest(form)
        return self.render("admin/events/form.html", form=form, event=None)

    @expose("/<pk:event_id>/edit", methods=("GET", "POST"))
    def edit(self, event_id: int):
        event = self._event(event_id, "events.update")
        if request.method == "POST":
            form = EventForm()
        else:
            data = {name: getattr(event, name) for name in FORM_FIELDS}
            data.update({name: _to_local_naive(getattr(event, name)) for name in TIME_FIELDS})
            data["unit"] = str(event.unit_id)
            form = EventForm(formdata=None, data=data)
        choices = _unit_options("events.update")
        if str(event.unit_id) not in {choice.value for choice in choices}:
            choices.insert(0, SelectChoice(str(event.unit_id), event.unit.name))
        form.unit.choices = choices
        if request.method == "POST" and form.validate_on_submit():
            with committing(form, UNIT_FIELD, show="form") as outcome:
                event_service.update_event(_actor(), event, self._form_values(form))
            if outcome.ok:
                flash("Saved.", "success")
                return redirect(url_for(".details", event_id=event.id))
            event = self._event(event_id, "events.update")
        elif request.method == "POST":
            self._check_rest(form, event)
        return self.render("admin/events/form.html", form=form, event=event)

    @expose("/<pk:event_id>/delete", methods=("POST",))
    def delete(self, event_id: int):
        event = self._event(event_id, "events.delete")
        if not ConfirmForm().validate_on_submit():
            abort(400)
        title = event.title
        with committing() as outcome:
            event_service.delete_event(_actor(), event)
        if not outcome.ok:
            return self._back(event)
        flash(f"Event “{title}” deleted.", "success")
        return redirect(url_for(".index"))

    @expose("/<pk:event_id>/status", methods=("POST",))
    def set_status(self, event_id: int):
        event = self._event(event_id, "events.update")
        if not ConfirmForm().validate_on_submit():
            abort(400)
        with committing() as outcome:
            event_service.set_event_status(_actor(), event, request.form.get("status", ""))
        if outcome.ok:
            flash(f"The event is now {event.current_status}.", "success")
        return self._back(event)

    # -- the event page ------------------------------------------------------------------

    @expose("/<pk:event_id>/")
    def details(self, event_id: int):
        event = self._event(event_id)
        status = request.args.get("status", "")
        if status not in REGISTRATION_STATUSES:
            status = ""
        page = page_arg()
        stmt = event_service.attendee_query(event, current_user, status or None)
        shown_total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
        registrations = list(db.session.scalars(
            stmt.options(selectinload(EventRegistration.member).selectinload(Member.unit),
                         selectinload(EventRegistration.checked_in_by))
            .order_by(Member.surname_key, Member.first_name, Member.id)
            .limit(REGISTRATION_PAGE_SIZE).offset(page * REGISTRATION_PAGE_SIZE)
        ))
        may_update = permits(current_user, "events.update", event)
        return self.render(
            "admin/events/details.html", event=event, state=event.current_status, figures=event_service.counts(event),
            registrations=registrations, shown_total=shown_total, page=page, page_size=REGISTRATION_PAGE_SIZE,
            status=status, statuses=REGISTRATION_STATUSES, status_badges=STATUS_BADGES,
            registration_badges=REGISTRATION_BADGES, rule_labels=RULE_LABELS,
            can_update=may_update, can_delete=permits(current_user, "events.delete", event),
            can_read_members=staff_can("members.read"), attachment_form=AttachmentForm(formdata=None),
            attachments=event.attachments, type_colours=TYPE_COLOURS,
        )

    @expose("/<pk:event_id>/counts")
    def counts(self, event_id: int):
        event = self._event(event_id)
        return self.render("admin/events/_counts.html", event=event, figures=event_service.counts(event),
                           state=event.current_status, compact=request.args.get("compact") == "1")

    @expose("/<pk:event_id>/search")
    def search(self, event_id: int):
        """Members of the event's area matching the search (within the user's scope), to register."""
        event = self._event(event_id, "events.update")
        q = request.args.get("q", "").strip()[:100]
        found = event_service.find_members(current_user, event, q, limit=15) if q else []
        return self.render("admin/events/_search.html", event=event, found=found, q=q,
                           registration_badges=REGISTRATION_BADGES)

    @expose("/<pk:event_id>/register", methods=("POST",))
    def register(self, event_id: int):
        event = self._event(event_id, "events.update")
        if not ConfirmForm().validate_on_submit():
            abort(400)
        member = self._member_for(event, request.form.get("member_id"))
        with committing() as outcome:
            reg, created = event_service.register(_actor(), event, member, source="staff")
        if outcome.ok:
            if not created:
                flash(f"{member.full_name} was already {reg.status.replace('_', ' ')}.", "info")
            elif reg.status == "waitlisted":
                flash(f"The event is full: {member.full_name} is on the waiting list.", "warning")
            else:
                flash(f"{member.full_name} is registered.", "success")
        return self._back(event)

    @expose("/<pk:event_id>/members/<pk:member_id>/attendance", methods=("POST",))
    def attendance(self, event_id: int, member_id: int):
        event = self._event(event_id, "events.update")
        if not ConfirmForm().validate_on_submit():
            abort(400)
        member = self._member_for(event, member_id)
        status = request.form.get("status", "attended")
        with committing() as outcome:
            reg = event_service.set_attendance(_actor(), event, member, status)
        if outcome.ok:
            flash(f"{member.full_name}: {reg.status.replace('_', ' ')}.", "success")
        return self._back(event, status=request.form.get("back_status") or None)

    @expose("/<pk:event_id>/members/<pk:member_id>/cancel", methods=("POST",))
    def cancel(self, event_id: int, member_id: int):
        event = self._event(event_id, "events.update")
        if not ConfirmForm().validate_on_submit():
            abort(400)
        member = self._member_for(event, member_id)
        reg = event_service.registration_for(event, member)
        if reg is None:
            abort(404)
        with committing() as outcome:
            promoted = event_service.cancel_registration(_actor(), reg)
        if outcome.ok:
            moved = ", ".join(r.member.full_name for r in promoted)
            flash(f"{member.full_name}'s registration is cancelled."
                  + (f" Moved up from the waiting list: {moved}." if moved else ""), "success")
        return self._back(event, status=request.form.get("back_status") or None)

    @expose("/<pk:event_id>/no-shows", methods=("POST",))
    def no_shows(self, event_id: int):
        event = self._event(event_id, "events.update")
        if not ConfirmForm().validate_on_submit():
            abort(400)
        with committing() as outcome:
            count = event_service.mark_no_shows(_actor(), event)
        if outcome.ok:
            flash(f"{count} registered member(s) who did not come marked as no-show.", "success")
        return self._back(event)

    @expose("/<pk:event_id>/export/<fmt>")
    def export(self, event_id: int, fmt: str):
        event = self._event(event_id)
        stem = "".join(c if c.isalnum() else "-" for c in event.title.lower()).strip("-")[:50] or "event"
        name = f"attendance-{event.id}-{stem}"
        if fmt == "csv":
            body, mimetype, name = event_exports.to_csv(event, current_user), "text/csv", name + ".csv"
        elif fmt == "xlsx":
            body = event_exports.to_xlsx(event, current_user)
            mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            name += ".xlsx"
        else:
            abort(404)
        response = Response(body, mimetype=mimetype)
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        response.headers["Cache-Control"] = "private, no-store"
        return response

    # -- attachments ---------------------------------------------------------------------

    @expose("/<pk:event_id>/attachments", methods=("POST",))
    def upload(self, event_id: int):
        event = self._event(event_id, "events.update")
        form = AttachmentForm()
        if not form.validate_on_submit():
            abort(400)
        upload = form.file.data
        if not upload:
            flash("Choose a file to attach.", "error")
            return self._back(event)
        max_bytes = int(current_app.config.get("EVENT_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))
        raw = upload.read(max_bytes + 1)
        with committing() as outcome:
            row = event_service.add_attachment(_actor(), event, upload.filename or "", raw, form.kind.data)
        if outcome.ok:
            flash(f"Attached {row.filename}.", "success")
        return self._back(event)

    def _attachment(self, event: Event, attachment_id: int) -> EventAttachment:
        row = db.session.scalar(select(EventAttachment).where(EventAttachment.id == attachment_id,
                                                              EventAttachment.event_id == event.id))
        if row is None:
            abort(404)
        return row

    @expose("/<pk:event_id>/attachments/<pk:attachment_id>")
    def attachment(self, event_id: int, attachment_id: int):
        row = self._attachment(self._event(event_id), attachment_id)  # scope first: nothing read before
        return send_stream(event_service.open_attachment(row), filename=row.filename,
                           content_type=row.content_type, cache="private, max-age=300")

    @expose("/<pk:event_id>/attachments/<pk:attachment_id>/delete", methods=("POST",))
    def delete_attachment(self, event_id: int, attachment_id: int):
        event = self._event(event_id, "events.update")
        if not ConfirmForm().validate_on_submit():
            abort(400)
        row = self._attachment(event, attachment_id)
        with committing() as outcome:
            event_service.delete_attachment(_actor(), row)
        if outcome.ok:
            flash(f"Removed {row.filename}.", "success")
        return self._back(event)

    # -- check-in at the door ------------------------------------------------------------

    @expose("/<pk:event_id>/checkin", methods=("GET",))
    def checkin_page(self, event_id: int):
        event = self._event(event_id, "events.update")
        closed = event_service.checkin_window(event, utcnow())
        return self.render("admin/events/checkin.html", event=event, closed=closed,
                           figures=event_service.counts(event), state=event.current_status)

    @expose("/<pk:event_id>/checkin", methods=("POST",))
    def checkin(self, event_id: int):
        """The console twin of POST /api/v1/events/<id>/checkin: session + CSRF, same service, same answer."""
        event = self._event(event_id, "events.update")
        form = not request.is_json
        data = request.form.to_dict() if form else request.get_json(silent=True)
        if form:
            data.pop("csrf_token", None)
        try:
            values = parse_checkin(data, form=form)  # the API's parser: the same answer to the same body
        except ServiceError as exc:
            details = {**(exc.details or {}), **({"field": exc.field} if exc.field else {})}
            return jsonify(error=exc.message, details=details or None), exc.status
        answer = event_service.check_in(_actor(), event, **values)
        db.session.commit()
        return jsonify(self._with_photo(answer))

    def _with_photo(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Add the member's photo URL for the scanner (when there is one and the user may see it)."""
        member = answer.get("member")
        if not member or not staff_can("members.read"):
            return answer
        updated = db.session.scalar(select(MemberPhoto.updated_at).where(MemberPhoto.member_id == member["id"]))
        if updated is None:
            return answer
        member = dict(member, photo_url=url_for("member.photo_view", member_id=member["id"],
                                                v=int(updated.timestamp())))
        return dict(answer, member=member)

    @expose("/<pk:event_id>/checkin/lookup")
    def lookup(self, event_id: int):
        """Members of the event's area found by name, phone or membership number (JSON, for the scanner)."""
        event = self._event(event_id, "events.update")
        q = request.args.get("q", "").strip()[:100]
        found = event_service.find_members(current_user, event, q, limit=10) if len(q) >= 2 else []
        return jsonify({"items": [
            dict(event_service.member_summary(m), registration_status=reg.status if reg is not None else None)
            for m, reg in found
        ]})


def register(admin) -> None:
    admin.app.add_template_filter(event_time, "event_time")
    admin.add_view(EventsView(name="Events", endpoint="events", url="/admin/events"))


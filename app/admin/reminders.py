"""Console "Reminders": the schedule ahead, the delivery log with the reason for all not sent, the settings.

The two lists are member data, read through app/services/reminders/console.py
in the viewer's scope (``members.read`` over the member's unit). The settings
apply everywhere, so only staff holding ``members.update`` everywhere (global
admins, super admins) open and save them; the service checks that again.
The view parses and renders; the sweeps themselves run in the scheduler.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from app.admin.base import SecureView, committing, current_actor, page_arg
from app.models.base import utcnow
from app.security import can
from app.services.reminders import console, settings

PAGE_SIZE = 25


class ReminderSettingsForm(FlaskForm):
    renewal_offsets = StringField("Renewal reminders (days from expiry)",
                                  description="Comma-separated; negative before expiry, e.g. -30,-7,0,+14.")
    event_hours = StringField("Event reminders (hours before the start)")
    renewal_subject = StringField("Renewal subject")
    renewal_text = TextAreaField("Renewal text", description="Placeholders: " + ", ".join(
        f"{{{p}}}" for p in settings.RENEWAL_PLACEHOLDERS))
    event_subject = StringField("Event subject")
    event_text = TextAreaField("Event text", description="Placeholders: " + ", ".join(
        f"{{{p}}}" for p in settings.EVENT_PLACEHOLDERS))


class RemindersView(SecureView):
    permission = console.READ

    @expose("/")
    def index(self):
        actor = current_actor()
        now = utcnow()
        page = page_arg()
        events_page = page_arg(name="events_page")
        return self.render(
            "admin/reminders/index.html",
            renewals=console.renewals_ahead(actor, now, page, PAGE_SIZE),
            events=console.events_ahead(actor, now, events_page, PAGE_SIZE),
            current=settings.current(), can_manage=can(actor, settings.MANAGE),
        )

    @expose("/log")
    def log(self):
        actor = current_actor()
        outcome = request.args.get("outcome", "")
        outcome = outcome if outcome in console.OUTCOME_FILTERS else ""
        result = console.delivery_log(actor, page_arg(), PAGE_SIZE, outcome)
        return self.render("admin/reminders/log.html", log=result, outcome=outcome,
                           outcomes=console.OUTCOME_FILTERS, status_of=console.status_of,
                           can_manage=can(actor, settings.MANAGE))

    @expose("/settings", methods=("GET", "POST"))
    def settings(self):
        actor = current_actor()
        settings.check_may_manage(actor)
        form = ReminderSettingsForm()
        status = 200
        if request.method == "GET":
            form.process(data=settings.form_values())
        elif form.validate_on_submit():
            with committing(form, show="form") as outcome:
                settings.update(actor, {name: form[name].data for name in settings.KEYS})
            if outcome.ok:
                flash("Reminder settings saved. The next sweeps use them.", "success")
                return redirect(url_for(".settings"))
            status = outcome.status
        return self.render("admin/reminders/settings.html", form=form, defaults=settings.defaults(),
                           can_manage=True), status


def register(admin) -> None:
    admin.add_view(RemindersView(name="Reminders", endpoint="reminders", url="/admin/reminders"))

"""``/events``: the events open to the member, their registrations and attendance history; one event; register, cancel.

The list shows the published events of the member's unit and the units above
it that have not ended, soonest first, ``PER_PAGE`` a page, with the
member's own status on each (waiting-list place included); below it their
past events (``?past_page=``). Registering and cancelling are POST forms with
the CSRF token; a full event puts the member on the waiting list. Each POST
commits once and comes back to the event's page with a message.

``/events/calendar?month=2026-12``: the same events as a month grid
(``services.event_calendar``), rendered on the server; a bad month is a 400.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

from app.extensions import db
from app.models.base import utcnow
from app.portal.blueprint import PER_PAGE, actor, bp, page_arg, pages
from app.services import event_calendar, self_service
from app.services import events as event_service
from app.services.errors import ServiceError

# The member's coming registrations shown above the list (the list itself is paged).
MY_UPCOMING = 20


@bp.route("/events")
@login_required
def events():
    me = actor()
    self_service.own_member(me)
    page, past_page = page_arg("page"), page_arg("past_page")
    items, total = self_service.open_events_page(me, (page - 1) * PER_PAGE, PER_PAGE)
    mine, _ = self_service.registrations_page(me, "upcoming", 0, MY_UPCOMING, include_cancelled=False)
    past, past_total = self_service.registrations_page(me, "past", (past_page - 1) * PER_PAGE, PER_PAGE,
                                                       include_cancelled=False)
    registrations = self_service.my_registrations_for(me, items)
    positions = self_service.waitlist_positions([*registrations.values(), *mine])
    return render_template(
        "portal/events.html", events=items, open_pager=pages(total, page), registrations=registrations,
        mine=mine, past=past, past_pager=pages(past_total, past_page), positions=positions,
        labels=self_service.REGISTRATION_LABELS,
    )


@bp.route("/events/calendar")
@login_required
def events_calendar():
    me = actor()
    self_service.own_member(me)
    today = event_service.local(utcnow()).date()
    try:
        first = event_calendar.parse_month(request.args.get("month"), today)
    except ServiceError:
        abort(400)
    return render_template("portal/events_calendar.html", month=event_calendar.month(me, first, today),
                           labels=self_service.REGISTRATION_LABELS)


@bp.route("/events/<pk:event_id>")
@login_required
def event(event_id: int):
    me = actor()
    found = self_service.my_event(me, event_id)
    reg = self_service.my_registration(me, found)
    return render_template(
        "portal/event.html", event=found, reg=reg, counts=event_service.counts(found),
        position=self_service.waitlist_positions([reg]).get(reg.id) if reg is not None else None,
        can_register=self_service.can_register(found, reg), can_cancel=self_service.can_cancel(found, reg),
        labels=self_service.REGISTRATION_LABELS,
    )


@bp.route("/events/<pk:event_id>/register", methods=["POST"])
@login_required
def register(event_id: int):
    me = actor()
    try:
        reg, created = self_service.register_self(me, event_id)
        position = self_service.waitlist_positions([reg]).get(reg.id)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("portal.event", event_id=event_id))
    if reg.status == "waitlisted":
        flash(f"The event is full: you are on the waiting list (number {position}). You will get a place "
              "if someone cancels.", "warning")
    elif created:
        flash(f"You are registered for {reg.event.title}.", "success")
    else:
        flash(f"You were already registered for {reg.event.title}.", "info")
    return redirect(url_for("portal.event", event_id=event_id))


@bp.route("/events/<pk:event_id>/cancel", methods=["POST"])
@login_required
def cancel(event_id: int):
    me = actor()
    try:
        reg, _promoted = self_service.cancel_self(me, event_id)
        title = reg.event.title
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("portal.event", event_id=event_id))
    flash(f"Your registration for {title} is cancelled.", "success")
    return redirect(url_for("portal.event", event_id=event_id))

"""``/``: a public landing page, or the signed-in member's dashboard.

The dashboard: membership status and number, their ward (with its level's
name), the card's status and expiry (with a note when renewal nears), the
next events of their area and their own place in them, and their newest
notifications. A signed-in login without a member record (most staff) gets a short
page pointing to the console instead.
"""

from __future__ import annotations

from flask import render_template
from flask_login import current_user

from app.portal.blueprint import actor, bp
from app.services import notifications, self_service


DASHBOARD_NOTICES = 3


@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return render_template("portal/landing.html")
    me = actor()
    if not self_service.has_membership(me):
        return render_template("portal/account.html")
    member = self_service.own_member(me)
    events, total = self_service.open_events_page(me, 0, self_service.DASHBOARD_EVENTS)
    registrations = self_service.my_registrations_for(me, events)
    return render_template(
        "portal/dashboard.html", member=member, card=self_service.card_state(me), events=events,
        events_total=total, registrations=registrations,
        positions=self_service.waitlist_positions(list(registrations.values())),
        status_label=self_service.MEMBER_STATUS_LABELS.get(member.status, member.status),
        registration_labels=self_service.REGISTRATION_LABELS,
        notices=notifications.latest(member, DASHBOARD_NOTICES),
    )

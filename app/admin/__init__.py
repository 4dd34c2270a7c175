"""The Flask-Admin staff console, built per app inside init_admin().

Each console area lives in its own module with a ``register(admin)`` function;
this file only lists them, in menu order.
"""

from __future__ import annotations

from flask import Flask
from flask_admin import Admin
from flask_admin.menu import MenuLink
from flask_admin.theme import Bootstrap4Theme


def init_admin(app: Flask) -> Admin:
    from app.admin import audit, dashboard, events, geo, jobs, members, rbac
    from app.admin import imports
    from app.admin import cards
    from app.admin import mail
    from app.admin import approvals
    from app.admin import change_requests
    from app.admin import referral_stats, referrals
    from app.admin import scheduler
    from app.admin import dues

    admin = Admin(
        app,
        name=app.config["ORG_NAME"],
        theme=Bootstrap4Theme(base_template="admin/muster_base.html", fluid=True),
        index_view=dashboard.DashboardView(url="/admin", endpoint="admin"),
    )
    members.register(admin)
    approvals.register(admin)  # Pending approvals (issue 11: joining through the portal)
    change_requests.register(admin)  # Requests: profile changes and erasure (issue 11: the portal's profile)
    referrals.register(admin)  # Referrals: the scoped list, revoke/withdraw, export (issue 13)
    referral_stats.register(admin)  # Referrals > Statistics: funnel, leaderboards, per week (issue 13)
    cards.register(admin)
    imports.register(admin)
    events.register(admin)
    geo.register(admin)
    rbac.register(admin)
    audit.register(admin)
    jobs.register(admin)
    mail.register(admin)  # Outgoing mail (issue #10)
    scheduler.register(admin)  # Scheduler: the sweeps and their runs (issue 12)
    dues.register(admin)  # Dues: payments, record a payment, refunds, tiers (issue 14)
    from app.admin import reminders

    reminders.register(admin)  # Reminders: schedule, delivery log, settings (issue 12)
    admin.add_link(MenuLink(name="API reference", url="/api/docs"))  # the JSON API, for integrators
    return admin

"""Console home: the dashboard.

Every figure is computed through the scoping helper with GROUP BY queries
(``services.members.count_by_status`` / ``count_by_unit`` / ``joins_by_month``),
so a ward coordinator's dashboard counts only their wards and no member rows
are ever loaded. Charts use the vendored Chart.js (no CDN).
"""

from __future__ import annotations

from flask import url_for
from flask_admin import AdminIndexView, expose
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.admin.base import AccessMixin
from app.extensions import db
from app.models import MEMBER_STATUSES, AuditEntry, Unit, User
from app.security import has_permission, scope_filter, scope_paths
from app.services import members as member_service

RECENT_LOGINS = 10


def overview_units(user) -> list[Unit]:
    """Units to break the registry down by: provinces for global users, else the
    children of the user's top scope units (the unit itself when it has none)."""
    paths = scope_paths(user, "members.read")
    if paths is None:
        return list(db.session.scalars(select(Unit).where(Unit.parent_id.is_(None)).order_by(Unit.name)))
    top_ids = [int(path.strip("/").split("/")[-1]) for path in paths if path.strip("/")]
    if not top_ids:
        return []
    tops = db.session.scalars(
        select(Unit).where(Unit.id.in_(top_ids)).options(selectinload(Unit.children)).order_by(Unit.name)
    ).all()
    units: list[Unit] = []
    for top in tops:
        units.extend(top.children or [top])
    return units


def recent_logins(user, limit: int = RECENT_LOGINS) -> list[AuditEntry] | None:
    """Latest console/portal logins: all for users with a global view of members, the
    logins of users in their area for holders of users.read, else None (panel hidden)."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.action == "login")
        .options(selectinload(AuditEntry.actor))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    if scope_paths(user, "members.read") is None:
        return list(db.session.scalars(stmt))
    if not has_permission(user, "users.read"):
        return None
    clause = scope_filter(user, "users.read", User)
    if clause is not None:
        stmt = stmt.where(AuditEntry.actor_id.in_(select(User.id).where(clause)))
    return list(db.session.scalars(stmt))


class DashboardView(AccessMixin, AdminIndexView):
    """Any staff user may open the dashboard; the figures follow their members.read scope."""

    @expose("/")
    def index(self):
        user = current_user._get_current_object()
        can_read_members = has_permission(user, "members.read")
        context: dict = {
            "can_read_members": can_read_members,
            "can_create_members": has_permission(user, "members.create"),
            "logins": recent_logins(user),
        }
        if can_read_members:
            by_status = member_service.count_by_status(user)
            units = overview_units(user)
            per_unit = member_service.count_by_unit(user, units)
            months = member_service.joins_by_month(user, 12)
            context.update(
                total=sum(by_status.values()),
                by_status=by_status,
                units=[
                    {
                        "id": unit.id,
                        "name": unit.name,
                        "level": unit.level_name,
                        "count": per_unit.get(unit.id, 0),
                        "url": url_for("member.index_view", unit=unit.id),
                    }
                    for unit in units
                ],
                months=[(first.strftime("%b %Y"), n) for first, n in months],
                joins_last_12=sum(n for _first, n in months),
                chart_data={
                    "status": {
                        "labels": [s.capitalize() for s in MEMBER_STATUSES],
                        "values": [by_status[s] for s in MEMBER_STATUSES],
                    },
                    "months": {
                        "labels": [first.strftime("%b %Y") for first, _n in months],
                        "values": [n for _first, n in months],
                    },
                },
            )
        return self.render("admin/index.html", **context)

"""Console "Referral statistics": the funnel, leaderboards by member and by unit, referrals per week, top per ward.

Every figure comes from ``app.services.referrals.stats``, computed in the
database over the user's ``referrals.read`` area (``stats.area``): a ward
coordinator's figures count their wards' recruiters only, and a unit picked
outside their area answers 404 (403 when they see it without the right),
exactly as the API's ``/referrals/stats`` does. The view only picks the unit
and level, pages the tables, and hands the weekly figures to the vendored
Chart.js as JSON data (no inline script: the CSP runs only our own files),
with the same numbers in a table for screen readers and for print.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from flask import request
from flask_admin import expose

from app.admin.base import SecureView, current_actor, page_arg, staff_can
from app.admin.widgets import unit_label, units_in_scope
from app.services.inputs import parse_int
from app.services.referrals import STATUS_LABELS, stats

PAGE_SIZE = 20  # leaderboard rows, units and wards per page


def _page_of(items: list, page: int) -> tuple[list, int]:
    """One page of a list the service returns whole (units of a level, wards), and the number of pages."""
    return items[page * PAGE_SIZE:(page + 1) * PAGE_SIZE], ceil(len(items) / PAGE_SIZE)


class ReferralStatsView(SecureView):
    permission = stats.PERMISSION

    @expose("/")
    def index(self):
        actor = current_actor()
        unit_arg = request.args.get("unit_id", "").strip()
        where = stats.area(actor, unit_arg or None)  # 404 outside the user's area, 403 without the right
        errors: dict[str, str] = {}

        levels = stats.levels_below(where)
        level_raw = request.args.get("level", "").strip()
        level = levels[0][0] if levels else None
        if level_raw:
            wanted = parse_int(level_raw)
            if wanted in dict(levels):
                level = wanted
            else:
                errors["level"] = "Choose a level from the list."

        funnel = stats.funnel(where)
        page = page_arg()
        recruiters, recruiter_total = stats.leaderboard(where, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
        units_page = page_arg(name="units_page")
        unit_rows, unit_pages = _page_of(stats.unit_leaderboard(where, level) if level is not None else [],
                                         units_page)
        wards_page = page_arg(name="wards_page")
        tops = stats.top_per_unit(where)
        wards = sorted(tops.items(), key=lambda item: (item[1][0].unit_name.casefold(), item[0]))
        ward_rows, ward_pages = _page_of(wards, wards_page)
        weeks = stats.per_week(where)
        chart = {"labels": [monday.strftime("%d %b") for monday, _r, _c in weeks],
                 "recorded": [r for _m, r, _c in weeks], "credited": [c for _m, _r, c in weeks]}

        return self.render(
            "admin/referrals/statistics.html",
            where=where, unit_arg=unit_arg, errors=errors,
            units=[(u.id, unit_label(u)) for u in units_in_scope(stats.PERMISSION)],
            area_label=unit_label(where.unit) if where.unit is not None else None,
            funnel=funnel, stages=stats.FUNNEL_STAGES, status_labels=STATUS_LABELS,
            recruiters=recruiters, recruiter_total=recruiter_total, page=page, page_size=PAGE_SIZE,
            recruiter_pages=ceil(recruiter_total / PAGE_SIZE),
            levels=levels, level=level, level_name=dict(levels).get(level, ""),
            unit_rows=unit_rows, units_page=units_page, unit_pages=unit_pages,
            ward_rows=ward_rows, wards_page=wards_page, ward_pages=ward_pages, ward_total=len(wards),
            per_ward=stats.TOP_PER_UNIT, weeks=weeks, chart=chart,
            any_weekly=any(r or c for _m, r, c in weeks), can_members=staff_can("members.read"),
        ), 400 if errors else 200


def register(admin: Any) -> None:
    admin.add_view(ReferralStatsView(name="Statistics", endpoint="referral_stats",
                                     url="/admin/referrals/statistics", category="Referrals"))

"""Console "Dues > Report" (issue 14): completed payments per unit and month, a table with totals and a chart.

Every figure and rule is in ``app.services.dues.report``: the unit through
``app.security`` (404 outside the user's area, 403 when they see it without
``payments.read``), the months (every bad field's message at once: 400, the
form and no figures, never a 500), the scope of the payments and the roll-up
of units into the rows. This view reads the query string, asks the service,
and renders: the GET filter form, the table (a row per unit, linking to the
same report for that unit; a column per month; row, column and grand
totals), an empty state, and the chart, whose figures go to the vendored
Chart.js as JSON data read by ``static/js/dues-report.js`` (no inline script:
the Content-Security-Policy runs only this site's own files).
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_admin import expose

from app.admin.base import SecureView, current_actor
from app.admin.widgets import unit_label, units_in_scope
from app.security import can
from app.services import dues
from app.services.dues import report
from app.services.errors import ValidationErrors

FIELDS = ("unit_id", "from", "to")


class DuesReportView(SecureView):
    permission = report.PERMISSION

    @expose("/")
    def index(self):
        actor = current_actor()
        args = {n: request.args.get(n, "").strip() for n in FIELDS if request.args.get(n, "").strip()}
        errors: dict[str, str] = {}
        result, figures, filters = None, None, None
        try:
            filters = report.parse_filters(actor, args)  # NotFound / Forbidden for a unit out of reach
        except ValidationErrors as exc:
            errors = exc.errors
        if filters is not None:
            result = report.report(actor, filters)
            figures = report.chart(result)
        unit = result.unit if result is not None else None
        parent = unit.parent if unit is not None else None
        return self.render(
            "admin/dues/report.html", args=args, errors=errors, result=result, chart=figures,
            filters=filters, unit=unit, unit_name=unit_label(unit) if unit is not None else None,
            up=parent if parent is not None and can(actor, report.PERMISSION, parent) else None,
            units=[(u.id, unit_label(u)) for u in units_in_scope(report.PERMISSION)],
            money=dues.format_money, max_months=report.MAX_MONTHS,
        ), 400 if errors else 200


def register(admin: Any) -> None:
    admin.add_view(DuesReportView(name="Report", endpoint="dues_report", url="/admin/dues/report",
                                  category="Dues"))

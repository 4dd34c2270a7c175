"""Console "Referrals": the scoped list with its filters, one referral with its ledger, revoke, withdraw, export.

Everything a staff user may see or do here is decided by
``app.services.referrals.staff`` (which asks ``app.security``): the list,
its count and the export share one WHERE (``list_clauses``) that starts from
the user's ``referrals.read`` scope, so a ward coordinator lists, counts and
exports only the referrals whose referrer belongs to their wards, and a
referral outside answers 404 as if it did not exist.

- The list (``/admin/referrals/``) is filtered by a GET form (status, source,
  unit, search, recorded since/until). A bad value is shown under its field,
  every one at once, with a 400 and an empty table, never a 500.
- A referral's page shows who referred whom, the dates, and its ledger entries
  (the award and any reversal, with reason, who and when).
- Revoking a credit and withdrawing an open referral each ask first, on a
  page of their own (a plain form: it works without JavaScript and under the
  CSP), and need a reason. ``referrals.update`` is asked by the service; the
  buttons are only shown to those who hold it. Each POST commits once.
- Export streams the filtered list as CSV or XLSX (``members.export`` too:
  names and contact details are personal data); the service audits it.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import TextAreaField

from app.admin.base import SecureView, committing, current_actor, page_arg, staff_can
from app.admin.widgets import unit_label, units_in_scope
from app.database import in_values
from app.extensions import db
from app.models import Member, PointsEntry, Referral, ReferralCode
from app.models.referrals import REFERRAL_SOURCES, REFERRAL_STATUSES
from app.security import permits
from app.services.errors import AccessDenied, ServiceError, ValidationErrors
from app.services.referrals import (
    OPEN_STATUSES,
    SOURCE_LABELS,
    STATUS_LABELS,
    balance,
    staff,
)

PAGE_SIZE = 25
# Bootstrap 4 badge colours for the internal status names (labels come from STATUS_LABELS).
STATUS_BADGES = {"pending": "info", "registered": "primary", "credited": "success", "expired": "secondary",
                 "rejected": "danger"}
FILTER_FIELDS = ("status", "source", "unit_id", "referrer_id", "q", "since", "until")
# The same words for an unknown unit and one outside the user's area, so the filter reveals nothing.
UNIT_UNSEEN = "That unit does not exist or is outside your area."
# The two changes, each asked on its own confirmation page: (title, button, what happens).
OPERATIONS = {
    "revoke": ("Revoke credit", "Revoke the credit",
               ("The award stays in the ledger and a reversal entry takes its points back from the referrer; "
                "the referral becomes rejected with your reason, which the referrer is told. This cannot be undone.")),
    "withdraw": ("Withdraw referral", "Withdraw the referral",
                 ("The referral is closed as rejected with your reason; it will never earn points. "
                  "This cannot be undone.")),
}


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason (required; the referrer can see it)")


def _filter_args() -> dict[str, str]:
    """The filter fields as typed (kept in the form, the pager and the export links); empty ones dropped."""
    return {name: request.args.get(name, "").strip() for name in FILTER_FIELDS if request.args.get(name, "").strip()}


def _points_of(rows: list[Referral]) -> dict[int, int]:
    """Net points of each referral on the page (its award less any reversal): one GROUP BY over the ledger.

    Read, not decided: the ledger is the only place points live, and each
    referral's entries already belong to the scoped rows shown.
    """
    ids = [r.id for r in rows]
    if not ids:
        return {}
    return {rid: int(total or 0) for rid, total in db.session.execute(
        select(PointsEntry.referral_id, func.sum(PointsEntry.points))
        .where(in_values(PointsEntry.referral_id, ids)).group_by(PointsEntry.referral_id))}


class ReferralsView(SecureView):
    permission = staff.READ

    # -- the list ----------------------------------------------------------------------

    @expose("/")
    def index(self):
        actor = current_actor()
        page = page_arg()
        args = _filter_args()
        errors: dict[str, str] = {}
        rows: list[Referral] = []
        total = 0
        try:
            filters = staff.parse_filters(request.args)
        except ValidationErrors as exc:
            errors, filters = exc.errors, None
        if filters is not None:
            try:
                rows, total = staff.page(actor, filters, offset=page * PAGE_SIZE, limit=PAGE_SIZE)
            except ServiceError as exc:  # a search that cannot be run: a message under the search box
                errors = {exc.field or "q": exc.message}
            except AccessDenied:  # the unit filter names a unit outside the user's area (or none at all)
                if filters.unit_id is None:
                    raise
                errors = {"unit_id": UNIT_UNSEEN}
        can_members = staff_can("members.read")
        # A bad filter is the request's fault: 400, with every message on the form.
        return self.render(
            "admin/referrals/list.html", rows=rows, total=total, page=page, page_size=PAGE_SIZE,
            pages=ceil(total / PAGE_SIZE), args=args, errors=errors, points=_points_of(rows),
            units=[(u.id, unit_label(u)) for u in units_in_scope(staff.READ)],
            statuses=[(s, STATUS_LABELS[s]) for s in REFERRAL_STATUSES],
            sources=[(s, SOURCE_LABELS[s]) for s in REFERRAL_SOURCES], status_labels=STATUS_LABELS,
            source_labels=SOURCE_LABELS, badges=STATUS_BADGES, can_export=staff_can(staff.EXPORT),
            links={r.id: can_members and permits(actor, "members.read", r.referrer) for r in rows},
            referrer_name=rows[0].referrer.full_name if rows and filters and filters.referrer_id else None,
        ), 400 if errors else 200

    @expose("/export")
    def export(self):
        """The filtered list as a file; a refused export goes back to the list with the reason."""
        if not staff_can(staff.EXPORT):  # before the filters are read, as for any page without the right
            abort(403)
        args = _filter_args()
        try:
            filters = staff.parse_filters(request.args)
            return staff.export(current_actor(), filters, request.args.get("format", "csv")).response()
        except ServiceError as exc:  # bad filters, format or size: a reading request, nothing to roll back
            for message in (exc.errors.values() if isinstance(exc, ValidationErrors) else [exc.message]):
                flash(message, "error")
        except AccessDenied:
            flash(UNIT_UNSEEN, "error")
        return redirect(url_for(".index", **args))

    # -- one referral ------------------------------------------------------------------

    @expose("/<pk:referral_id>")
    def details(self, referral_id: int):
        actor = current_actor()
        referral = staff.load(actor, referral_id)
        referred = referral.referred_member
        may_update = permits(actor, staff.UPDATE, referral)
        return self.render(
            "admin/referrals/details.html", referral=referral, entries=referral.points_entries,
            balance=balance(referral.referrer), status_labels=STATUS_LABELS, source_labels=SOURCE_LABELS,
            badges=STATUS_BADGES,
            link_referrer=permits(actor, "members.read", referral.referrer),
            link_referred=referred is not None and not referred.is_deleted and permits(actor, "members.read",
                                                                                       referred),
            can_revoke=may_update and referral.status == "credited",
            can_withdraw=may_update and referral.status in OPEN_STATUSES,
        )

    def _confirm(self, op: str, referral: Referral, form: ReasonForm, status: int = 200):
        title, button, warning = OPERATIONS[op]
        allowed = referral.status == "credited" if op == "revoke" else referral.status in OPEN_STATUSES
        return self.render("admin/referrals/confirm.html", op=op, referral=referral, form=form, title=title,
                           button=button, warning=warning, allowed=allowed, status_labels=STATUS_LABELS,
                           badges=STATUS_BADGES, balance=balance(referral.referrer)), status

    def _change(self, op: str, referral_id: int, change, done: str):
        """GET: the confirmation page; POST: the change (one commit), then back to the referral with a flash."""
        actor = current_actor()
        referral = staff.load(actor, referral_id, staff.UPDATE)  # 404 out of scope, 403 without the right
        if request.method != "POST":
            return self._confirm(op, referral, ReasonForm(formdata=None))
        form = ReasonForm()
        with committing(form, show="form") as outcome:  # CSRFProtect has checked the token before this runs
            change(actor, referral, form.reason.data)
        if not outcome.ok:
            return self._confirm(op, staff.load(actor, referral_id, staff.UPDATE), form, outcome.status)
        flash(done.format(referrer=referral.referrer.full_name, balance=balance(referral.referrer)), "success")
        return redirect(url_for(".details", referral_id=referral_id))

    @expose("/<pk:referral_id>/revoke", methods=("GET", "POST"))
    def revoke(self, referral_id: int):
        return self._change("revoke", referral_id, staff.revoke,
                            "Credit revoked: the points are taken back from {referrer}, "
                            "whose balance is now {balance}.")

    @expose("/<pk:referral_id>/withdraw", methods=("GET", "POST"))
    def withdraw(self, referral_id: int):
        return self._change("withdraw", referral_id, staff.withdraw,
                            "Referral withdrawn: it is closed as rejected ({referrer}'s balance: {balance}).")


def member_referral_panel(member: Member) -> dict[str, Any]:
    """What a member's console page shows about their referrals: who brought them, whom they brought, points."""
    if not permits(current_user, staff.READ, member):
        return {"visible": False}
    counts = dict(db.session.execute(select(Referral.status, func.count()).where(
        Referral.referrer_id == member.id).group_by(Referral.status)).all())
    brought_by = db.session.scalar(select(Referral).where(Referral.referred_member_id == member.id))
    code = db.session.get(ReferralCode, member.id)
    return {
        "visible": True, "points": balance(member), "counts": counts, "made": sum(counts.values()),
        "code": code.code if code else None, "brought_by": brought_by,
        "brought_by_visible": brought_by is not None and permits(current_user, staff.READ, brought_by),
        "status_labels": STATUS_LABELS,
    }


def register(admin: Any) -> None:
    admin.add_view(ReferralsView(name="Referral list", endpoint="referrals", url="/admin/referrals",
                                 category="Referrals"))
    admin.app.jinja_env.globals["member_referral_panel"] = member_referral_panel

"""Membership cards in the staff console: list, detail with history, lifecycle actions, PDF, bulk batches.

Thin views over ``app.services.cards`` (lifecycle), ``card_pdf`` (paper) and
``card_batches`` (bulk jobs). Every query goes through the scoping helper: a
card belongs to its member's unit, so a coordinator sees the cards of their
wards only, and any other card answers 404.

URLs (endpoint ``cards``, under /admin/cards/):

- ``/`` list; search by card number (a wrong check digit is pointed out),
  membership number, surname prefix, phone...; filters status (as of
  today), type, expiry, unit;
- ``/details/?id=`` the card, its QR code and its transactions, with the
  actions the user may take; ``/<id>/do/<op>`` (POST) renew, suspend,
  reactivate, revoke or reissue, with a reason; ``/<id>/pdf`` the card PDF;
- ``/issue/<member_id>`` (POST) issue from the member's page;
- ``/batch/`` issue, renew or print for a unit, or for members picked on the
  member list (its "Cards: issue, renew or print" action); runs as a
  background job whose page shows progress and offers the print sheet.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import false, select
from sqlalchemy.orm import selectinload
from wtforms import HiddenField, RadioField, SelectChoice, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from app.admin.base import ScopedModelView, committing, staff_can
from app.admin.widgets import ConsoleForm, RequestFilterOptions, UnitField, UnitSubtreeFilter
from app.extensions import db
from app.models import CARD_STATUSES, CARD_TYPES, CardTransaction, Member, MembershipCard
from app.security import load_for, permits, scoped
from app.services import card_batches, card_pdf, jobs
from app.services import cards as card_service
from app.services import member_search
from app.services.inputs import parse_id

STATUS_BADGES = {"active": "success", "expired": "warning", "suspended": "danger", "revoked": "dark"}
TYPE_LABELS = {"standard": "Standard", "premium": "Premium", "lifetime": "Lifetime"}
# op -> (label, permission, reason required, service)
OPERATIONS: dict[str, tuple[str, str, bool, Any]] = {
    "renew": ("Renew", "cards.update", False, card_service.renew_card),
    "suspend": ("Suspend", "cards.update", True, card_service.suspend_card),
    "reactivate": ("Reactivate", "cards.update", True, card_service.reactivate_card),
    "revoke": ("Revoke", "cards.update", True, card_service.revoke_card),
    "reissue": ("Reissue (lost or damaged)", "cards.create", True, card_service.reissue_card),
}
# Operations that cannot be undone ask on a page of their own first; only that page's form carries them out.
CONFIRM_FIRST = ("revoke",)
# Which operations make sense from each (effective) status.
OFFERED = {
    "active": ("renew", "suspend", "revoke", "reissue"),
    "expired": ("renew", "revoke"),
    "suspended": ("reactivate", "revoke"),
    "revoked": (),
}


def _actor():
    return current_user._get_current_object()


def status_badge(status: str, in_grace: bool = False) -> Markup:
    """The status as a badge; an active card past its date but within the grace period says "In grace"."""
    if in_grace and status == "active":
        return Markup('<span class="badge badge-warning" data-status="grace">In grace</span>')
    return Markup('<span class="badge badge-{}">{}</span>').format(STATUS_BADGES.get(status, "secondary"),
                                                                  status.capitalize())


def card_badge(card: MembershipCard) -> Markup:
    return status_badge(card.effective_status(), card.in_grace())


# --- forms -----------------------------------------------------------------------------


class ReasonForm(ConsoleForm):
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=1000)])


class IssueForm(ConsoleForm):
    card_type = SelectField("Card type", choices=[SelectChoice(t, TYPE_LABELS[t]) for t in CARD_TYPES],
                            default="standard")


class BatchForm(ConsoleForm):
    unit = UnitField("Unit", "cards.create", validators=[Optional()],
                     description="Everyone active in this unit and the units below it.")
    member_ids = HiddenField()
    mode = RadioField("What to do", default="issue", choices=[
        SelectChoice("issue", "Issue a card to those without one"),
        SelectChoice("renew", "Renew current cards, and issue to those without one"),
        SelectChoice("print", "Print current cards only (no changes)"),
    ], validators=[InputRequired()])
    card_type = SelectField("Type of new cards", choices=[SelectChoice(t, TYPE_LABELS[t]) for t in CARD_TYPES],
                            default="standard")


# --- filters ---------------------------------------------------------------------------


class CardStatusFilter(sqla_filters.BaseSQLAFilter):
    """Status as of today: an active card past its expiry counts as expired."""

    def __init__(self) -> None:
        super().__init__(MembershipCard.status, "Status", options=[(s, s.capitalize()) for s in CARD_STATUSES])

    def apply(self, query, value, alias=None):
        if value not in CARD_STATUSES:
            return query.filter(false())
        return query.filter(card_service.status_clause(value))

    def operation(self):
        return "equals"


class CardTypeFilter(sqla_filters.FilterEqual):
    def operation(self):
        return "equals"


# --- list formatters -------------------------------------------------------------------


def _number_link(view, context, model, name):
    return Markup('<a href="{}"><code>{}</code></a>').format(view.get_url(".details_view", id=model.id),
                                                          model.card_number)


def _member_link(view, context, model, name):
    member = model.member
    return Markup('<a href="{}">{}</a> <small class="text-muted">{}</small>').format(
        url_for("member.details_view", id=member.id), member.full_name, member.membership_number)


def _unit_name(view, context, model, name):
    return model.member.unit.name


def _status(view, context, model, name):
    return card_badge(model)


class CardView(RequestFilterOptions, ScopedModelView):
    resource = "cards"
    scope_model = MembershipCard

    can_create = False  # cards are issued from a member's page or in a batch
    can_edit = False
    can_delete = False
    can_export = False
    can_set_page_size = False
    named_filter_urls = True
    page_size = 25

    list_template = "admin/cards/list.html"
    details_template = "admin/cards/details.html"
    confirm_first = CONFIRM_FIRST  # for the card page: these operations link to their confirmation page

    column_list = ["card_number", "member", "member_id", "card_type", "status", "issued_on", "expires_on"]
    column_labels = {"card_number": "Card no.", "member": "Member", "member_id": "Unit", "card_type": "Type",
                     "issued_on": "Issued", "expires_on": "Expires"}
    column_formatters = {"card_number": _number_link, "member": _member_link, "member_id": _unit_name,
                         "status": _status, "card_type": lambda v, c, m, n: TYPE_LABELS.get(m.card_type)}
    column_sortable_list = ["card_number", "issued_on", "expires_on"]
    column_default_sort = ("id", True)
    column_searchable_list = ["card_number"]  # shows the box; _apply_search does the work
    column_auto_select_related = False  # members and units load for the shown rows (get_query)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = [
            CardStatusFilter(),
            CardTypeFilter(MembershipCard.card_type, "Type", options=[(t, TYPE_LABELS[t]) for t in CARD_TYPES]),
            sqla_filters.DateBetweenFilter(MembershipCard.expires_on, "Expires"),
            sqla_filters.DateGreaterFilter(MembershipCard.expires_on, "Expires"),
            sqla_filters.DateSmallerFilter(MembershipCard.expires_on, "Expires"),
            UnitSubtreeFilter(MembershipCard.member_id, MembershipCard.unit_id, "cards.read"),
        ]
        super().__init__(*args, **kwargs)

    # -- queries ----------------------------------------------------------------------

    def get_query(self):
        return super().get_query().options(
            selectinload(MembershipCard.member).selectinload(Member.unit)
        )

    def search_placeholder(self) -> str:
        return "Card no., membership no., surname, phone"

    def _apply_search(self, query, count_query, joins, count_joins, search):
        clause = self.search_clause(search)
        query = query.filter(clause)
        if count_query is not None:
            count_query = count_query.filter(clause)
        return query, count_query, joins, count_joins

    @staticmethod
    def search_clause(search: str):
        """A card number (checked: a mistyped one is pointed out), else the member search."""
        text = (search or "").strip()
        if card_service.CARD_NUMBER_RE.match(text.upper().replace(" ", "")):
            try:
                return MembershipCard.card_number == card_service.normalize_card_number(text)
            except card_service.CardNumberError as exc:
                flash(exc.message, "error")
                return false()
        try:
            member_clause = member_search.search_clause(text)
        except ValueError:
            return false()
        if member_clause is None:
            return MembershipCard.id.isnot(None)
        return MembershipCard.member_id.in_(select(Member.id).where(member_clause))

    def card_or_404(self, card_id: Any, permission: str = "cards.read") -> MembershipCard:
        """A card the user may use ``permission`` on: 404 out of reach, 403 without the right."""
        return load_for(current_user, MembershipCard, card_id, permission)

    # -- detail and actions ---------------------------------------------------------------

    def _render_details(self, card: MembershipCard, forms: dict[str, ReasonForm] | None = None):
        status = card.effective_status()
        history = db.session.scalars(
            select(CardTransaction).where(CardTransaction.card_id == card.id)
            .options(selectinload(CardTransaction.actor)).order_by(CardTransaction.id.desc())
        ).all()
        offered = [op for op in OFFERED.get(status, ()) if permits(current_user, OPERATIONS[op][1], card)]
        forms = forms or {}
        return self.render(
            self.details_template,
            model=card,
            status=status,
            in_grace=card.in_grace(),
            member=card.member,
            history=history,
            operations=[(op, OPERATIONS[op], forms.get(op) or ReasonForm(formdata=None, prefix=op))
                        for op in offered],
            qr_svg=Markup(card_pdf.qr_svg(card).decode("utf-8")),
            replaced_by=db.session.scalar(select(MembershipCard).where(MembershipCard.replaces_id == card.id)),
            type_labels=TYPE_LABELS,
            status_badge=status_badge,
            return_url=self.get_url(".index_view"),
        )

    @expose("/details/")
    def details_view(self):
        return self._render_details(self.card_or_404(request.args.get("id")))

    @expose("/<pk:card_id>/do/<op>", methods=("POST",))
    def transition_view(self, card_id: int, op: str):
        """Renew, suspend, reactivate, revoke or reissue a card, with a reason."""
        card = self.card_or_404(card_id)
        if op not in OPERATIONS:
            abort(404)
        label, permission, reason_required, service = OPERATIONS[op]
        card = self.card_or_404(card_id, permission)
        form = ReasonForm(prefix=op)
        if op in CONFIRM_FIRST and request.form.get(f"{op}-confirmed") != "yes":
            return self._render_confirm(card, op, form)  # not confirmed yet: ask, keeping any reason typed
        if form.validate() and reason_required and not (form.reason.data or "").strip():
            form.reason.errors = [f"Give a reason to {op} the card."]
        if not form.errors:
            with committing(show=None) as outcome:
                result = service(_actor(), card, form.reason.data or "")
            if not outcome.ok:
                form.reason.errors = [outcome.error.message]
            else:
                if op == "reissue":
                    flash(f"{card.card_number} was revoked; the new card is {result.card_number}.", "success")
                    return redirect(self.get_url(".details_view", id=result.id))
                flash(f"{label}: done. Card {card.card_number} is now {result.effective_status()}.", "success")
                return redirect(self.get_url(".details_view", id=card.id))
        if op in CONFIRM_FIRST:
            return self._render_confirm(self.card_or_404(card_id, permission), op, form), 422
        flash("Nothing was changed: " + "; ".join(form.reason.errors), "error")
        return self._render_details(self.card_or_404(card_id), {op: form})

    def _render_confirm(self, card: MembershipCard, op: str, form: ReasonForm):
        return self.render("admin/cards/confirm.html", model=card, member=card.member, op=op,
                           label=OPERATIONS[op][0], form=form, status_badge=status_badge,
                           status=card.effective_status())

    @expose("/<pk:card_id>/confirm/<op>")
    def confirm_view(self, card_id: int, op: str):
        """The page that asks before an operation that cannot be undone (revoking), with its reason."""
        if op not in CONFIRM_FIRST:
            abort(404)
        card = self.card_or_404(card_id, OPERATIONS[op][1])
        if op not in OFFERED.get(card.effective_status(), ()):
            flash(f"Card {card.card_number} is {card.effective_status()}: it cannot be {op}d now.", "info")
            return redirect(self.get_url(".details_view", id=card.id))
        return self._render_confirm(card, op, ReasonForm(formdata=None, prefix=op))

    @expose("/<pk:card_id>/pdf")
    def pdf_view(self, card_id: int):
        card = self.card_or_404(card_id)
        response = Response(card_pdf.render_card_pdf(card), mimetype="application/pdf")
        response.headers["Content-Disposition"] = f'attachment; filename="card-{card.card_number}.pdf"'
        response.headers["Cache-Control"] = "private, no-store"
        return response

    @expose("/issue/<pk:member_id>", methods=("POST",))
    def issue_view(self, member_id: int):
        """Issue a card from the member's page."""
        member = load_for(current_user, Member, member_id, "cards.create")
        form = IssueForm()
        back = url_for("member.details_view", id=member.id)
        if not form.validate():
            flash("The card was not issued: " + "; ".join(e for errs in form.errors.values() for e in errs), "error")
            return redirect(back)
        with committing(prefix="The card was not issued: ") as outcome:
            card = card_service.issue_card(_actor(), member, form.card_type.data)
        if not outcome.ok:
            return redirect(back)
        flash(f"Card {card.card_number} issued to {member.full_name}.", "success")
        return redirect(self.get_url(".details_view", id=card.id))

    # -- batches --------------------------------------------------------------------------

    def batch_allowed(self) -> bool:
        return staff_can("cards.create")

    @expose("/batch/", methods=("GET", "POST"))
    def batch_view(self):
        """Issue, renew or print cards for a unit, or for members picked on the member list."""
        if not staff_can("cards.create"):
            abort(403)
        form = BatchForm()
        ids = _parse_ids(form.member_ids.data or request.args.get("ids", ""))
        picked = _picked_members(ids) if ids else []
        if request.method == "POST" and form.validate():
            with committing(form) as outcome:
                job = card_batches.start_batch(
                    _actor(), mode=form.mode.data, card_type=form.card_type.data,
                    member_ids=[m.id for m in picked] if ids else None,
                    unit=None if ids else form.unit.data,
                )
            if outcome.ok:
                jobs.submit(job)  # committed: the worker can see it
                return redirect(url_for("jobs.details", job_id=job.id))
        if ids and not form.member_ids.data:
            form.member_ids.data = ",".join(str(m.id) for m in picked)
        return self.render("admin/cards/batch.html", form=form, picked=picked, picked_count=len(picked))


def _parse_ids(raw: str) -> list[int]:
    """Comma-separated member ids; parts that cannot be an id are dropped (the rest are scoped later)."""
    ids = {parse_id(part) for part in str(raw or "").split(",")}
    return sorted(ids - {None})[:100_000]


def _picked_members(ids: list[int]) -> list[Member]:
    """The picked members the user may issue cards to (the others are dropped silently, as out of scope)."""
    found: list[Member] = []
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        found += db.session.scalars(scoped(
            select(Member).where(Member.id.in_(chunk), Member.deleted_at.is_(None)),
            current_user, "cards.create", Member,
        ).order_by(Member.id)).all()
    return found


# --- the member page's card panel ------------------------------------------------------


def member_card_panel(member: Member) -> dict[str, Any]:
    """What the member's page shows about their card, and whether the user may issue one."""
    if not permits(current_user, "cards.read", member):
        return {"visible": False}
    card = card_service.current_card(member)
    return {
        "visible": True,
        "card": card,
        "status": card.effective_status() if card else None,
        "badge": card_badge(card) if card else None,
        "can_issue": permits(current_user, "cards.create", member)
        and member.status == "active" and not (card is not None and card.is_current
                                               and card.effective_status() != "expired"),
        "form": IssueForm(formdata=None),
        "type_labels": TYPE_LABELS,
    }


def register(admin) -> None:
    admin.add_view(CardView(MembershipCard, db, name="Cards", endpoint="cards", url="/admin/cards"))
    admin.app.jinja_env.globals["member_card_panel"] = member_card_panel

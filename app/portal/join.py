"""``/join``: joining through the portal; email verification links; the privacy notice.

- ``/join``: the application form. The ward is picked with one select per
  geography level (``UNIT_LEVELS``), each loaded with htmx from
  ``/join/units`` when the one above changes. Without JavaScript, a "Show
  the next list" button (inside ``<noscript>``) posts the form back and the
  page comes again with the next list filled (nothing is created; typed
  passwords must be typed again). Every field's message shows at once; a
  duplicate national ID, phone or email gets one message naming nobody; a
  filled-in honeypot field gets the same "thank you" page as a real join
  and nothing is created. POSTs are rate limited per address
  (``JOIN_RATE_LIMIT``).
- ``/join/units?unit_K=<id>``: the ``<option>``s of that unit's children
  (level K+1), and out-of-band resets of the lists below it.
- ``/join/verify/<token>``: a page with one button (a POST, so a mail
  scanner that opens links does not use the single-use link up); the POST
  marks the address verified. Expired, used or tampered links say so and
  offer ``/join/new-link``, which answers the same whether or not the
  address is known.
- ``/privacy``: the privacy notice a joiner consents to (its version is
  ``PRIVACY_NOTICE_VERSION``; edit templates/portal/privacy.html and raise it).

The rules are in ``app.services.joining``; POST views commit once.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import EqualTo

from app.extensions import db, limiter
from app.models import Unit
from app.portal.blueprint import bp
from app.services import joining, links, referrals
from app.services.errors import ServiceError, ValidationErrors
from app.services.inputs import parse_id


class JoinForm(FlaskForm):
    first_name = StringField("First name")
    last_name = StringField("Last name")
    date_of_birth = StringField("Date of birth")
    national_id = StringField("National ID number")
    phone = TelField("Phone number")
    email = EmailField("Email address")
    address = TextAreaField("Address")
    password = PasswordField("Password")
    confirm = PasswordField("Password again", validators=[EqualTo("password", message="The two passwords differ.")])
    referral_code = StringField("Referral code (optional)")
    referral_link = HiddenField()  # the code the join link carried: the source is "link" while it is unchanged
    consent = BooleanField("I have read the privacy notice and agree to it.")
    website = StringField("Leave this field empty")  # the honeypot: hidden from people, filled by bots


class NewLinkForm(FlaskForm):
    email = EmailField("Email address")


def _join_limit() -> str:
    return current_app.config["JOIN_RATE_LIMIT"]


def _levels() -> list[str]:
    return current_app.config["UNIT_LEVELS"]


def _picked(values) -> list[Unit]:
    """The ward picker's chain from ``unit_0``, ``unit_1``... of a form or a query string."""
    return joining.ward_chain([values.get(f"unit_{k}") for k in range(len(_levels()))])


def _picker(chain: list[Unit]) -> list[dict[str, Any]]:
    """One select per level: its label, its options and the choice (the lists below a gap stay empty)."""
    selects = []
    for k, level in enumerate(_levels()):
        options = joining.children_of(chain[k - 1] if k else None) if k <= len(chain) else []
        selects.append({"k": k, "level": level, "options": options,
                        "chosen": chain[k].id if k < len(chain) else None,
                        "above": _levels()[k - 1] if k else None, "last": k == len(_levels()) - 1})
    return selects


def _render(form: JoinForm, chain: list[Unit], *, unit_error: str | None = None, problem: str | None = None,
            link_notice: str | None = None, status: int = 200):
    return render_template("portal/join.html", form=form, selects=_picker(chain), unit_error=unit_error,
                           problem=problem, link_notice=link_notice, ward=joining.ward_label(),
                           notice_version=current_app.config["PRIVACY_NOTICE_VERSION"]), status


def _place(form: JoinForm, exc: ValidationErrors) -> str | None:
    """Each service message under its field; the ward's is returned (the picker is not a WTForms field)."""
    unit_error = None
    for name, message in exc.errors.items():
        if name == "unit_id":
            unit_error = message
        elif name in form and not form[name].errors:
            form[name].errors = [message]
        elif name not in form:
            form.form_errors.append(message)
    return unit_error


@bp.route("/join", methods=["GET", "POST"])
@limiter.limit(_join_limit, methods=["POST"])
def join():
    if current_user.is_authenticated:
        return redirect(url_for("portal.home"))
    form = JoinForm()
    chain = _picked(request.form if request.method == "POST" else request.args)
    if request.method == "GET":
        return _render(form, chain, link_notice=_from_link(form, request.args.get("ref")))
    # (CSRFProtect has checked the token before this view runs.)
    if (form.website.data or "").strip():
        return redirect(url_for("portal.join_done"))  # a bot: the same answer as a real join, nothing made
    if request.form.get("step") == "units":  # the no-JavaScript picker: show the next list, check nothing
        return _render(form, chain)
    form.validate()
    data = {name: form[name].data for name in joining.MEMBER_FIELDS}
    data.update(unit_id=chain[-1].id if chain else None, password=form.password.data or "",
                consent=bool(form.consent.data), referral_code=form.referral_code.data,
                referral_source=_source(form))
    try:
        if form.errors:
            joining.check_application(data)  # its messages too, so one submit shows every one
        else:
            joining.join(data)
            db.session.commit()
            return redirect(url_for("portal.join_done"))
    except ValidationErrors as exc:
        db.session.rollback()
        return _render(form, chain, unit_error=_place(form, exc), status=422)
    except joining.DuplicateApplication as exc:
        db.session.rollback()
        return _render(form, chain, problem=exc.message, status=409)
    return _render(form, chain, status=422)


def _from_link(form: JoinForm, ref: str | None) -> str | None:
    """Fill the code a join link (``/join?ref=CODE``) carries; a code that cannot be used is said, not kept.

    Nothing about the code's holder is shown: the link may be passed on to anyone.
    """
    if not (ref or "").strip():
        return None
    try:
        code, _referrer = referrals.check_code(ref[:40])
    except ServiceError as exc:
        return f"{exc.message}"
    form.referral_code.data = form.referral_link.data = code
    return None


def _source(form: JoinForm) -> str:
    """"link" while the code is the one the join link carried, else "code" (typed, or changed)."""
    try:
        typed = referrals.normalise_code(form.referral_code.data)
        carried = referrals.normalise_code(form.referral_link.data)
    except ServiceError:
        return "code"
    return "link" if typed is not None and typed == carried else "code"


@bp.route("/join/units")
def join_units():
    """The options below the unit that ``unit_K`` names (a select changed at level K)."""
    levels = _levels()
    k = next((k for k in range(len(levels)) if f"unit_{k}" in request.args), None)
    if k is None or k + 1 >= len(levels):
        return render_template("portal/_unit_options.html", options=[], level=None, resets=[]), 400
    unit = db.session.get(Unit, parse_id(request.args.get(f"unit_{k}")) or 0)
    picked = unit is not None and unit.level == k
    options = joining.children_of(unit) if picked else []
    resets = [{"k": j, "above": levels[j - 1]} for j in range(k + 2, len(levels))]
    return render_template("portal/_unit_options.html", options=options, level=levels[k + 1],
                           above=levels[k], chosen=picked, resets=resets)


@bp.route("/join/done")
def join_done():
    return render_template("portal/join_done.html")


@bp.route("/privacy")
def privacy():
    return render_template("portal/privacy.html", version=current_app.config["PRIVACY_NOTICE_VERSION"])


@bp.route("/join/verify/<token>", methods=["GET", "POST"])
def verify_email(token: str):
    try:
        if request.method == "GET":
            joining.check_verification(token)
            return render_template("portal/verify_email.html", state="confirm", form=FlaskForm())
        member = joining.verify_email(token)
        db.session.commit()
    except links.LinkError as exc:
        db.session.rollback()
        return render_template("portal/verify_email.html", state=exc.reason, message=exc.message,
                               form=NewLinkForm()), exc.status
    return render_template("portal/verify_email.html", state="done", member=member)


@bp.route("/join/new-link", methods=["GET", "POST"])
@limiter.limit(_join_limit, methods=["POST"])
def new_verification_link():
    """Ask for a new verification link; the answer is the same whether or not the address is known."""
    form = NewLinkForm()
    if request.method == "POST":
        try:
            joining.resend_verification(form.email.data)
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            form.email.errors = [exc.message]
            return render_template("portal/new_link.html", form=form), 422
        return render_template("portal/new_link.html", form=form, sent=True)
    return render_template("portal/new_link.html", form=form)

"""Account pages for members and staff alike: forgot password, reset, activation, change password.

Blueprint ``accounts`` (no prefix):

- ``/password/forgot``: public; asks for an email or a phone number and
  always answers "if there is an account, a link is on its way" (rate
  limited per address by RESET_RATE_LIMIT; the service adds a few mails per
  account an hour);
- ``/password/reset/<token>`` and ``/activate/<token>``: public; a new
  password twice. An expired, used or tampered link says which, and offers a
  new one. These pages carry a one-time secret in their URL: they are never
  cached and send no Referer;
- ``/account/password``: signed in; the current password and the new one
  twice. Other sessions and API tokens end; this browser stays signed in.

Views parse and render; ``app.services.accounts`` holds the rules; a POST
commits once.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user
from flask_principal import Identity, identity_changed
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.extensions import db, limiter
from app.services import accounts
from app.services.errors import ServiceError, ValidationErrors
from app.services.links import LinkError

bp = Blueprint("accounts", __name__)

ERRORS_LABEL = "Please correct the marked fields."


class ForgotForm(FlaskForm):
    login = StringField("Email or phone number", validators=[DataRequired("Give your email or phone number."),
                                                            Length(max=254)])


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired("Choose a new password.")])
    confirm = PasswordField("New password again", validators=[DataRequired("Type the new password again.")])


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField("Current password", validators=[DataRequired("Give your current password.")])


def _reset_limit() -> str:
    return current_app.config["RESET_RATE_LIMIT"]


def _show(form: FlaskForm, exc: ServiceError) -> None:
    """A service's field messages under the form's fields (all of them), the rest as form errors."""
    found = exc.errors if isinstance(exc, ValidationErrors) else {exc.field: exc.message}
    for name, message in found.items():
        field = getattr(form, name or "", None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, message]
        else:
            form.form_errors.append(message)


def _secret_page(response):
    """Pages whose URL holds a one-time secret: not cached, not leaked through Referer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_reset_limit, methods=["POST"])
def forgot():
    form = ForgotForm()
    if form.validate_on_submit():
        accounts.request_reset(form.login.data, request.remote_addr)
        db.session.commit()
        # The same page whatever happened: it must not tell who has an account.
        return render_template("accounts/forgot_sent.html", hours=accounts.hours_text(
            current_app.config["RESET_HOURS"]))
    return render_template("accounts/forgot.html", form=form), 400 if form.errors else 200


def _link_page(purpose: str, token: str, template: str, done_message: str):
    """The reset and the activation page: check the link, take a new password twice, redeem."""
    try:
        link = accounts.check_link(purpose, token)
    except LinkError as exc:
        db.session.rollback()
        return _secret_page(current_app.make_response((
            render_template("accounts/link_problem.html", problem=exc, purpose=purpose), exc.status)))
    form = NewPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            accounts.set_password_by_link(purpose, token, form.password.data, form.confirm.data)
        except LinkError as exc:  # used up by a second tab a moment ago
            db.session.rollback()
            return _secret_page(current_app.make_response((
                render_template("accounts/link_problem.html", problem=exc, purpose=purpose), exc.status)))
        except ServiceError as exc:
            db.session.rollback()
            _show(form, exc)
            status = exc.status
        else:
            db.session.commit()
            flash(done_message, "success")
            return redirect(url_for("auth.login"))
    elif form.errors:
        status = 400
    return _secret_page(current_app.make_response((
        render_template(template, form=form, email=link.user.email), status)))


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_reset_limit, methods=["POST"])
def reset(token: str):
    return _link_page("reset-password", token, "accounts/reset.html",
                      "Your new password is set, and every other session has been signed out. Sign in with it now.")


@bp.route("/activate/<token>", methods=["GET", "POST"])
@limiter.limit(_reset_limit, methods=["POST"])
def activate(token: str):
    return _link_page("activate", token, "accounts/activate.html",
                      "Your password is set: your account is ready. Sign in with it now.")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@limiter.limit(_login_limit, methods=["POST"])  # the current password is guessed no faster than at sign-in
def change_password():
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            accounts.change_password(user, form.current_password.data, form.password.data, form.confirm.data)
        except ServiceError as exc:
            db.session.rollback()
            _show(form, exc)
            status = exc.status
        else:
            db.session.commit()
            # Other sessions named the old token and are over; this browser gets a fresh session with the new one.
            session.clear()
            login_user(user)
            identity_changed.send(current_app._get_current_object(), identity=Identity(user.id))
            flash("Your password is changed. Your other sessions and API tokens have been signed out.", "success")
            return redirect(url_for("accounts.change_password"))
    elif form.errors:
        status = 400
    return render_template("accounts/change_password.html", form=form), status

"""Login and logout pages shared by the staff console and the member portal.

Login is rate limited per IP address (Flask-Limiter) on top of the per-account
lockout applied by the auth service.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_principal import AnonymousIdentity, Identity, identity_changed
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from app.extensions import db, limiter
from app.security import has_console_access
from app.services.auth import LoginError, authenticate

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    # No syntax check here: a login only has to match an existing account.
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _safe_next(target: str | None) -> str | None:
    """Only follow same-site relative redirects after login."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data, form.password.data)
        except LoginError as exc:
            db.session.commit()  # keep the failure count and audit entry
            form.password.errors.append(exc.message)
            return render_template("auth/login.html", form=form), exc.status
        db.session.commit()
        login_user(user)
        identity_changed.send(current_app._get_current_object(), identity=Identity(user.id))
        default = url_for("admin.index") if has_console_access(user) else url_for("portal.home")
        return redirect(_safe_next(request.args.get("next")) or default)
    return render_template("auth/login.html", form=form), 400 if form.errors else 200


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    identity_changed.send(current_app._get_current_object(), identity=AnonymousIdentity())
    flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.app_context_processor
def inject_user_flags():
    return {"has_console_access": lambda: current_user.is_authenticated and has_console_access(current_user)}

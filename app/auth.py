"""Login and logout pages shared by the staff console and the member portal.

Login is rate limited per IP address (Flask-Limiter) on top of the per account
and address lockout applied by the auth service.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_principal import AnonymousIdentity, Identity, identity_changed
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from app.extensions import db, limiter
from app.security import has_console_access
from app.services.auth import LoginError, authenticate, end_sessions

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    # No syntax check here: a login only has to match an existing account. The field keeps its
    # name ``email`` (password managers, scripts), but takes a member's phone number too.
    email = StringField("Email or phone number", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


# Percent-encoded control characters anywhere, and encoded slash, backslash or percent in the path.
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)
_ENCODED_IN_PATH = re.compile(r"%(?:2f|5c|25)", re.IGNORECASE)


def _safe_next(target: str | None) -> str | None:
    """Only follow same-site paths after login; anything odd falls back to the default page.

    Browsers forgive a lot in a Location header: they drop tabs and newlines,
    read a backslash as a slash (``/\\evil.example`` is another site) and
    some decode ``%5C`` or ``%2F`` before deciding. So a ``next`` with control
    characters or whitespace (plain or encoded), backslashes, or an encoded
    slash, backslash or percent sign in its path is refused outright rather
    than cleaned up. Encoded slashes in the query (Flask-Admin's ``url=``
    return addresses) are fine.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if any(ch == "\\" or ch.isspace() or not ch.isprintable() for ch in target):
        return None
    path = target.partition("?")[0]
    if _ENCODED_CONTROL.search(target) or _ENCODED_IN_PATH.search(path):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
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
            user = authenticate(form.email.data, form.password.data, request.remote_addr)
        except LoginError as exc:
            db.session.commit()  # keep the failure count and audit entry
            form.password.errors.append(exc.message)
            return render_template("auth/login.html", form=form), exc.status
        db.session.commit()
        # A fresh session on sign-in: nothing from before it (a planted cookie's contents, the
        # anonymous CSRF token) carries over into the signed-in one.
        session.clear()
        login_user(user)
        identity_changed.send(current_app._get_current_object(), identity=Identity(user.id))
        default = url_for("admin.index") if has_console_access(user) else url_for("portal.home")
        return redirect(_safe_next(request.args.get("next")) or default)
    return render_template("auth/login.html", form=form), 400 if form.errors else 200


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    # Replacing the session token ends this session on the server too: a copy of
    # the cookie taken before now signs nobody in.
    end_sessions(current_user._get_current_object())
    db.session.commit()
    logout_user()
    identity_changed.send(current_app._get_current_object(), identity=AnonymousIdentity())
    flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.app_context_processor
def inject_user_flags():
    return {"has_console_access": lambda: current_user.is_authenticated and has_console_access(current_user)}

"""Flask-Login and Flask-Principal wired to ``app.security``: which user a session cookie names, and their needs.

Kept apart from ``app.security`` (which decides who may do what) because this
is plumbing: the session cookie's lookup, the identity Flask-Principal
carries, and cookie-less sessions for the API. The needs an identity
provides mirror ``security.grants_for`` exactly, so nothing here grants
anything of its own.
"""

from __future__ import annotations

from typing import Callable

from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from flask_principal import ActionNeed, Identity, RoleNeed, UserNeed, identity_loaded
from sqlalchemy import select

from app.extensions import db, login_manager, principal
from app.models import User
from app.security import grants_for, role_names_for


@login_manager.user_loader
def load_user(session_token: str) -> User | None:
    """The user a session cookie names: by ``User.session_token`` (``get_id``), never by id.

    Logout, a password change and deactivation replace the token, so a cookie
    issued before them (or copied) finds nobody and the request is signed out.
    """
    user = db.session.scalar(select(User).where(User.session_token == session_token))
    return user if user is not None and user.active else None


def _identity_loader() -> Identity | None:
    if current_user.is_authenticated:
        return Identity(current_user.id, "session")
    return None


class PageSessions(SecureCookieSessionInterface):
    """Cookie sessions for pages only: the API authenticates by bearer token, never by cookie.

    An API request gets Flask's null session, so no cookie is read, verified
    or written for it (nor a ``Vary: Cookie`` added): less work on every scan
    at the door, and one more way the session cannot leak into the API.
    """

    def __init__(self, cookieless: Callable[[str], bool]) -> None:
        self.cookieless = cookieless

    def open_session(self, app, request):
        if self.cookieless(request.path):
            return self.null_session_class()
        return super().open_session(app, request)


def init_security(app) -> None:
    """Bind Flask-Login and Flask-Principal; identity needs mirror the user's grants."""
    from app.api.context import is_api_path  # late: the API package imports this module

    app.session_interface = PageSessions(is_api_path)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.session_protection = "strong"
    principal.init_app(app)
    principal.identity_loader(_identity_loader)

    @identity_loaded.connect_via(app)
    def on_identity_loaded(sender, identity):  # noqa: ARG001
        user = db.session.get(User, identity.id) if identity.id is not None else None
        if user is None:
            return
        identity.provides.add(UserNeed(user.id))
        for name in role_names_for(user):
            identity.provides.add(RoleNeed(name))
        for gr in grants_for(user):
            identity.provides.add(ActionNeed(gr.permission))

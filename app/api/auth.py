"""Bearer-token authentication for the API, and the endpoints that issue and revoke tokens.

The API authenticates *only* by ``Authorization: Bearer <token>``, never by the
console's session cookie. That is what makes exempting the blueprint from CSRF
safe: a browser attaches cookies to cross-site requests on its own, but never
an Authorization header. So for every /api/v1 request the Flask-Login user is
pinned to anonymous before anything can read the session, and replaced by the
token's user once the token checks out.
"""

from __future__ import annotations

from typing import Any, Callable

from flask import current_app, g, jsonify, request
from flask_principal import Identity, identity_changed

from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.inputs import check_types, json_object, reject_unknown, require
from app.api.serialize import iso
from app.extensions import db, limiter, login_manager
from app.models import ApiToken
from app.security import forget_grants
from app.services import auth as auth_service

ViewFunc = Callable[..., Any]


def public(view: ViewFunc) -> ViewFunc:
    """Mark a view as reachable without a token (place it right under the route decorator)."""
    view.api_public = True  # type: ignore[attr-defined]
    return view


def pin_anonymous() -> None:
    """Start every API request as anonymous, so the session cookie is never consulted.

    Flask-Login loads the user lazily from the session the first time
    ``current_user`` is touched (Flask-Principal's before_request does so);
    setting ``g._login_user`` first, as Flask-Login itself does, short-circuits
    that. The per-request permission caches are dropped too: ``g`` can outlive
    one request when an app context is already pushed (tests, scripts).
    """
    g._login_user = login_manager.anonymous_user()
    g.pop("api_token", None)
    forget_grants()


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate_request() -> None:
    """before_request for the blueprint: everything except public views needs a live token."""
    view = current_app.view_functions.get(request.endpoint or "")
    if request.method == "OPTIONS" or getattr(view, "api_public", False):
        return
    token = _bearer_token()
    if token is None:
        raise ApiError(401)
    found = auth_service.user_for_token(token)
    if found is None:
        raise ApiError(401, "The token is invalid, expired or revoked.")
    user, row = found
    g._login_user = user  # what login_user() sets, without touching the session
    g.api_token = row
    identity_changed.send(current_app._get_current_object(), identity=Identity(user.id, "token"))


def _token_rate_limit() -> str:
    """The login page's limit, read per request so configuration (and tests) can change it."""
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.post("/auth/token")
@public
@limiter.limit(_token_rate_limit)
def issue_token():
    """Exchange email and password for a bearer token.

    Goes through the same ``authenticate`` as the login page, so failures here
    count towards the same lockout; the failure count is committed even though
    the request fails, or the lockout could be dodged.
    """
    data = json_object()
    reject_unknown(data, {"email", "password", "name"})
    check_types(data, {"email": "string", "password": "string", "name": "string"}, nullable={"name"})
    email = require(data, "email", "Give the email address of your account.")
    password = require(data, "password", "Give your password.")
    try:
        user = auth_service.authenticate(email, password, request.remote_addr)
    except auth_service.LoginError:
        db.session.commit()
        raise
    token, row = auth_service.issue_token(user, name=(data.get("name") or "api")[:80])
    db.session.commit()
    return jsonify({"token": token, "token_type": "Bearer", "expires_at": iso(row.expires_at)})


@bp.delete("/auth/token")
def revoke_token():
    """Revoke the token this request was made with (log out of the API)."""
    row: ApiToken = g.api_token
    auth_service.revoke_token(actor(), row)
    db.session.commit()
    return "", 204

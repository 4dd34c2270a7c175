"""Bearer-token authentication for the API, and the endpoints that issue and revoke tokens.

The API authenticates *only* by ``Authorization: Bearer <token>``, never by the
console's session cookie. That is what makes exempting the blueprint from CSRF
safe: a browser attaches cookies to cross-site requests on its own, but never
an Authorization header. So for every /api/v1 request the Flask-Login user is
pinned to anonymous before anything can read the session, and replaced by the
token's user once the token checks out.
"""

from __future__ import annotations

from typing import Annotated, Literal

from flask import current_app, g, request
from pydantic import Field

from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.schema import Body, Out, Text, Timestamp
from app.api.spec import operation
from app.extensions import db, limiter, login_manager
from app.models import ApiToken
from app.security import forget_grants
from app.services import auth as auth_service

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


def _token_rate_limit() -> str:
    """The login page's limit, read per request so configuration (and tests) can change it."""
    return current_app.config["LOGIN_RATE_LIMIT"]


class TokenRequest(Body):
    messages = {"email": "Give the email address (or phone number) of your account.", "password": "Give your password."}

    email: Annotated[str, Field(min_length=1, description="The account's email address, or the phone number of "
                                                          "its member record, as on the sign-in page.")]
    password: Annotated[str, Field(min_length=1, json_schema_extra={"format": "password"})]
    name: Text(80) | None = Field(None, description="A label for the token (default: api).")


class Token(Out):
    token: str = Field(description="Send as `Authorization: Bearer <token>`. Shown once.")
    token_type: Literal["Bearer"]
    expires_at: Timestamp


# The limit comes first, as on the login page: a limited address is told so before anything is read.
@bp.post("/auth/token")
@limiter.limit(_token_rate_limit)
@operation("auth", public=True, responses={200: (Token, "A new token.")}, errors=(400, 401, 429))
def issue_token(json: TokenRequest):
    """Get a bearer token

    Checks email (or phone) and password like the login page, sharing its lockout (repeated failures from one
    address lock that address out of the account; a locked address answers 401 like a wrong password)
    and its per-IP rate limit (429). The failure count is committed even though the request fails, or
    the lockout could be dodged.
    """
    try:
        user = auth_service.authenticate(json.email, json.password, request.remote_addr)
    except auth_service.LoginError:
        db.session.commit()
        raise
    token, row = auth_service.issue_token(user, name=json.name or "api")
    db.session.commit()
    return Token(token=token, token_type="Bearer", expires_at=row.expires_at)


@bp.delete("/auth/token")
@operation("auth", responses={204: (None, "Revoked.")})
def revoke_token():
    """Revoke the token used for this request

    Logs out of the API: the token stops working at once.
    """
    row: ApiToken = g.api_token
    auth_service.revoke_token(actor(), row)
    db.session.commit()
    return "", 204

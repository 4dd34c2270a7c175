"""The JSON API under /api/v1: this file only wires it in (the blueprint, its modules, its hooks).

Layout: ``context`` (the blueprint, the id range, the acting user: what every
module shares), ``auth`` (bearer tokens and request authentication),
``members`` and ``exports``, ``events``, ``cards``, ``me`` (self-service), ``jobs`` (long work: 202 + Location), ``rbac`` (roles,
permissions, users' roles), ``units``, ``spec`` (each operation's contract
and the document at /api/v1/openapi.json, from the schemas built of
``schema``), ``errors`` (the one JSON error shape), ``inputs`` (request
parsing) and ``serialize`` (list pages); ``reference`` is /api/docs. Modules take what they
share from ``context``, never from this package, so importing them here to
register their routes makes no import cycle.

Views stay thin: parse, call a service, commit once on success, serialise.
Failures of any kind answer ``{"error": ..., "details": ...}`` JSON.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

# Each module attaches its routes to ``context.bp`` when first imported (once per process).
from app.api import auth, cards, errors, events, exports, jobs, me, members, rbac, spec, units  # noqa: F401
from app.api import approvals  # noqa: F401  (approve / reject pending members, issue 11)
from app.api import scheduler  # noqa: F401  (GET /scheduler/runs, issue 12)
from app.api import notifications  # noqa: F401  (the member's own notifications, issue 12)
from app.api import referrals  # noqa: F401  (referrals, codes, figures and a member's own, issue 13)
from app.api import dues  # noqa: F401  (tiers, payments, a member's and the caller's own, issue 14)
from app.api.context import bp, is_api_path
from app.api.reference import init_reference
from app.extensions import csrf

# JSON bodies are small; a smaller cap than the upload-oriented MAX_CONTENT_LENGTH.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

errors.register_error_handlers(bp)
bp.before_request(auth.authenticate_request)


def _start_api_request() -> Response | None:
    """Runs before every other before_request hook for /api/v1 paths.

    It pins the user to anonymous before Flask-Principal's hook can load one
    from the session cookie (see ``auth.pin_anonymous``), and answers URLs that
    match no route (404) or no method (405) in JSON: such requests belong to
    no blueprint, so the blueprint's error handlers would never see them.
    """
    if not is_api_path(request.path):
        return None
    auth.pin_anonymous()
    request.max_content_length = int(current_app.config.get("API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
    exc = request.routing_exception
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code >= 400:
        return errors.from_http_exception(exc)
    return None


def _end_api_request(_exc: BaseException | None) -> None:
    """The token's user belongs to one request; never let it linger in ``g``."""
    if is_api_path(request.path):
        for name in ("_login_user", "api_token", "identity"):
            g.pop(name, None)


def init_api(app: Flask) -> None:
    # CSRF protection is for cookie-authenticated forms; the API takes bearer tokens only.
    csrf.exempt(bp)
    # First in line, ahead of Flask-Principal's and CSRFProtect's hooks (see _start_api_request).
    app.before_request_funcs.setdefault(None, []).insert(0, _start_api_request)
    app.teardown_request(_end_api_request)
    app.register_blueprint(bp)
    init_reference(app)  # /api/docs, the reference for people

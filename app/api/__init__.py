"""The JSON API under /api/v1.

Layout: ``auth`` (bearer tokens and request authentication), ``members``,
``rbac`` (roles, permissions, users' roles), ``units``, ``openapi`` (the
document at /api/v1/openapi.json), ``errors`` (the one JSON error shape),
``inputs`` (request parsing) and ``serialize`` (models as JSON).

Views stay thin: parse, call a service, commit once on success, serialise.
Failures of any kind answer ``{"error": ..., "details": ...}`` JSON.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from app.services.inputs import MAX_ID  # noqa: F401  (the API's id range, imported from here by its modules)

API_PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=API_PREFIX)

# JSON bodies are small; a smaller cap than the upload-oriented MAX_CONTENT_LENGTH.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


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


# Routes, handlers and hooks are attached to the blueprint once, at import; init_api
# may run for several apps (tests create more than one). Imported last: these modules
# import ``bp`` from here.
from app.api import auth, cards, errors, events, members, openapi, rbac, units  # noqa: E402,F401
from app.api import exports  # noqa: E402,F401  (GET /members/export)
from app.extensions import csrf  # noqa: E402

errors.register_error_handlers(bp)
bp.before_request(auth.authenticate_request)

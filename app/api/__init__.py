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
from werkzeug.routing import IntegerConverter

API_PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=API_PREFIX)

# Primary keys are 32-bit integers on PostgreSQL; a larger id cannot exist, and passing
# one to the database would fail (SQLite: OverflowError) instead of answering 404.
MAX_ID = 2**31 - 1
# JSON bodies are small; a smaller cap than the upload-oriented MAX_CONTENT_LENGTH.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _decimal_range_regex(limit: int) -> str:
    """A regex for the decimal numbers 1..limit, without leading zeros."""
    digits = str(limit)
    alternatives = []
    if len(digits) > 1:
        alternatives.append(rf"[1-9]\d{{0,{len(digits) - 2}}}")  # every shorter number
    for i, digit in enumerate(digits):  # same length: equal up to i, smaller at i, anything after
        low = "1" if i == 0 else "0"
        if int(digit) > int(low):
            rest = len(digits) - i - 1
            alternatives.append(f"{digits[:i]}[{low}-{int(digit) - 1}]" + (rf"\d{{{rest}}}" if rest else ""))
    alternatives.append(digits)
    return "(?:" + "|".join(alternatives) + ")"


class IdConverter(IntegerConverter):
    """``<pk:name>``: a database id, 1..MAX_ID. Anything else (abc, -1, 0, 007, 10**20) is a 404.

    The range lives in the regex rather than in ``min``/``max``: werkzeug
    checks those after matching, and a value refused there makes a sibling
    rule with another method answer 405 instead of 404.
    """

    regex = _decimal_range_regex(MAX_ID)


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


def _commit_on_success(response: Response) -> Response:
    """Persist the token's last-used time on successful reads.

    Write views commit themselves (so a failing commit still reaches the error
    handlers); what is left here is only that bookkeeping. Failed requests
    were already rolled back by the error handlers.
    """
    if response.status_code < 400:
        db.session.commit()
    return response


def init_api(app: Flask) -> None:
    app.url_map.converters["pk"] = IdConverter  # before the blueprint adds its rules
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
from app.extensions import csrf, db  # noqa: E402

errors.register_error_handlers(bp)
bp.before_request(auth.authenticate_request)
bp.after_request(_commit_on_success)

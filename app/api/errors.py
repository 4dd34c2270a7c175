"""One error shape for the whole API: ``{"error": "<message>", "details": <object or null>}``.

A client must be able to rely on that shape whatever went wrong (routing,
authentication, a malformed body, a broken business rule, a rate limit), and
bad input must never turn into a 500 or an HTML page. Every handler rolls the
session back: a request that fails leaves nothing half-written behind.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from app.extensions import db
from app.services.errors import Forbidden, ServiceError

# Messages for people, used unless the code that raised gave a more specific one.
MESSAGES: dict[int, str] = {
    400: "The request is malformed.",
    401: "Authentication required: send 'Authorization: Bearer <token>'.",
    403: "You do not have permission to do this.",
    404: "Not found.",
    405: "This method is not allowed on this URL.",
    409: "This conflicts with the current state of the data.",
    413: "The request body is too large.",
    415: "Send the request body as JSON.",
    422: "The data sent is not valid.",
    429: "Too many requests: wait a little and try again.",
    500: "Something went wrong on our side; the request was not carried out.",
}


class ApiError(Exception):
    """An error the API layer itself detects (malformed input, missing token, no permission).

    Business rules raise ``ServiceError`` from the services instead; both end
    up in the same JSON shape.
    """

    def __init__(self, status: int, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message or MESSAGES.get(status, "Error."))
        self.status = status
        self.message = message or MESSAGES.get(status, "Error.")
        self.details = details


def error_response(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    response = jsonify({"error": message, "details": details})
    response.status_code = status
    if status == 401:
        # RFC 6750: tell the client which scheme to use.
        response.headers["WWW-Authenticate"] = 'Bearer realm="muster"'
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def from_http_exception(exc: HTTPException) -> Response:
    """Turn a werkzeug/Flask HTTP error (abort(404), 405, 413, 429...) into the JSON shape."""
    status = exc.code or 500
    # Keep a message given at the raise site (abort(404, "No such role.")), not werkzeug's
    # generic text written for browsers.
    custom = exc.description and exc.description != type(exc).description
    message = exc.description if custom and status != 429 else MESSAGES.get(status, exc.name)
    details: dict[str, Any] | None = None
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        details = {"allowed_methods": sorted(exc.valid_methods)}
    if status == 429:
        details = {"limit": exc.description}
    if isinstance(exc, Forbidden) and exc.permission:
        details = {"permission": exc.permission}
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return error_response(status, message, details, headers)


def service_error_details(exc: ServiceError) -> dict[str, Any] | None:
    """Details for a broken rule: always names the field when the service did."""
    details = dict(exc.details) if isinstance(exc.details, dict) else {}
    if exc.details is not None and not isinstance(exc.details, dict):
        details["info"] = exc.details
    if exc.field and "field" not in details:
        details["field"] = exc.field
    return details or None


def register_error_handlers(bp: Blueprint) -> None:
    """Attach the JSON handlers to the API blueprint only; console and portal keep HTML errors."""

    @bp.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        db.session.rollback()
        return error_response(exc.status, exc.message, exc.details)

    @bp.errorhandler(ServiceError)
    def handle_service_error(exc: ServiceError):
        db.session.rollback()
        return error_response(exc.status, exc.message, service_error_details(exc))

    @bp.errorhandler(IntegrityError)
    def handle_integrity_error(exc: IntegrityError):
        # Services check uniqueness first; this only catches the race where two
        # requests insert the same value at once.
        db.session.rollback()
        return error_response(409, "This conflicts with existing data (a value that must be unique is taken).")

    @bp.errorhandler(InternalServerError)
    def handle_internal_error(exc: InternalServerError):
        # Reached only for unexpected exceptions (in tests they propagate instead).
        db.session.rollback()
        return error_response(500, MESSAGES[500])

    @bp.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        db.session.rollback()
        if exc.code is not None and exc.code < 400:  # redirects (e.g. trailing slash) stay redirects
            return exc
        return from_http_exception(exc)

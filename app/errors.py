"""Error pages for people and JSON errors for API callers.

Errors raised before any blueprint code runs (a missing CSRF token, an unknown
URL, a rate limit) land here; pages under /api/ always answer JSON
``{"error": ..., "details": ...}`` so API clients never get HTML.
"""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.services.errors import Forbidden

MESSAGES = {
    400: "The request could not be understood.",
    403: "You do not have permission to see this page.",
    404: "There is nothing here.",
    405: "That action is not allowed here.",
    413: "The upload is too large.",
    429: "Too many attempts. Please wait a minute and try again.",
}


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def init_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        message = "This form has expired or did not come from this site. Go back, reload the page and try again."
        if _wants_json():
            return jsonify(error=message, details=None), 400
        return render_template("errors/error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        message = MESSAGES.get(code, exc.description or exc.name)
        if isinstance(exc, Forbidden):  # the service said what was refused, in words for this page
            message = exc.description
        if code == 429:
            message = f"{MESSAGES[429]} (limit: {exc.description})"
        if _wants_json():
            return jsonify(error=message, details=None), code
        if code in (301, 302, 303, 307, 308):
            return exc
        return render_template("errors/error.html", code=code, message=message), code

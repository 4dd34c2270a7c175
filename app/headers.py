"""Security headers on every response, set in this one place.

- HTML pages get a Content-Security-Policy that runs scripts only from this
  site's own files: no inline ``<script>`` and no ``on...=`` attributes (page
  behaviour lives in ``app/static/js/``; console buttons ask for a
  confirmation with ``data-confirm``), and no framing (``frame-ancestors``).
  Forms post to this site only, except on the pages whose "Pay online" form
  redirects to the payment provider (``policy_allowing_form_targets``).
  Styles may still be inline: Flask-Admin, FullCalendar and htmx write them.
- Every response gets ``nosniff`` and a Referrer-Policy that keeps paths (which
  may hold ids and search terms) on this site.
- Pages and data for signed-in people (console, portal, API, downloads) are
  ``no-store`` unless the view chose its own caching (photos); static files
  keep theirs.
- When MUSTER_PUBLIC_URL is https, browsers are told to use nothing else (HSTS);
  the session cookie is then Secure too (``SESSION_COOKIE_SECURE`` in config).

The Host header itself is checked by Flask against TRUSTED_HOSTS (config);
a request for any other host answers a bare 400 here, because no URL can be
built for it (the usual error page links to the site).
"""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import SecurityError

_DIRECTIVES = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "media-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]
CONTENT_SECURITY_POLICY = "; ".join(_DIRECTIVES)
HSTS = "max-age=31536000"


def policy_allowing_form_targets(origins: tuple[str, ...]) -> str:
    """The policy for a page whose forms lead off the site: a "Pay online" form redirects to the payment page.

    Browsers apply ``form-action`` to the redirects that follow a form too, so
    the page holding the form must name the payment provider's origin.
    """
    extra = " ".join(origins)
    return "; ".join(f"{d} {extra}" if d.startswith("form-action") and extra else d for d in _DIRECTIVES)


def _is_static() -> bool:
    """Files served from a static folder (the app's or Flask-Admin's)."""
    endpoint = request.endpoint or ""
    return endpoint == "static" or endpoint.endswith(".static")


def add_security_headers(response: Response) -> Response:
    """after_request for every response; a header a view set itself is kept."""
    headers = response.headers
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if (current_app.config.get("PUBLIC_URL") or "").startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    # send_file's default "no-cache" (job downloads) still lets a browser keep the file on disk.
    if not _is_static() and headers.get("Cache-Control") in (None, "no-cache"):
        headers["Cache-Control"] = "no-store"
    return response


def untrusted_host(_exc: SecurityError):
    """A Host outside TRUSTED_HOSTS: a plain 400 that builds no URL."""
    message = "This site does not answer to that host name."
    if request.path.startswith("/api/"):
        return jsonify(error=message, details=None), 400
    return Response(message, status=400, mimetype="text/plain")


def init_headers(app: Flask) -> None:
    app.after_request(add_security_headers)
    app.register_error_handler(SecurityError, untrusted_host)

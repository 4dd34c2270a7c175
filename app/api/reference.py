"""``/api/docs``: the API reference for people, Swagger UI over the document at /api/v1/openapi.json.

Swagger UI is vendored (``app/static/vendor/swagger-ui``, from the npm
package ``swagger-ui-dist``) so the page works offline, and its start-up code
is a static file (``app/static/js/api-reference.js``): the page's
Content-Security-Policy runs no inline script. It is a page, not part of the
JSON API, so it lives outside /api/v1 and answers errors like the console.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template, url_for

from app.api.spec import api_title

bp = Blueprint("api_reference", __name__)


@bp.get("/api/docs")
def reference():
    return render_template("api/reference.html", title=api_title(), document_url=url_for("api.openapi_document"))


def init_reference(app: Flask) -> None:
    app.register_blueprint(bp)

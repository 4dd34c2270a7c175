"""Compression (Flask-Compress) for the app's own static files: CSS, JavaScript and SVG.

Why: a member on a cheap phone downloads Bootstrap (232 KB of CSS, 80 KB of
script) before any portal page shows; compressed that is about 55 KB, which
keeps the dashboard under its 150 KB page-weight target (bench/portal.py)
even when gunicorn serves the files itself with no proxy in front.

Only those types are compressed, never pages (text/html) or API answers
(application/json): those carry CSRF tokens and personal data next to text
a visitor can influence, which is what compression side channels (BREACH)
feed on. Brotli where the browser takes it, else gzip.

Flask serves a static file as a stream, and Flask-Compress would then
compress it anew on every request without a Content-Length; so static
answers are read into memory first (the files are small), and each file is
compressed once per version (its path and modification time) and kept.
Flask-Compress gives the compressed body its own ETag (``"...:br"``) and
answers a revalidation with 304.
"""

from __future__ import annotations

import os

from flask import Flask, Response, current_app, request
from flask_compress import Compress, DictCache
from werkzeug.security import safe_join

MIMETYPES = ["text/css", "text/javascript", "application/javascript", "image/svg+xml"]
_cache = DictCache()


def _version_key(req) -> str:
    """The file and its modification time: a changed file is compressed again."""
    folder = current_app.static_folder or ""
    path = safe_join(folder, (req.view_args or {}).get("filename", "")) or ""
    try:
        return f"{path}:{os.stat(path).st_mtime_ns}"
    except OSError:
        return path


def _buffer_static(response: Response) -> Response:
    """after_request (runs before Flask-Compress's): a static file's stream read into memory."""
    if request.endpoint == "static" and response.status_code == 200 and response.mimetype in MIMETYPES:
        response.direct_passthrough = False
        response.get_data()
    return response


def init_static_compression(app: Flask) -> None:
    app.config.update(
        COMPRESS_MIMETYPES=MIMETYPES, COMPRESS_MIN_SIZE=1024, COMPRESS_ALGORITHM=["br", "gzip"],
        COMPRESS_STREAMS=False, COMPRESS_CACHE_BACKEND=lambda: _cache, COMPRESS_CACHE_KEY=_version_key,
    )
    Compress(app)
    app.after_request(_buffer_static)  # after_request hooks run last-registered first

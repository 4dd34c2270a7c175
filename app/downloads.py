"""Send a stored file to the person who asked for it, streamed: the one place downloads are built.

Every download in the console and the API (photos, event attachments, job
files) goes through ``send_stream``. The view checks access first (through
``app.security``, out of scope = 404) and only then opens the object, so
nothing is read for someone who may not have it. The response streams the
object in chunks (``wsgi.file_wrapper`` where the server has one; gunicorn
then uses sendfile for local files) with its Content-Length and a
Content-Disposition that carries the file name safely; there are no public
bucket URLs and no redirects to signed URLs.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, request
from werkzeug.wsgi import wrap_file

from app.services.storage import StoredStream

BUFFER = 256 * 1024


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """``attachment; filename="…"`` with an RFC 6266 ``filename*`` for names that are not plain ASCII."""
    kind = "inline" if inline else "attachment"
    name = (filename or "download").replace("\r", " ").replace("\n", " ")
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    ascii_name = ascii_name.replace("\\", "_").replace('"', "_")
    value = f'{kind}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def send_stream(stream: StoredStream, *, filename: str, content_type: str, inline: bool = False,
                cache: str | None = None) -> Response:
    """A response streaming ``stream`` (closed when sent, or when the client goes away).

    ``cache``: a Cache-Control value (photos may be kept a few minutes);
    by default the security headers make it ``no-store``.
    """
    body = wrap_file(request.environ, stream, buffer_size=BUFFER)
    response = Response(body, mimetype=content_type or "application/octet-stream", direct_passthrough=True)
    response.content_length = stream.size
    response.headers["Content-Disposition"] = content_disposition(filename, inline=inline)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if cache:
        response.headers["Cache-Control"] = cache
    return response

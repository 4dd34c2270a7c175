"""Request input checks that hold for every page: body size limits and NUL characters.

**Size.** A body without a Content-Length obeys the size limit like one with it.

Werkzeug refuses a declared Content-Length above ``max_content_length``
(MAX_CONTENT_LENGTH, or MUSTER_API_MAX_BODY_BYTES under /api/v1) with a 413
before reading anything. A chunked body (``Transfer-Encoding: chunked``)
declares no length; gunicorn and werkzeug's server then pass it on as a
stream capped at the limit, and werkzeug stops *reading* there. Read in
pieces (multipart uploads) that ends in a 413, but read whole (JSON, plain
forms: ``get_data()``, ``request.form``) it silently returns the first
``limit`` bytes: an API body cut short answered "not valid JSON", a form lost
the end of its last field. Here reading whole checks whether the client sent
more than the limit, and answers 413 if so.

**NUL.** No one types a NUL character, and PostgreSQL can neither store nor
compare text holding one: a search box or form field carrying it failed deep
inside a query (500). Console and portal requests with a NUL in any query or
form value answer 400 before a view runs. The API checks its own input
(``app/api/inputs.py``) and names the field at fault.
"""

from __future__ import annotations

import typing as t

from flask import Flask, Request, abort, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream


class _CappedStream(LimitedStream):
    """A stream capped at ``max_content_length`` where reading everything past the cap is a 413."""

    def __init__(self, stream: t.IO[bytes], limit: int) -> None:
        super().__init__(stream, limit, is_max=True)
        self._source = stream

    def readall(self) -> bytes:
        data = super().readall()
        # At the cap, one more byte from the client means the body was larger than allowed
        # (werkzeug's own readall stops there without looking). A body exactly at the cap ends here.
        if self.is_exhausted and self._source.read(1):
            raise RequestEntityTooLarge()
        return data


class MusterRequest(Request):
    """Flask's request, with ``stream`` capped strictly for bodies that declare no length."""

    @cached_property
    def stream(self) -> t.IO[bytes]:
        stream = super().stream
        if isinstance(stream, LimitedStream) and self.content_length is None and self.max_content_length is not None:
            # Only the capped streams werkzeug makes for bodies without a length (see the module docstring).
            return _CappedStream(self.environ["wsgi.input"], self.max_content_length)
        return stream


# Never stored nor queried: the login page's own check turns a tricky ``next=`` into its default page;
# the /verify/ index (app/verify_index.py) refuses a NUL in ``card_code`` with its own message.
_NUL_EXEMPT = frozenset({"next", "card_code"})


def _refuse_nul() -> None:
    if request.path.startswith("/api/"):
        return
    for values in (request.args, request.form):
        for key, value in values.items(multi=True):
            if "\x00" in key or ("\x00" in value and key not in _NUL_EXEMPT):
                abort(400)


def init_request(app: Flask) -> None:
    """The request class, and the NUL check. Called last: the check reads the form, so the hooks
    that set a view's own size limit (imports) and CSRFProtect's must have run first."""
    app.request_class = MusterRequest
    app.before_request(_refuse_nul)

"""Render ``templates/email/<kind>.txt`` and ``<kind>.html`` into a subject and two bodies.

Every template gets the organisation's name (``org_name``), the public
address (``public_url``) and two link builders that never look at a request:
``absolute_url("/portal/")`` and ``link_to("auth.login", next="/admin/")``
build from MUSTER_PUBLIC_URL only, so a mail queued inside a request for a
forged Host still links to the real site, and a mail queued by a task (no
request at all) links at all.

The subject is the text template's ``{% set subject = "..." %}``; the text
template extends ``email/base.txt`` and the HTML one ``email/base.html``
(header with the organisation's name, footer saying why the mail came).
Text templates are not HTML-escaped, HTML ones are (Flask's rule by file
name), so a member called ``<b>`` arrives as written in both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from jinja2 import TemplateNotFound

KIND_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,59}")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def absolute_url(path: str = "/") -> str:
    """``path`` on the public site: MUSTER_PUBLIC_URL + path."""
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    return base + "/" + path.lstrip("/")


def link_to(endpoint: str, **values: Any) -> str:
    """``url_for(endpoint, **values)`` as an absolute URL on MUSTER_PUBLIC_URL (no request needed)."""
    parts = urlsplit(current_app.config["PUBLIC_URL"])
    adapter = current_app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)
    return adapter.build(endpoint, values, force_external=True)


def template_names(kind: str) -> tuple[str, str]:
    if not KIND_RE.fullmatch(kind or ""):
        raise ValueError(f"Not a mail kind: {kind!r} (lower-case letters, digits, '.', '-' and '_').")
    return f"email/{kind}.txt", f"email/{kind}.html"


def render(kind: str, context: dict[str, Any]) -> Rendered:
    """The subject and both bodies of a ``kind`` message; ValueError when its templates are missing."""
    text_name, html_name = template_names(kind)
    values = {
        "org_name": current_app.config["ORG_NAME"],
        "public_url": current_app.config["PUBLIC_URL"],
        "absolute_url": absolute_url,
        "link_to": link_to,
        **context,
    }
    env = current_app.jinja_env
    try:
        text_template = env.get_template(text_name)
        html_template = env.get_template(html_name)
    except TemplateNotFound as exc:
        raise ValueError(f"Mail kind {kind!r} needs templates/{text_name} and templates/{html_name}.") from exc
    module = text_template.make_module(values)
    subject = " ".join(str(getattr(module, "subject", "")).split())  # one line: no header folding surprises
    if not subject:
        raise ValueError(f"templates/{text_name} sets no subject ({{% set subject = \"...\" %}}).")
    text = _tidy(str(module))
    html = html_template.render(**values, subject=subject)
    return Rendered(subject[:300], text, html)


def _tidy(text: str) -> str:
    """Template whitespace away: no trailing spaces, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out) + "\n"

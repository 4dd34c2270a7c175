"""The public card verification page: what a phone camera opens from a card's QR code.

``/verify/<token>`` needs no login. It shows what a doorkeeper needs and
nothing more: the card's status, number and expiry, the holder's first name
and last initial, and their photo (inline, so there is no public photo URL);
no name and no photo for a revoked card or a deleted member's card.
It is rate limited per IP (``CARD_VERIFY_RATE_LIMIT``, one budget shared with
the ``/verify/`` index of ``app/verify_index.py``), never cached, and asks
search engines not to index it. It ignores the session: a signed-in
staff member who scans a card sees exactly what a stranger sees.
"""

from __future__ import annotations

import base64

from flask import Blueprint, current_app, g, make_response, render_template
from app.extensions import db, limiter, login_manager
from app.services import member_photos
from app.services.cards import scanned_token, verify_token
from app.services.storage import StorageUnavailable, StoredFileMissing

bp = Blueprint("verify", __name__)

STATUS_STYLE = {
    "valid": ("success", "Valid"),
    "grace": ("warning", "In grace"),
    "expired": ("warning", "Expired"),
    "suspended": ("danger", "Suspended"),
    "revoked": ("danger", "Revoked"),
    "unknown": ("secondary", "Not recognised"),
    "invalid": ("secondary", "Not a valid card"),
}

# A revoked card (a deleted member's card verifies as revoked) names nobody: whoever holds
# it is not a member, and the page must not tell a stranger whose card it was.
SHOWS_HOLDER = ("valid", "grace", "expired", "suspended")


# The QR page and the /verify/ index (app/verify_index.py) draw from one budget per address, so
# alternating between them does not double what one address may look up.
VERIFY_LIMIT_SCOPE = "card-verify"


def verify_rate_limit() -> str:
    return current_app.config["CARD_VERIFY_RATE_LIMIT"]


def holder_label(member) -> str:
    """First name and last initial: enough to match a face, not enough to look someone up."""
    last = (member.last_name or "").strip()
    return f"{member.first_name} {last[:1]}." if last else member.first_name


@bp.route("/verify/<path:token>")
@limiter.shared_limit(verify_rate_limit, scope=VERIFY_LIMIT_SCOPE)
def page(token: str):
    return verdict_response(verify_token(scanned_token(token)))


def verdict_response(result, template: str = "cards/verify.html", **context):
    """The verdict page for ``result``: holder (first name, initial, photo) only when the status allows.

    The one place that decides what a stranger sees about a card; the /verify/ index renders
    its answers through here too (``template`` and ``context`` add its form).
    """
    holder = photo = None
    member = result.member if result.status in SHOWS_HOLDER else None
    if member is not None and member.deleted_at is None:
        holder = holder_label(member)
        try:
            found = member_photos.photo_bytes(member.id)
        except (StoredFileMissing, StorageUnavailable):
            found = None  # the check still answers; the page says there is no photo
        if found is not None:
            content, content_type = found
            photo = f"data:{content_type};base64,{base64.b64encode(content).decode()}"
    colour, label = STATUS_STYLE[result.status]
    g._login_user = login_manager.anonymous_user()  # Flask-Login's per-request user: the page renders as for anyone
    html = render_template(template, result=result, colour=colour, label=label, holder=holder, photo=photo,
                           **context)
    return private_response(html)


def private_response(html: str):
    """A public page about someone's card: never cached, never indexed, sends no referrer."""
    db.session.rollback()  # read-only: nothing to keep
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response

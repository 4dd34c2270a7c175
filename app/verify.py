"""The public card verification page: what a phone camera opens from a card's QR code.

``/verify/<token>`` needs no login. It shows what a doorkeeper needs and
nothing more: the card's status, number and expiry, the holder's first name
and last initial, and their photo (inline, so there is no public photo URL);
no name and no photo for a revoked card or a deleted member's card.
It is rate limited per IP (``CARD_VERIFY_RATE_LIMIT``), never cached, and
asks search engines not to index it. It ignores the session: a signed-in
staff member who scans a card sees exactly what a stranger sees.
"""

from __future__ import annotations

import base64

from flask import Blueprint, current_app, g, make_response, render_template
from sqlalchemy import select

from app.extensions import db, limiter, login_manager
from app.models import MemberPhoto
from app.services.cards import scanned_token, verify_token

bp = Blueprint("verify", __name__)

STATUS_STYLE = {
    "valid": ("success", "Valid"),
    "expired": ("warning", "Expired"),
    "suspended": ("danger", "Suspended"),
    "revoked": ("danger", "Revoked"),
    "unknown": ("secondary", "Not recognised"),
    "invalid": ("secondary", "Not a valid card"),
}

# A revoked card (a deleted member's card verifies as revoked) names nobody: whoever holds
# it is not a member, and the page must not tell a stranger whose card it was.
SHOWS_HOLDER = ("valid", "expired", "suspended")


def verify_rate_limit() -> str:
    return current_app.config["CARD_VERIFY_RATE_LIMIT"]


def holder_label(member) -> str:
    """First name and last initial: enough to match a face, not enough to look someone up."""
    last = (member.last_name or "").strip()
    return f"{member.first_name} {last[:1]}." if last else member.first_name


@bp.route("/verify/<path:token>")
@limiter.limit(verify_rate_limit)
def page(token: str):
    result = verify_token(scanned_token(token))
    holder = photo = None
    member = result.member if result.status in SHOWS_HOLDER else None
    if member is not None and member.deleted_at is None:
        holder = holder_label(member)
        row = db.session.execute(
            select(MemberPhoto.content, MemberPhoto.content_type).where(MemberPhoto.member_id == member.id)
        ).first()
        if row is not None and row.content:
            photo = f"data:{row.content_type or 'image/jpeg'};base64,{base64.b64encode(row.content).decode()}"
    colour, label = STATUS_STYLE[result.status]
    g._login_user = login_manager.anonymous_user()  # Flask-Login's per-request user: the page renders as for anyone
    html = render_template("cards/verify.html", result=result, colour=colour, label=label, holder=holder, photo=photo)
    db.session.rollback()  # read-only: nothing to keep
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response

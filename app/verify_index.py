"""The public card check, ``/verify/`` (the address printed on every card's back).

Anyone may type a card number or paste a code -- the credential in the QR
code, or the whole URL the QR opens -- and get the verdict a scan gets. The
answer is drawn by ``app.verify.verdict_response``, the one place that
decides what a stranger may see about a card; this module only reads the
input and chooses what to ask.

What a typed card number shows, and why
---------------------------------------
A card number is printed on the card and is not secret, but it is no
credential either: numbers run in sequence per year behind a check digit
(``M-2026-000123-4``), so anyone can write down valid numbers and walk them.
If a number gave what the signed QR code gives -- first name, last initial
and photo -- this page would hand a stranger the face and first name of every
member, one request at a time. So a number alone gets the limited verdict:
the status (valid, expired, suspended, revoked, not in the register), the
number and its expiry, and never the holder's name or photo, whatever the
status (so never for a revoked card either). The holder is shown only for a
signed code, which only someone who has seen the card (or its QR) can have,
and then under the QR page's own rules (no one named for a revoked card or a
deleted member's). Walking the numbers therefore tells a stranger how many
cards there are and in which state, nothing about any person; and it is
slowed by the QR page's per-address limit (``CARD_VERIFY_RATE_LIMIT``): one
budget shared by both pages (``VERIFY_LIMIT_SCOPE``), counted on every
lookup, not on showing the empty form.

Why POST
--------
The form posts, with its CSRF token like every form here, so what was typed
never lands in a URL: not in access logs, browser history or a Referer
header. A card number by itself names nobody to whoever reads a log, but the
register ties it to one person (pseudonymous data), so it stays out of URLs
like the rest. A GET shows the empty form and reads no query string.

Bad input -- empty, longer than any scan (``cards.MAX_SCAN_CHARS``), control
characters (a NUL among them), a number whose check digit is wrong, text that
is neither a number nor a code -- re-renders the form with a message (422)
without a query; a code that is well formed but forged or altered gets the
scan's verdict, "Not a valid card", because that is what a doorkeeper must
hear.
"""

from __future__ import annotations

import re

from flask import Blueprint, g, render_template, request
from flask_wtf import FlaskForm
from wtforms import StringField

from app.extensions import limiter, login_manager
from app.services import cards
from app.verify import VERIFY_LIMIT_SCOPE, private_response, verdict_response, verify_rate_limit

bp = Blueprint("verify_index", __name__)

TEMPLATE = "cards/verify_index.html"
# A typed number, forgiving of case and of spaces or dashes between its four parts.
NUMBER_SHAPE = re.compile(r"^([A-Za-z0-9]{1,8})[\s-]+(\d{4})[\s-]+(\d{6,9})[\s-]+(\d)$")
# What a bare credential looks like (base64url); anything else typed is neither number nor code.
CODE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,200}$")
ECHO_CHARS = 200  # what was typed is shown back in the field only when short and printable


class LookupForm(FlaskForm):
    card_code = StringField("Card number or code")


class BadLookup(ValueError):
    """Input that is neither a card number nor a card code, with a message for the person."""


def read_lookup(raw: object) -> tuple[str, str]:
    """What was typed: ``("number", canonical number)`` or ``("code", credential)``; else ``BadLookup``."""
    text = raw if isinstance(raw, str) else ""
    if len(text) > cards.MAX_SCAN_CHARS:
        raise BadLookup(f"That is too long for a card number or code ({cards.MAX_SCAN_CHARS} characters at most).")
    text = text.strip()
    if not text:
        raise BadLookup("Type the number printed on the card, or paste the code or link from its QR code.")
    if not text.isprintable():
        raise BadLookup("That contains characters (such as line breaks or control characters) that no card "
                        "number or code has.")
    number = NUMBER_SHAPE.match(text)
    if number is not None:
        try:
            return "number", cards.normalize_card_number("-".join(number.groups()))
        except cards.CardNumberError as exc:
            raise BadLookup(exc.message) from None
    if "/" in text:  # a pasted link: the code after /verify/, read as the QR page and the door read it
        token = cards.scanned_token(text)
        if not token:
            raise BadLookup("That link holds no card code: it should end in /verify/ followed by the code.")
        return "code", token
    if CODE_SHAPE.match(text):
        return "code", text
    raise BadLookup("That is neither a card number (they look like M-2026-000123-4) nor a card code.")


def _echo(raw: object) -> str:
    text = raw.strip() if isinstance(raw, str) else ""
    return text if len(text) <= ECHO_CHARS and text.isprintable() else ""


def _form_page(form: LookupForm, error: str | None = None, status: int = 200):
    g._login_user = login_manager.anonymous_user()  # as on the QR page: everyone sees the same page
    response = private_response(render_template(TEMPLATE, form=form, result=None, error=error))
    response.status_code = status
    return response


@bp.route("/verify/", methods=["GET", "POST"])
@limiter.shared_limit(verify_rate_limit, scope=VERIFY_LIMIT_SCOPE, methods=["POST"])
def index():
    """The form; on POST, the verdict on what was typed or pasted (see the module docstring)."""
    form = LookupForm()
    if request.method != "POST":
        return _form_page(LookupForm(formdata=None))
    if not form.validate():  # the CSRF token (CSRFProtect refuses a missing one before we get here)
        return _form_page(LookupForm(formdata=None), "This form has expired. Please try again.", 400)
    raw = request.form.get("card_code")
    try:
        kind, value = read_lookup(raw)
    except BadLookup as exc:
        form.card_code.data = _echo(raw)
        return _form_page(form, str(exc), 422)
    fresh = LookupForm(formdata=None)  # the next card starts from an empty field
    if kind == "code":
        return verdict_response(cards.verify_token(value), TEMPLATE, form=fresh, error=None)
    found = cards.verify_card_number(value)
    # The same verdict without the card's and member's ids, so nothing can show whose card it is.
    limited = cards.Verification(found.status, message=found.message, card_number=found.card_number,
                                 expires_on=found.expires_on)
    return verdict_response(limited, TEMPLATE, form=fresh, error=None, typed_number=True)

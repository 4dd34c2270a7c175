"""``POST /webhooks/stripe``: Stripe's events about dues payments (issue 14).

CSRF-exempt (Stripe cannot hold a session) and verified instead: the raw body
and its ``Stripe-Signature`` go to ``stripe_gateway.parse_event`` (HMAC with
STRIPE_WEBHOOK_SECRET, 300 s tolerance) before anything is read. Answers:
400 for a bad signature, a stale timestamp or a body that is no event; 503
when the webhook secret is not set or Stripe cannot be reached to re-read the
object (Stripe retries later); 200 otherwise, kinds Muster ignores included.
The request commits once: the event's id with its effect.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.extensions import csrf, db
from app.services.dues import online, stripe_gateway
from app.services.errors import ServiceError

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_webhook():
    try:
        event = stripe_gateway.parse_event(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except ServiceError as exc:
        return jsonify(error=exc.message, details=exc.details), exc.status
    try:
        outcome = online.handle_event(event)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        status = 503 if exc.status >= 500 else 409  # Stripe retries anything but a 2xx
        return jsonify(error=exc.message, details=exc.details), status
    return jsonify(received=True, outcome=outcome)

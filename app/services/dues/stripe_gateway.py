"""The one module that talks to Stripe (stripe-python 16, ``StripeClient``).

Everything else in Muster (the dues services, the portal's success page, the
webhook) calls these few functions and gets plain values back, so what Stripe
returns and how it fails is handled in one place:

- ``enabled()`` says whether online payment is offered at all (a secret key
  is configured); without it the portal hides "Pay online" and manual payments
  still work.
- ``create_checkout_session`` starts a hosted Checkout payment for one pending
  ``Payment``; ``retrieve_session`` and ``refund_state`` re-read Stripe's
  objects, because neither a browser redirect nor the order in which webhook
  events arrive can be trusted.
- ``parse_event`` verifies a webhook's ``Stripe-Signature`` and returns the
  event.

Failures surface as ``ServiceError``: 502 when Stripe cannot be reached or
refuses a call (the person can try again later), 404 for an id Stripe does
not know, 400 for a webhook that is not genuinely from Stripe. No
``stripe.StripeError`` leaks to callers.

``STRIPE_API_BASE`` (tests only) sends every call to a local stand-in
(tests/stripe_standin.py) through the real library, so the tests exercise the
same encoding, headers, retries and error mapping as production.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

import stripe
from flask import current_app

from app.services.errors import ServiceError

log = logging.getLogger(__name__)

# A webhook signed longer ago than this is refused (Stripe's own default): a captured delivery
# cannot be replayed later, even though replays inside the window are caught by event id.
WEBHOOK_TOLERANCE_SECONDS = 300
# Connect quickly or give up; a member is waiting on the checkout redirect. With the retries below
# (Stripe's library retries connection errors, timeouts, 409 and 5xx with back-off, re-sending the
# same idempotency key) the worst case stays near gunicorn's 30 s worker timeout.
CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 8.0
NETWORK_RETRIES = 2

UNAVAILABLE = "The payment service did not answer; please try again."
REFUSED = "The payment service refused the request; please try again later or pay another way."
NOT_CONFIGURED = "Online payment is not set up."


@dataclass(frozen=True)
class CheckoutState:
    """What Stripe says about one Checkout Session, read back from Stripe itself.

    ``status`` is "open", "complete" or "expired"; ``payment_status`` is
    "paid", "unpaid" (also while a delayed method such as a bank debit is
    still processing) or "no_payment_required". Only ``paid`` means the money
    arrived.
    """

    id: str
    status: str | None
    payment_status: str | None
    client_reference_id: str | None
    payment_intent_id: str | None
    amount_total: int | None
    currency: str | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def paid(self) -> bool:
        """True once the money has arrived (the one state that may fulfil a payment)."""
        return self.payment_status == "paid"


@dataclass(frozen=True)
class ChargeState:
    """One charge, for refunds: how much of ``amount`` has been given back."""

    id: str
    payment_intent_id: str | None
    amount: int
    amount_refunded: int
    refunded: bool
    currency: str | None


def enabled() -> bool:
    """Whether online payment is offered: a Stripe secret key is configured."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def checkout_origins() -> tuple[str, ...]:
    """Where "Pay online" sends the browser: Stripe's Checkout pages (the stand-in's address in the tests)."""
    base = current_app.config.get("STRIPE_API_BASE")
    if base:
        parts = urlsplit(base)
        return (f"{parts.scheme}://{parts.netloc}",)
    return ("https://checkout.stripe.com",)


def client() -> stripe.StripeClient:
    """The app's ``StripeClient``, built from the configuration (and rebuilt when it changes).

    It is kept on the app so each call reuses the HTTP connection pool; the
    cache key holds every setting, so a test that points ``STRIPE_API_BASE``
    at a fresh stand-in gets a fresh client.
    """
    config = current_app.config
    secret = config.get("STRIPE_SECRET_KEY")
    if not secret:
        raise ServiceError(NOT_CONFIGURED, status=503)
    base = config.get("STRIPE_API_BASE")
    key = (secret, base, CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, NETWORK_RETRIES)
    cached = current_app.extensions.get("muster.stripe_client")
    if cached and cached[0] == key:
        return cached[1]
    built = stripe.StripeClient(
        secret,
        base_addresses={"api": base} if base else None,
        max_network_retries=NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)),
    )
    current_app.extensions["muster.stripe_client"] = (key, built)
    return built


@contextmanager
def _calling_stripe(action: str) -> Iterator[None]:
    """Turn the library's exceptions into ServiceErrors a view can show (and log what happened)."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
        log.warning("Stripe did not answer (%s): %s", action, exc)
        raise ServiceError(UNAVAILABLE, status=502, details=_error_details(exc)) from exc
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404 or exc.code == "resource_missing":
            raise ServiceError("The payment service knows no such payment.", status=404,
                               details=_error_details(exc)) from exc
        log.error("Stripe refused %s: %s", action, exc)
        raise ServiceError(REFUSED, status=502, details=_error_details(exc)) from exc
    except stripe.StripeError as exc:  # authentication, permission, idempotency conflicts...
        log.error("Stripe refused %s: %s", action, exc)
        raise ServiceError(REFUSED, status=502, details=_error_details(exc)) from exc


def _error_details(exc: stripe.StripeError) -> dict[str, Any]:
    """What staff need to look a failure up in Stripe's dashboard (never shown as the message)."""
    return {"stripe_error": type(exc).__name__, "code": exc.code, "http_status": exc.http_status,
            "request_id": exc.request_id}


def idempotency_key(payment_id: int, params: dict[str, Any], attempt: int = 1) -> str:
    """The Idempotency-Key of one checkout attempt for one payment.

    The same payment, attempt and parameters give the same key, so a
    double-clicked "Pay" or a retried request gets the session already made
    instead of a second one. The digest of the parameters keeps a key from
    colliding with an unrelated earlier request (another database sharing a
    Stripe test account reuses payment ids), which Stripe would refuse.
    """
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"muster-checkout-{payment_id}-{attempt}-{digest}"


def create_checkout_session(
    *,
    payment_id: int,
    amount_minor: int,
    currency: str,
    product_name: str,
    success_url: str,
    cancel_url: str,
    customer_email: str | None,
    metadata: dict,
    attempt: int = 1,
) -> tuple[str, str]:
    """Start a hosted Checkout payment for one pending payment; answers (session id, checkout URL).

    ``client_reference_id`` and ``metadata["payment_id"]`` carry the payment's
    id, and the same metadata goes on the PaymentIntent (hence on its charge),
    so the webhook can find the payment from a session *or* a charge event.
    ``success_url`` may contain Stripe's literal ``{CHECKOUT_SESSION_ID}``
    (unescaped), which Stripe replaces with the session's id. Pass a higher
    ``attempt`` to make a new session for a payment whose earlier one expired
    (Stripe keeps an idempotency key for 24 hours).
    """
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["payment_id"] = str(payment_id)
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": str(payment_id),
        "line_items": [{
            "quantity": 1,
            "price_data": {
                "currency": currency.lower(),
                "unit_amount": int(amount_minor),
                "product_data": {"name": product_name},
            },
        }],
        "metadata": meta,
        "payment_intent_data": {"metadata": meta},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if customer_email:
        params["customer_email"] = customer_email
    options = {"idempotency_key": idempotency_key(payment_id, params, attempt)}
    with _calling_stripe("creating a checkout session"):
        session = client().v1.checkout.sessions.create(params, options)
    if not session.url:
        raise ServiceError(REFUSED, status=502, details={"session_id": session.id, "status": session.status})
    return session.id, session.url


def retrieve_session(session_id: str) -> CheckoutState:
    """Read a Checkout Session back from Stripe (the success page and the webhook trust only this)."""
    if not session_id or not str(session_id).startswith("cs_"):
        raise ServiceError("The payment service knows no such payment.", status=404)
    with _calling_stripe("reading a checkout session"):
        session = client().v1.checkout.sessions.retrieve(session_id)
    return checkout_state(session)


def checkout_state(session: Any) -> CheckoutState:
    """A ``CheckoutState`` from a Session object (retrieved, or an event's ``data.object``).

    StripeObjects are not dicts in stripe 16 (no ``.get``), so fields are read
    with ``_field``; ``payment_intent`` may be an id or an expanded object.
    """
    intent = _field(session, "payment_intent")
    if intent is not None and not isinstance(intent, str):
        intent = _field(intent, "id")
    metadata = _field(session, "metadata")
    return CheckoutState(
        id=_field(session, "id"),
        status=_field(session, "status"),
        payment_status=_field(session, "payment_status"),
        client_reference_id=_field(session, "client_reference_id"),
        payment_intent_id=intent,
        amount_total=_field(session, "amount_total"),
        currency=_field(session, "currency"),
        metadata=_plain(metadata) if metadata is not None else {},
    )


def retrieve_charge(charge_id: str) -> ChargeState:
    """Read one charge back from Stripe (a ``charge.refunded`` event names it)."""
    with _calling_stripe("reading a charge"):
        charge = client().v1.charges.retrieve(charge_id)
    return _charge_state(charge)


def refund_state(payment_intent_id: str) -> tuple[int, bool]:
    """How much of a PaymentIntent's money was given back: (amount refunded, fully refunded?).

    Read from the intent's latest charge (expanded in the same call), which is
    where Stripe keeps refund totals; an intent with no charge has refunded
    nothing.
    """
    with _calling_stripe("reading a payment"):
        intent = client().v1.payment_intents.retrieve(payment_intent_id, {"expand": ["latest_charge"]})
    charge = _field(intent, "latest_charge")
    if charge is None:
        return 0, False
    state = retrieve_charge(charge) if isinstance(charge, str) else _charge_state(charge)
    return state.amount_refunded, state.refunded


def _charge_state(charge: Any) -> ChargeState:
    intent = _field(charge, "payment_intent")
    if intent is not None and not isinstance(intent, str):
        intent = _field(intent, "id")
    return ChargeState(
        id=_field(charge, "id"),
        payment_intent_id=intent,
        amount=int(_field(charge, "amount") or 0),
        amount_refunded=int(_field(charge, "amount_refunded") or 0),
        refunded=bool(_field(charge, "refunded")),
        currency=_field(charge, "currency"),
    )


def parse_event(payload: bytes, signature_header: str | None) -> stripe.Event:
    """Verify a webhook delivery and return its event (400 ServiceError when it is not Stripe's).

    The body must be the raw bytes as received (``request.get_data()``):
    the signature covers them exactly, so parsing and re-serialising first
    would break it. The event's ``data.object`` is a snapshot from when it
    was sent; handlers re-read the object (``retrieve_session``,
    ``refund_state``) instead of trusting it or the order of delivery.
    """
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        # Not the sender's fault: answer 503 so Stripe keeps retrying until it is configured.
        raise ServiceError("Stripe webhooks are not set up (STRIPE_WEBHOOK_SECRET).", status=503)
    if not signature_header:
        raise ServiceError("The Stripe-Signature header is missing.", status=400)
    try:
        if enabled():
            event = client().construct_event(payload, signature_header, secret, WEBHOOK_TOLERANCE_SECONDS)
        else:
            event = stripe.Webhook.construct_event(payload, signature_header, secret, WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        stale = "tolerance" in str(exc)
        message = ("The webhook was signed too long ago." if stale
                   else "The webhook's signature does not match.")
        raise ServiceError(message, status=400, details={"reason": "stale" if stale else "signature"}) from exc
    except (ValueError, TypeError, AttributeError) as exc:  # not UTF-8, not JSON, not an object
        raise ServiceError("The webhook body is not a Stripe event.", status=400,
                           details={"reason": "payload"}) from exc
    if not all(name in event for name in ("id", "type", "data")):
        raise ServiceError("The webhook body is not a Stripe event.", status=400, details={"reason": "payload"})
    return event


def _field(obj: Any, name: str) -> Any:
    """One field of a StripeObject or a plain dict, None when absent (StripeObjects have no ``.get``)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return obj[name] if name in obj else None


def _plain(obj: Any) -> dict[str, Any]:
    """A StripeObject (or dict) as a plain dict, for storing or comparing."""
    return dict(obj) if isinstance(obj, dict) else obj.to_dict()

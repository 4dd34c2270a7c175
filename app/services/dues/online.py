"""Paying online: the Checkout Session a member is sent to, and Stripe's events about it.

Stripe's redirect back to the success page proves nothing, and its events
may come twice, at once, or out of order. So every path (the success page,
each event) only says "something changed": the session is read again from
Stripe (``stripe_gateway.retrieve_session``) and the payment moved to what
Stripe says now, through the one ``dues.complete`` / ``dues.refund`` write
path, which does each thing once per payment.

``handle_event`` writes the event's id (``StripeEvent``) in the same
transaction as its effect: a replay finds the id taken and does nothing; a
second delivery at the same moment waits on the first one's row (its
primary key) and then finds it too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Member, MembershipTier, Payment, StripeEvent
from app.services import dues
from app.services.dues import renewal
from app.services.mail import link_to
from app.services.dues import stripe_gateway as gateway
from app.services.errors import ServiceError

SESSION_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded",
                  "checkout.session.async_payment_failed", "checkout.session.expired")
REFUND_EVENTS = ("charge.refunded",)


def start_checkout(member: Member, tier: MembershipTier, *, success_url: str | None = None,
                   cancel_url: str | None = None) -> tuple[Payment, str]:
    """A pending payment and its Checkout Session: (payment, the URL to send the member to).

    Stripe sends the member back to ``success_url`` (default: the portal's
    return page, which re-reads the session) or ``cancel_url`` (default: the
    portal's dues page), both on MUSTER_PUBLIC_URL; ``success_url`` carries
    ``{CHECKOUT_SESSION_ID}`` literally: Stripe fills it in. Refused (409) when
    online payment is off or the member's renewal window is closed (``renewal.require_open``).
    """
    if not gateway.enabled():
        raise ServiceError("Online payment is not available; pay a treasurer of your ward instead.", status=409)
    if not tier.active:
        raise ServiceError("This tier is no longer offered.", field="tier_id")
    renewal.require_open(member)
    success_url = success_url or link_to("portal.dues_done") + "?session_id={CHECKOUT_SESSION_ID}"
    cancel_url = cancel_url or link_to("portal.dues_page")
    payment = dues.new_payment(member, tier, "stripe")
    session_id, url = gateway.create_checkout_session(
        payment_id=payment.id, amount_minor=payment.amount_minor, currency=payment.currency,
        product_name=f"{tier.name} membership", success_url=success_url, cancel_url=cancel_url,
        customer_email=member.email, metadata={"member_id": member.id, "tier_id": tier.id})
    payment.stripe_session_id = session_id
    db.session.flush()
    return payment, url


def _payment_for_session(state: gateway.CheckoutState) -> Payment | None:
    payment = db.session.scalar(select(Payment).where(Payment.stripe_session_id == state.id))
    if payment is None and (state.client_reference_id or "").isdigit():
        payment = db.session.get(Payment, int(state.client_reference_id))
        if payment is not None and payment.stripe_session_id not in (None, state.id):
            return None  # a reference that names another session's payment: not ours to touch
    return payment


def follow_session(session_id: str, *, async_failed: bool = False) -> Payment | None:
    """Move the session's payment to what Stripe says now (paid: completed and fulfilled once).

    A session that is complete but unpaid is a delayed payment (a bank
    debit) still being processed, and stays pending: the session alone does
    not tell processing from failed. Only Stripe's verified
    ``async_payment_failed`` event (``async_failed``) marks it failed, so the
    member is never told "nothing was charged, try again" while their bank
    is still paying.
    """
    state = gateway.retrieve_session(session_id)
    payment = _payment_for_session(state)
    if payment is None:
        return None
    if state.paid:
        if payment.stripe_payment_intent_id is None:
            payment.stripe_payment_intent_id = state.payment_intent_id
        if payment.status in ("pending", "failed", "cancelled"):
            payment.status = "pending"  # a late success wins over an earlier failure or expiry
            return dues.complete(payment)
        if payment.status == "completed":
            return dues.fulfil(payment)
        return payment
    if payment.status == "pending" and state.status == "expired":
        payment.status = "cancelled"
    elif payment.status == "pending" and state.status == "complete" and state.payment_status == "unpaid" \
            and async_failed:
        payment.status = "failed"  # an asynchronous payment (a bank debit) that did not go through
    db.session.flush()
    return payment


def follow_refund(payment_intent_id: str) -> Payment | None:
    """A refund in Stripe: a fully refunded payment is refunded here too (once)."""
    payment = db.session.scalar(select(Payment).where(Payment.stripe_payment_intent_id == payment_intent_id))
    if payment is None:
        return None
    _amount, refunded = gateway.refund_state(payment_intent_id)
    if refunded and payment.status == "completed":
        dues.refund(None, payment, "Refunded in Stripe")
    return payment


def handle_event(event: Any) -> str:
    """Act on a verified Stripe event once; what happened, in a word, for the answer and the log.

    "ignored" (a kind Muster does not use), "duplicate" (seen before),
    "unknown" (about no payment of ours), "done".
    """
    kind = event.type
    if kind not in SESSION_EVENTS + REFUND_EVENTS:
        return "ignored"
    seen = StripeEvent(id=event.id, type=kind)
    try:
        with db.session.begin_nested():
            db.session.add(seen)
            db.session.flush()
    except IntegrityError:
        return "duplicate"
    obj = event.data.object
    if kind in SESSION_EVENTS:
        payment = follow_session(obj.id, async_failed=kind == "checkout.session.async_payment_failed")
    else:
        payment = follow_refund(obj.payment_intent) if getattr(obj, "payment_intent", None) else None
    if payment is None:
        return "unknown"
    seen.payment_id = payment.id
    db.session.flush()
    return "done"

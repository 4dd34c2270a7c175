"""Payments awaiting fulfilment (issue 14): what staff reconcile by hand, and the two actions that do it.

Two kinds of payment wait for someone:

- an online (Stripe) payment still *pending* some minutes after it was
  started (``PENDING_AFTER``): the member may have paid and the webhook never
  came (an outage, a misconfigured endpoint), or they gave up and the session
  will expire. "Check with Stripe" (``recheck``) reads the session again
  through ``online.follow_session``, exactly as the success page and the
  webhook do, so a paid session is completed and renews the membership once
  however many of the three get there;
- a *completed* payment that has not renewed the membership (``fulfilled_at``
  empty): held for staff, with the reason (a suspended member, a suspended
  card, a deleted record). Once staff have dealt with the reason, "Renew now"
  (``renew``) runs ``dues.fulfil`` again; if the reason still stands the
  payment stays held, with the reason as it now reads.

Both lists start from the actor's ``payments.read`` scope (``app.security``,
as the payments list does); both actions need ``payments.create`` over the
payment (``authorize``: 404 outside the area, 403 without the right). Each
action is audited with who did it and what came of it, flushes and never
commits: the view commits once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Payment
from app.models.base import utcnow
from app.security import authorize, scope_filter
from app.services import audit, dues
from app.services.dues import online
from app.services.dues import stripe_gateway as gateway
from app.services.errors import ServiceError

# Long enough for a member to type their card details on Stripe's page; after that a pending online
# payment is worth a look (a paid one whose webhook was lost, or an abandoned one Stripe will expire).
PENDING_AFTER = timedelta(minutes=10)
UNREACHABLE = "Stripe could not be reached: nothing changed. Try again in a few minutes."
NOT_CONFIGURED = "Online payment is not set up (no Stripe key), so Stripe cannot be asked about this payment."


@dataclass(frozen=True)
class Result:
    """What a reconciliation action came to: ``state`` in a word, ``message`` for the person who asked.

    ``state``: "renewed" (the membership was extended now), "already" (it had
    been, by the webhook or another click), "held" (completed but waiting for
    staff), "pending" (Stripe has no money yet), "failed", "cancelled" or
    "refunded" (what Stripe or staff decided meanwhile).
    """

    state: str
    message: str
    payment: Payment


def _pending_clause(now: datetime) -> Any:
    return and_(Payment.method == "stripe", Payment.status == "pending", Payment.stripe_session_id.is_not(None),
                Payment.created_at < now - PENDING_AFTER)


def _held_clause() -> Any:
    return and_(Payment.status == "completed", Payment.fulfilled_at.is_(None))


def awaiting_clauses(actor: Any, *, now: datetime | None = None) -> list:
    """The WHERE of the reconciliation list: the actor's ``payments.read`` scope, then the two kinds."""
    clauses: list = [or_(_pending_clause(now or utcnow()), _held_clause())]
    scope = scope_filter(actor, dues.READ, Payment)
    if scope is not None:
        clauses.append(scope)
    return clauses


def awaiting_page(actor: Any, *, offset: int = 0, limit: int = 25,
                  now: datetime | None = None) -> tuple[list[Payment], int]:
    """One page of the payments awaiting fulfilment, oldest first (the longest wait on top), and the count."""
    where = awaiting_clauses(actor, now=now)
    total = db.session.scalar(select(func.count(Payment.id)).where(*where)) or 0
    rows = list(db.session.scalars(
        select(Payment).where(*where).options(selectinload(Payment.member), selectinload(Payment.tier))
        .order_by(Payment.created_at, Payment.id).offset(offset).limit(limit)))
    return rows, total


def kind(payment: Payment) -> str:
    """Which wait a listed payment is in: "pending" (ask Stripe) or "held" (staff decide, then renew)."""
    return "held" if payment.status == "completed" else "pending"


def can_recheck(payment: Payment) -> bool:
    """Whether "Check with Stripe" means anything for this payment (an online one, with its session)."""
    return payment.method == "stripe" and bool(payment.stripe_session_id) and gateway.enabled()


def _until(payment: Payment) -> str:
    return f"until {payment.extended_to:%d %B %Y}" if payment.extended_to is not None else "for life"


def _label(payment: Payment) -> str:
    return payment.receipt_number or f"Payment {payment.id}"


def _result(payment: Payment, was_fulfilled: bool) -> Result:
    """The payment's state after an action, in words (the flash the view shows)."""
    who = payment.member.full_name
    if payment.fulfilled_at is not None:
        if was_fulfilled:
            return Result("already", f"{_label(payment)} had already renewed {who}'s membership "
                                     f"({_until(payment)}): nothing changed.", payment)
        return Result("renewed", f"Completed: {who}'s membership is renewed {_until(payment)} "
                                 f"(receipt {payment.receipt_number}).", payment)
    if payment.status == "completed":
        return Result("held", f"Completed but still held: {payment.hold_reason}", payment)
    if payment.status == "pending":
        return Result("pending", f"Still pending: Stripe has not received {who}'s payment yet.", payment)
    words = {"failed": "failed: the payment did not go through at Stripe",
             "cancelled": "cancelled: the Stripe checkout expired unpaid",
             "refunded": "refunded"}
    return Result(payment.status, f"{_label(payment)} is {words.get(payment.status, payment.status)}; "
                                  "nothing to renew.", payment)


def _audit(actor: Any, action: str, payment: Payment, result: Result) -> None:
    audit.record(actor, action, payment, summary=f"{_label(payment)}: {result.message}",
                 changes={"outcome": result.state})


def recheck(actor: Any, payment: Payment) -> Result:
    """"Check with Stripe": read the payment's Checkout Session again and move the payment to what it says.

    Paid: completed and fulfilled once (or held) through ``online.follow_session``,
    the success page's and the webhook's own path, so whichever of them runs
    first renews and the others find it done. Refused (409) for a payment
    that is not online or when Stripe is not configured; when Stripe cannot
    be reached, a 502 saying nothing changed. Needs ``payments.create`` over
    the payment.
    """
    authorize(actor, dues.CREATE, payment, message="You may not reconcile payments here.")
    if payment.method != "stripe" or not payment.stripe_session_id:
        raise ServiceError(f"{_label(payment)} was not paid online: there is nothing to ask Stripe.", status=409)
    if not gateway.enabled():
        raise ServiceError(NOT_CONFIGURED, status=409)
    was_fulfilled = payment.fulfilled_at is not None
    try:
        followed = online.follow_session(payment.stripe_session_id)
    except ServiceError as exc:
        if exc.status in (502, 503):
            raise ServiceError(UNREACHABLE, status=502, details=exc.details) from exc
        raise
    if followed is None or followed.id != payment.id:  # the session names another payment: touch neither
        raise ServiceError(f"Stripe's session for {_label(payment)} belongs to no payment of this member.",
                           status=409)
    result = _result(payment, was_fulfilled)
    _audit(actor, "payment.recheck", payment, result)
    return result


def renew(actor: Any, payment: Payment) -> Result:
    """"Renew now": fulfil a completed payment that was held, once staff have dealt with the reason.

    ``dues.fulfil`` decides again from the member and card as they are now:
    renewed, or held with the reason that still stands. A payment already
    fulfilled is answered unchanged; one not completed is refused (409).
    Needs ``payments.create`` over the payment.
    """
    authorize(actor, dues.CREATE, payment, message="You may not reconcile payments here.")
    was_fulfilled = payment.fulfilled_at is not None
    dues.fulfil(payment)  # locks the row and reads it again; refuses (409) what is not completed
    result = _result(payment, was_fulfilled)
    _audit(actor, "payment.renew", payment, result)
    return result

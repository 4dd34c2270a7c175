"""Dues (issue 14): paying for membership, online or to a treasurer, and renewal exactly once.

One write path for every payment, however it arrives (a treasurer recording
cash, the Stripe success page, a Stripe webhook, a replay of that webhook):
``fulfil(payment)`` extends the membership by the tier's duration from the
later of today and the current expiry, makes the member active, renews or
issues the card through the card service (``cards.paid``), allocates the
receipt number, all in the caller's one transaction, under a lock on the
payment's row, and only while ``fulfilled_at`` is empty: a payment extends a
membership once, whoever calls and however often.

A payment for a member staff must decide on first (suspended, expelled,
deceased, resigned, deleted) is not fulfilled but held, with the reason, for
staff to see.

Tiers are in ``.tiers``; the Stripe side in ``.stripe_gateway``. Every
function flushes and never commits: the view, task or command commits once.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from app.database import lock_row
from app.extensions import db
from app.models import MANUAL_METHODS, Member, MembershipCard, MembershipTier, Payment
from app.models.base import utcnow
from app.security import authorize, scoped
from app.services import audit, counters
from app.services import members as member_service
from app.services.cards.paid import extend_for_payment, undo_extension
from app.services.errors import ServiceError, ValidationErrors

READ, CREATE, REFUND = "payments.read", "payments.create", "payments.refund"
# Members a payment cannot simply renew: staff decide on them first (the payment is held).
HELD_STATUSES = ("suspended", "expelled", "deceased", "resigned")
# Members a completed payment makes active: an applicant or a lapsed member paying their dues.
ACTIVATED_STATUSES = ("pending", "lapsed")
METHOD_LABELS = {"stripe": "Card (online)", "cash": "Cash", "bank_transfer": "Bank transfer",
                 "mobile_money": "Mobile money", "other": "Other"}
STATUS_LABELS = {"pending": "Pending", "completed": "Completed", "failed": "Failed", "refunded": "Refunded",
                 "cancelled": "Cancelled"}
REFERENCE_MAX = 120


def format_money(amount_minor: int, currency: str) -> str:
    """``12,500.00 ZMW``: two decimals, as every currency Muster is used with has (ISO 4217 exponent 2)."""
    return f"{amount_minor / 100:,.2f} {currency}"


def receipt_number(year: int) -> str:
    """The next receipt number of ``year``: R-YYYY-NNNNNN, sequential, never reused (a counter row per year)."""
    return f"R-{year}-{counters.allocate(f'receipt:{year}'):06d}"


def new_payment(member: Member, tier: MembershipTier, method: str, *, actor: Any = None,
                reference: str = "") -> Payment:
    """A pending payment of ``tier`` by ``member`` at the tier's price, in the member's unit (flushed)."""
    payment = Payment(member=member, tier=tier, unit_id=member.unit_id, amount_minor=tier.price_minor,
                      currency=tier.currency, method=method, status="pending", reference=reference,
                      recorded_by_id=getattr(actor, "id", None), hold_reason="")
    db.session.add(payment)
    db.session.flush()
    return payment


def _hold(payment: Payment, reason: str) -> Payment:
    payment.hold_reason = reason
    db.session.flush()
    audit.record(None, "payment.held", payment, summary=f"Payment {payment.id} held: {reason}")
    return payment


def fulfil(payment: Payment, *, today: date | None = None) -> Payment:
    """Extend the membership a completed payment paid for, once; the payment, fulfilled or held.

    Locks the payment's row first, then reads it again: two deliveries of
    one Stripe event at the same moment (or the success page and the
    webhook) meet here, and the second finds ``fulfilled_at`` set and does
    nothing. A payment not completed is refused (409).
    """
    lock_row(Payment, payment.id)
    db.session.refresh(payment)
    if payment.fulfilled_at is not None:
        return payment
    if payment.status != "completed":
        raise ServiceError(f"Payment {payment.id} is {payment.status}: only a completed payment renews a "
                           "membership.", status=409)
    member = payment.member
    if member.is_deleted:
        return _hold(payment, f"{member.full_name}'s record was deleted: refund the payment or restore the record.")
    if member.status in HELD_STATUSES:
        return _hold(payment, f"{member.full_name} is {member.status}: staff must decide before the payment "
                              "renews the membership (or refund it).")
    number = payment.receipt_number or receipt_number((today or date.today()).year)
    if member.status in ACTIVATED_STATUSES:
        member_service.change_status(None, member, "active", f"Dues paid (receipt {number})")
    tier = payment.tier
    try:
        extension = extend_for_payment(member, tier.card_type, tier.duration_months,
                                       f"Dues paid: {tier.name} (receipt {number})", today=today)
    except ServiceError as exc:  # a suspended card: staff decide first
        return _hold(payment, exc.message)
    payment.receipt_number = number
    payment.extended_from, payment.extended_to = extension.before, extension.after
    payment.card_id = extension.card.id
    payment.fulfilled_at, payment.hold_reason = utcnow(), ""
    db.session.flush()
    until = f"until {extension.after:%d %B %Y}" if extension.after else "for life"
    audit.record(None, "payment.fulfilled", payment, summary=f"{member.full_name}'s membership renewed {until} "
                 f"(receipt {number}, {format_money(payment.amount_minor, payment.currency)})")
    return payment


def complete(payment: Payment, *, today: date | None = None) -> Payment:
    """The money arrived: the payment is completed (once) and fulfilled. Idempotent like ``fulfil``."""
    lock_row(Payment, payment.id)
    db.session.refresh(payment)
    if payment.status == "pending":
        payment.status, payment.completed_at = "completed", utcnow()
        db.session.flush()
    return fulfil(payment, today=today)


def payer(actor: Any, *, member_id: int | None = None, number: str | None = None,
          permission: str = READ) -> Member | None:
    """The live member a manual payment names, by id or membership number, if ``actor`` may see them.

    Seen through ``permission``: the API looks with ``payments.read`` (a
    member seen but not theirs to record for is then ``record_manual``'s 403),
    the console's form with ``payments.create`` (it offers only what the
    user may do). None when there is no such live member in that scope: an
    unknown member and one outside the area read the same.
    """
    stmt = select(Member).where(Member.deleted_at.is_(None))
    if member_id is not None:
        stmt = stmt.where(Member.id == member_id)
    elif number:
        stmt = stmt.where(Member.membership_number.in_({number, number.upper()}))
    else:
        return None
    return db.session.scalar(scoped(stmt, actor, permission, Member))


def record_manual(actor: Any, member: Member, data: dict[str, Any], *, today: date | None = None) -> Payment:
    """A treasurer records a cash, bank, mobile-money or other payment: completed, fulfilled, receipted.

    ``data``: ``tier_id``, ``method`` (one of MANUAL_METHODS), ``reference``
    (required except for cash) and optionally ``amount_minor`` (default the
    tier's price; a different amount is allowed: a partial or discounted
    payment, recorded as paid). Every field's problem at once. Needs
    ``payments.create`` where the member belongs.
    """
    authorize(actor, CREATE, member, message="You may not record payments for this member.")
    errors: dict[str, str] = {}
    tier = None
    tier_id = data.get("tier_id")
    try:
        tier = db.session.get(MembershipTier, int(tier_id)) if tier_id not in (None, "") else None
    except (TypeError, ValueError):
        tier = None
    if tier is None or not tier.active:
        errors["tier_id"] = "Choose a membership tier."
    method = str(data.get("method") or "").strip().lower()
    if method not in MANUAL_METHODS:
        errors["method"] = "Choose how it was paid: " + ", ".join(METHOD_LABELS[m].lower() for m in MANUAL_METHODS) + "."
    reference = str(data.get("reference") or "").strip()
    if len(reference) > REFERENCE_MAX:
        errors["reference"] = f"A reference is at most {REFERENCE_MAX} characters."
    elif method in ("bank_transfer", "mobile_money") and not reference:
        errors["reference"] = "Give the transaction reference, so the payment can be traced."
    amount = data.get("amount_minor")
    if amount not in (None, ""):
        try:
            amount = int(amount)
            if amount <= 0 or amount > 10**12:
                raise ValueError
        except (TypeError, ValueError):
            errors["amount_minor"] = "Give the amount paid, more than zero."
            amount = None
    else:
        amount = None
    if errors:
        raise ValidationErrors(errors)
    assert tier is not None
    payment = new_payment(member, tier, method, actor=actor, reference=reference)
    if amount is not None:
        payment.amount_minor = amount
    audit.record(actor, "payment.record", payment,
                 summary=f"{METHOD_LABELS[method]} payment of {format_money(payment.amount_minor, payment.currency)} "
                         f"recorded for {member.full_name} ({tier.name})",
                 changes={"method": method, "amount_minor": payment.amount_minor, "tier": tier.name,
                          "reference": reference})
    return complete(payment, today=today)


def refund(actor: Any, payment: Payment, reason: str | None, *, today: date | None = None) -> Payment:
    """A completed payment was refunded (recorded by staff, or reported by Stripe with ``actor`` None).

    Its extension is undone (the card's valid-until goes back to where the
    payment found it) unless something builds on it: a later payment of
    the same member, a card the payment issued, or a card changed since.
    Then the refund is recorded and the payment flagged for staff with the
    reason. Idempotent: a refunded payment is returned unchanged. Staff need
    ``payments.refund`` where the payment was made.
    """
    if actor is not None:
        authorize(actor, REFUND, payment, message="You may not refund payments here.")
    reason = (reason or "").strip()
    if actor is not None and not reason:
        raise ServiceError("Give a reason for the refund.", field="reason")
    lock_row(Payment, payment.id)
    db.session.refresh(payment)
    if payment.status == "refunded":
        return payment
    if payment.status != "completed":
        raise ServiceError(f"Payment {payment.id} is {payment.status}: only a completed payment can be refunded.",
                           status=409)
    payment.status, payment.refunded_at = "refunded", utcnow()
    flag = ""
    if payment.fulfilled_at is not None:
        later = db.session.scalar(select(Payment.receipt_number).where(
            Payment.member_id == payment.member_id, Payment.id != payment.id, Payment.status == "completed",
            Payment.fulfilled_at > payment.fulfilled_at).limit(1))
        card = db.session.get(MembershipCard, payment.card_id) if payment.card_id else None
        if later:
            flag = f"Refunded, but payment {later} builds on its extension: staff decide on the membership's end."
        elif card is None or payment.extended_from is None:
            flag = "Refunded; the card this payment issued (or made lifetime) stays until staff decide."
        elif card.expires_on != payment.extended_to:
            flag = "Refunded; the card has changed since this payment: staff decide on its end."
        else:
            undo_extension(card, payment.extended_from, f"Refund of receipt {payment.receipt_number}")
    else:
        payment.hold_reason = ""  # a held payment refunded: nothing waits any more
    payment.hold_reason = flag or payment.hold_reason
    db.session.flush()
    audit.record(actor, "payment.refund", payment,
                 summary=f"Payment {payment.receipt_number or payment.id} refunded" + (f": {reason}" if reason else ""),
                 changes={"reason": reason, "flag": flag})
    return payment


def payments_of(member: Member) -> list[Payment]:
    """A member's payments, newest first (their history: completed, held, refunded)."""
    return list(db.session.scalars(select(Payment).where(Payment.member_id == member.id)
                                   .order_by(Payment.created_at.desc(), Payment.id.desc())))
